//! Contacts (keyset-paginated) and responsible managers of one integration.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use dealflow_shared::events::IntegrationId;
use serde::Serialize;

use crate::store::values::{Columns as _, parse_list, time, uid};
use crate::store::{Sql, Store, StoreError};

/// A contact person or company.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Contact)]
pub struct ContactView {
    pub id: u64,
    /// `person` or `company` (separate id spaces in RetailCRM).
    pub kind: String,
    pub name: Option<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

/// Where the next page of contacts starts, in (kind, id) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactCursor {
    kind: String,
    id: i64,
}

impl ContactCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("c1:{}:{}", self.kind, self.id))
    }

    /// Parses the opaque text form.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let (kind, id) = raw.strip_prefix("c1:")?.split_once(':')?;
        Some(Self {
            kind: kind.to_owned(),
            id: id.parse().ok()?,
        })
    }
}

/// A responsible manager.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Manager)]
pub struct ManagerView {
    pub id: u64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Up to `limit` contacts after `after`.
pub async fn contacts(
    store: &Store,
    integration: IntegrationId,
    after: Option<&ContactCursor>,
    limit: usize,
) -> Result<(Vec<ContactView>, Option<ContactCursor>), StoreError> {
    let mut sql = Sql::new("SELECT * FROM contacts WHERE integration_id = ");
    sql.bind(integration.to_string());
    if let Some(after) = after {
        sql.push(" AND (kind, contact_id) > (")
            .bind(after.kind.clone())
            .push(", ")
            .bind(after.id)
            .push(")");
    }
    sql.push(" ORDER BY kind, contact_id LIMIT ")
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("listing contacts"))?;
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let mut next = None;
    for row in rows.iter().take(limit) {
        let id = row.int("contact_id")?;
        let kind = row.text("kind")?;
        items.push(ContactView {
            id: uid(id),
            kind: kind.clone(),
            name: row.opt_text("name")?,
            phones: parse_list(Some(&row.text("phones")?))?,
            emails: parse_list(Some(&row.text("emails")?))?,
            updated_at: time(row.int("observed_at")?)?,
        });
        next = Some(ContactCursor { kind, id });
    }
    Ok((items, if rows.len() > limit { next } else { None }))
}

/// Every manager named on a deal of the integration, by id.
pub async fn managers(
    store: &Store,
    integration: IntegrationId,
) -> Result<Vec<ManagerView>, StoreError> {
    let mut sql = Sql::new("SELECT * FROM managers WHERE integration_id = ");
    sql.bind(integration.to_string())
        .push(" ORDER BY manager_id");
    sql.read_all(store)
        .await
        .map_err(StoreError::query("listing managers"))?
        .iter()
        .map(|row| {
            Ok(ManagerView {
                id: uid(row.int("manager_id")?),
                name: row.opt_text("name")?,
                email: row.opt_text("email")?,
                phone: row.opt_text("phone")?,
            })
        })
        .collect()
}
