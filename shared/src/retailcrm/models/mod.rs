//! Typed RetailCRM API v5 bodies: one `*Response` type per endpoint the client calls, and the
//! entities inside them. Only the fields dealflow reads (and those DESIGN §4/§5 name) are
//! modelled: every other field is skipped, because the API adds fields over time and a field
//! nobody reads must never dead-letter a good order. Lenient exactly where the API is known to
//! vary (see `lenient`), strict elsewhere. No type here denies unknown fields.

pub mod credentials;
pub mod customer;
pub mod envelope;
pub mod history;
pub mod order;
pub mod reference;
pub mod settings;
pub mod user;

pub use credentials::{ApiVersionsResponse, Credentials};
pub use customer::{
    Company, Customer, CustomerCorporate, CustomerCorporateResponse, CustomerResponse,
    OrderCustomer, Phone, Source,
};
pub use envelope::{ApiErrors, CombinedTo, ErrorEnvelope, Pagination};
pub(crate) use history::LenientHistoryResponse;
pub use history::{HistoryPage, OrderHistoryEntry, OrdersHistoryResponse, UnreadableEntry};
pub use order::{
    CustomFields, Delivery, Offer, Order, OrderItem, OrderResponse, OrdersPage, OrdersResponse,
    Payment,
};
pub use reference::{
    Dictionary, Site, SitesResponse, Status, StatusGroup, StatusGroupsResponse, StatusesResponse,
};
pub use settings::{SettingValue, Settings, SettingsResponse, UnknownTimeZone};
pub use user::{User, UserResponse, UsersPage, UsersResponse};
