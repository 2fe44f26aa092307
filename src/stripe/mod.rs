//! The Stripe gateway: every call paysync makes to Stripe goes through here.
//! `client` sends; the other modules build the calls of one resource each.

pub mod client;
pub mod form;
pub mod invoices;
pub mod json;
pub mod pages;
pub mod plans;
pub mod subscriptions;

pub use client::{Stripe, StripeError};
