//! The account's data as plain Rust values. Rendering to the API's JSON lives in `render`,
//! mutations (which also write history) in `orders`.

pub mod customer;
pub mod order;
pub mod reference;

pub use customer::{Address, Company, CorporateCustomer, Customer, Utm};
pub use order::{Buyer, Delivery, Item, Offer, Order, Payment, Removal};
pub use reference::{Site, Status, StatusGroup, User};
