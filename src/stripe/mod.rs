//! The Stripe gateway: every call paysync makes to Stripe goes through here.
//! `client` sends; the other modules build the calls of one resource each.

pub mod cancel;
pub mod cards;
pub mod client;
pub mod customers;
pub mod form;
pub mod invoices;
pub mod json;
pub mod pages;
pub mod plans;
pub mod sources;
pub mod stats;
pub mod subscriptions;
pub mod version;

pub use client::{Stripe, StripeError};
