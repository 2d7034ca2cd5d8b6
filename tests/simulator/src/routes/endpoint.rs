//! The API methods the simulator serves, recognised from the request path, with the label
//! used in counters, the scope they need and their credential path (without version).

/// A recognised API method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /api/credentials`.
    Credentials,
    /// `GET /api/api-versions`.
    ApiVersions,
    /// `GET /api/v5/settings`.
    Settings,
    /// `GET /api/v5/reference/statuses`.
    Statuses,
    /// `GET /api/v5/reference/status-groups`.
    StatusGroups,
    /// `GET /api/v5/reference/sites`.
    Sites,
    /// `GET /api/v5/orders`.
    OrdersList,
    /// `GET /api/v5/orders/history`.
    OrdersHistory,
    /// `GET /api/v5/orders/{id}`.
    OrderGet(String),
    /// `GET /api/v5/users`.
    UsersList,
    /// `GET /api/v5/users/{id}`.
    UserGet(String),
    /// `GET /api/v5/customers/{id}`.
    CustomerGet(String),
    /// `GET /api/v5/customers-corporate/{id}`.
    CorporateGet(String),
}

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A served API method.
    Api(Endpoint),
    /// Under `/api/` but not a method the simulator knows.
    UnknownApi,
    /// Not an API path at all (the real host serves its web UI there).
    NonApi,
}

impl Route {
    /// Recognises `path`.
    pub fn parse(path: &str) -> Route {
        let path = path.strip_suffix('/').unwrap_or(path);
        let Some(rest) = path.strip_prefix("/api/") else {
            return Route::NonApi;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let endpoint = match segments.as_slice() {
            ["credentials"] => Endpoint::Credentials,
            ["api-versions"] => Endpoint::ApiVersions,
            ["v5", "settings"] => Endpoint::Settings,
            ["v5", "reference", "statuses"] => Endpoint::Statuses,
            ["v5", "reference", "status-groups"] => Endpoint::StatusGroups,
            ["v5", "reference", "sites"] => Endpoint::Sites,
            ["v5", "orders"] => Endpoint::OrdersList,
            ["v5", "orders", "history"] => Endpoint::OrdersHistory,
            ["v5", "orders", id] if !id.is_empty() => Endpoint::OrderGet(decode(id)),
            ["v5", "users"] => Endpoint::UsersList,
            ["v5", "users", id] if !id.is_empty() => Endpoint::UserGet(decode(id)),
            ["v5", "customers", id] if !id.is_empty() => Endpoint::CustomerGet(decode(id)),
            ["v5", "customers-corporate", id] if !id.is_empty() => {
                Endpoint::CorporateGet(decode(id))
            }
            _ => return Route::UnknownApi,
        };
        Route::Api(endpoint)
    }

    /// The counters label: method template, or `other`.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Api(e) => e.template(),
            Route::UnknownApi | Route::NonApi => "other",
        }
    }
}

/// Percent-decodes a path segment (`+` stays a plus in paths).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Endpoint {
    /// The path template, used as the counters label.
    pub fn template(&self) -> &'static str {
        match self {
            Endpoint::Credentials => "GET /api/credentials",
            Endpoint::ApiVersions => "GET /api/api-versions",
            Endpoint::Settings => "GET /api/v5/settings",
            Endpoint::Statuses => "GET /api/v5/reference/statuses",
            Endpoint::StatusGroups => "GET /api/v5/reference/status-groups",
            Endpoint::Sites => "GET /api/v5/reference/sites",
            Endpoint::OrdersList => "GET /api/v5/orders",
            Endpoint::OrdersHistory => "GET /api/v5/orders/history",
            Endpoint::OrderGet(_) => "GET /api/v5/orders/{id}",
            Endpoint::UsersList => "GET /api/v5/users",
            Endpoint::UserGet(_) => "GET /api/v5/users/{id}",
            Endpoint::CustomerGet(_) => "GET /api/v5/customers/{id}",
            Endpoint::CorporateGet(_) => "GET /api/v5/customers-corporate/{id}",
        }
    }

    /// The scope it needs (`None` = any valid key).
    pub fn scope(&self) -> Option<&'static str> {
        match self {
            Endpoint::Credentials | Endpoint::ApiVersions => None,
            Endpoint::Settings | Endpoint::Statuses | Endpoint::StatusGroups | Endpoint::Sites => {
                Some("reference_read")
            }
            Endpoint::OrdersList | Endpoint::OrdersHistory | Endpoint::OrderGet(_) => {
                Some("order_read")
            }
            Endpoint::UsersList | Endpoint::UserGet(_) => Some("user_read"),
            Endpoint::CustomerGet(_) | Endpoint::CorporateGet(_) => Some("customer_read"),
        }
    }

    /// Its method path without version, as `/api/credentials` lists it.
    pub fn credential(&self) -> Option<&'static str> {
        Some(match self {
            Endpoint::Credentials | Endpoint::ApiVersions => return None,
            Endpoint::Settings => "/api/settings",
            Endpoint::Statuses => "/api/reference/statuses",
            Endpoint::StatusGroups => "/api/reference/status-groups",
            Endpoint::Sites => "/api/reference/sites",
            Endpoint::OrdersList => "/api/orders",
            Endpoint::OrdersHistory => "/api/orders/history",
            Endpoint::OrderGet(_) => "/api/orders/{externalId}",
            Endpoint::UsersList => "/api/users",
            Endpoint::UserGet(_) => "/api/users/{id}",
            Endpoint::CustomerGet(_) => "/api/customers/{externalId}",
            Endpoint::CorporateGet(_) => "/api/customers-corporate/{externalId}",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_paths() {
        assert_eq!(
            Route::parse("/api/v5/orders/history"),
            Route::Api(Endpoint::OrdersHistory)
        );
        assert_eq!(
            Route::parse("/api/v5/orders/wc-1%2F2"),
            Route::Api(Endpoint::OrderGet("wc-1/2".into()))
        );
        assert_eq!(
            Route::parse("/api/v5/orders/"),
            Route::Api(Endpoint::OrdersList)
        );
        assert_eq!(
            Route::parse("/api/credentials"),
            Route::Api(Endpoint::Credentials)
        );
        assert_eq!(Route::parse("/api/v4/orders"), Route::UnknownApi);
        assert_eq!(Route::parse("/api/v5/orders/1/edit"), Route::UnknownApi);
        assert_eq!(Route::parse("/orders"), Route::NonApi);
    }
}
