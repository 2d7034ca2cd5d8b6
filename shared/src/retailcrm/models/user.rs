//! Users (responsible managers): `GET /api/v5/users/{id}` and `GET /api/v5/users`
//! (API-NOTES §7).

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::customer::join_name;
use super::envelope::Pagination;
use crate::retailcrm::time;

/// A CRM user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id (the orders' `managerId`).
    pub id: i64,
    /// Creation time (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub created_at: Option<NaiveDateTime>,
    /// Active (can log in).
    #[serde(default)]
    pub active: Option<bool>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Patronymic.
    #[serde(default)]
    pub patronymic: Option<String>,
    /// Job title.
    #[serde(default)]
    pub position: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// `free`, `busy`, `dinner`, `break`.
    #[serde(default)]
    pub status: Option<String>,
    /// Online now.
    #[serde(default)]
    pub online: Option<bool>,
    /// Administrator.
    #[serde(default)]
    pub is_admin: Option<bool>,
    /// Manager.
    #[serde(default)]
    pub is_manager: Option<bool>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<UserGroup>,
}

impl User {
    /// First and last name joined by a space (DESIGN §5: manager name), skipping empty parts.
    pub fn display_name(&self) -> Option<String> {
        join_name(&[&self.first_name, &self.last_name])
    }
}

/// A user group (`groups[]` of a user, or `GET /api/v5/user-groups`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserGroup {
    /// Group id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Code.
    #[serde(default)]
    pub code: Option<String>,
    /// Members are managers.
    #[serde(default)]
    pub is_manager: Option<bool>,
    /// Order types the group may see.
    #[serde(default)]
    pub granted_order_types: Vec<String>,
    /// Sites the group may see.
    #[serde(default)]
    pub granted_sites: Vec<String>,
}

/// Body of `GET /api/v5/users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserResponse {
    /// Always `true` here.
    pub success: bool,
    /// The user.
    pub user: User,
}

/// Body of `GET /api/v5/users`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UsersResponse {
    /// Always `true` here.
    pub success: bool,
    /// Paging.
    pub pagination: Pagination,
    /// The page of users.
    pub users: Vec<User>,
}

/// One page of users, as [`crate::retailcrm::RetailCrmClient::users`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    /// The users on this page.
    pub users: Vec<User>,
    /// Paging.
    pub pagination: Pagination,
}
