//! paysync: the billing backend of a bucket.
//!
//! Data flows one way: Stripe → `sync` (webhook, apply, reconcile) → `store`
//! → read routes in `api`. Write routes call Stripe through `stripe` and store
//! Stripe's answer through the same `store` functions before answering.

pub mod api;
pub mod app;
pub mod auth;
pub mod billing;
pub mod cfg;
pub mod cli;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod pages;
pub mod plans;
pub mod store;
pub mod stripe;
pub mod sync;
