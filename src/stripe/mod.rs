//! The Stripe gateway: every call paysync makes to Stripe goes through here.
//! `client` sends; the other modules build the calls of one resource each.

pub mod client;
pub mod json;
pub mod pages;

pub use client::{Stripe, StripeError};
