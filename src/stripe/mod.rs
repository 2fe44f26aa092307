//! The Stripe gateway: every call paysync makes to Stripe goes through here.
//! `client` sends; the other modules build the calls of one resource each.

pub mod cards;
pub mod client;
pub mod customers;
pub mod json;
pub mod pages;
pub mod sources;

pub use client::{Stripe, StripeError};
