//! Keeping the cache in step with Stripe. Data flows one way: Stripe →
//! `apply` → `store` → read routes.
//! - `apply`: store one Stripe object under the watermark rule (used by every writer)
//! - `jobs`: scheduled jobs of a running server
//! - `subscriptions`: refresh a subscription and its latest payment after a write

pub mod apply;
pub mod catchup;
pub mod jobs;
pub mod leader;
pub mod progress;
pub mod reconcile;
pub mod subscriptions;
