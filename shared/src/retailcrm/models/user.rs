//! Users (responsible managers): `GET /api/v5/users/{id}` and `GET /api/v5/users`
//! (API-NOTES §7).

use serde::Deserialize;

use super::customer::join_name;
use super::envelope::Pagination;

/// A CRM user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id (the orders' `managerId`).
    pub id: i64,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
}

impl User {
    /// First and last name joined by a space (DESIGN §5: manager name), skipping empty parts.
    pub fn display_name(&self) -> Option<String> {
        join_name(&[&self.first_name, &self.last_name])
    }
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
