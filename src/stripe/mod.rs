//! The Stripe gateway: every call paysync makes to Stripe goes through here.

pub mod json;
