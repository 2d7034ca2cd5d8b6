//! Reference data: sites (shops), status groups, statuses and users (managers).

use chrono::NaiveDateTime;

/// A shop (`/api/v5/reference/sites`).
#[derive(Debug, Clone)]
pub struct Site {
    /// Numeric id.
    pub id: u64,
    /// Symbolic code, the key everywhere else.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Shop URL.
    pub url: String,
    /// ISO-3166 alpha-2 country.
    pub country_iso: String,
    /// Currency of the shop.
    pub currency: String,
    /// Position in lists.
    pub ordering: u32,
    /// Letter appended to order numbers (`7141C`).
    pub number_suffix: char,
    /// Prefix of the shop's order external ids (`wc-10931`).
    pub external_prefix: String,
    /// Legal entity behind the shop.
    pub legal_name: String,
    /// Its taxpayer number.
    pub inn: String,
    /// When the catalog was last loaded.
    pub catalog_updated_at: NaiveDateTime,
}

/// A status group (`/api/v5/reference/status-groups`).
#[derive(Debug, Clone)]
pub struct StatusGroup {
    /// `new`, `approval`, `assembling`, `delivery`, `complete` or `cancel`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Position of the group in the funnel.
    pub ordering: u32,
    /// "In progress" group.
    pub process: bool,
}

/// An order status (`/api/v5/reference/statuses`).
#[derive(Debug, Clone)]
pub struct Status {
    /// Code (may be a numeric string such as `"3"`).
    pub code: String,
    /// Display name.
    pub name: String,
    /// Inactive statuses still appear on old orders.
    pub active: bool,
    /// Position inside the group.
    pub ordering: u32,
    /// Code of the group.
    pub group: String,
}

/// A user (manager) of the account (`/api/v5/users`).
#[derive(Debug, Clone)]
pub struct User {
    /// Id, what orders reference as `managerId`.
    pub id: u64,
    /// When the user was created.
    pub created_at: NaiveDateTime,
    /// Deactivated users keep their id and still appear on orders.
    pub active: bool,
    /// Login email.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Patronymic, when known.
    pub patronymic: Option<String>,
    /// Job title.
    pub position: Option<String>,
    /// Work phone.
    pub phone: Option<String>,
    /// `free`, `busy`, `dinner` or `break`.
    pub status: &'static str,
    /// Online right now.
    pub online: bool,
    /// Administrator.
    pub is_admin: bool,
    /// Manager (may own orders).
    pub is_manager: bool,
    /// Groups: `(id, name, code)`.
    pub groups: Vec<(u64, &'static str, &'static str)>,
}
