//! Errors of the test controls (the simulated API answers with RetailCRM's own error bodies,
//! see `routes::errors`).

/// Why a control could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No account with this index.
    #[error("account {0} does not exist")]
    UnknownAccount(usize),
    /// No order with this id.
    #[error("order {0} does not exist")]
    UnknownOrder(u64),
    /// The order was deleted or merged away.
    #[error("order {0} was deleted or merged")]
    OrderRemoved(u64),
    /// No status with this code.
    #[error("unknown status code {0:?}")]
    UnknownStatus(String),
    /// No site with this code.
    #[error("unknown site code {0:?}")]
    UnknownSite(String),
    /// No user with this id.
    #[error("user {0} does not exist")]
    UnknownUser(u64),
    /// No customer with this id.
    #[error("customer {0} does not exist")]
    UnknownCustomer(u64),
    /// The order has no such item.
    #[error("order {order} has no item {item}")]
    UnknownItem {
        /// The order.
        order: u64,
        /// The missing item.
        item: u64,
    },
    /// No API key with this index.
    #[error("key #{0} does not exist")]
    UnknownKey(usize),
    /// A malformed argument.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl SimError {
    /// Stable snake_case code for the control API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::UnknownAccount(_) => "unknown_account",
            SimError::UnknownOrder(_) => "unknown_order",
            SimError::OrderRemoved(_) => "order_removed",
            SimError::UnknownStatus(_) => "unknown_status",
            SimError::UnknownSite(_) => "unknown_site",
            SimError::UnknownUser(_) => "unknown_user",
            SimError::UnknownCustomer(_) => "unknown_customer",
            SimError::UnknownItem { .. } => "unknown_item",
            SimError::UnknownKey(_) => "unknown_key",
            SimError::Invalid(_) => "invalid_argument",
        }
    }
}
