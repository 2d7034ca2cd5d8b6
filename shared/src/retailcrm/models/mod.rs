//! Typed RetailCRM API v5 bodies: one `*Response` type per endpoint the client calls, and the
//! entities inside them. Lenient exactly where the API is known to vary (see `lenient`),
//! strict elsewhere; unknown fields are ignored because the API adds fields over time.

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
    Address, Company, ContactCompany, Contragent, Customer, CustomerContact, CustomerCorporate,
    CustomerCorporateResponse, CustomerRef, CustomerResponse, CustomerTag, OrderCustomer, Phone,
    Source,
};
pub use envelope::{ApiErrors, CombinedTo, ErrorEnvelope, Pagination};
pub(crate) use history::LenientHistoryResponse;
pub use history::{
    ApiKeyRef, HistoryPage, OrderHistoryEntry, OrdersHistoryResponse, UnreadableEntry, UserRef,
};
pub use order::{
    CodeRef, CodeValue, CustomFields, Delivery, DeliveryService, DeliveryTime, Discount, ItemPrice,
    ItemProperty, Offer, Order, OrderItem, OrderLink, OrderRef, OrderResponse, OrdersPage,
    OrdersResponse, Payment, Unit,
};
pub use reference::{
    Dictionary, ReferenceEntry, Site, SitesResponse, Status, StatusGroup, StatusGroupsResponse,
    StatusesResponse,
};
pub use settings::{
    NonWorkingDays, SettingValue, Settings, SettingsResponse, UnknownTimeZone, WorkTime,
};
pub use user::{User, UserGroup, UserResponse, UsersPage, UsersResponse};
