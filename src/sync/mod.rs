//! Keeping the cache in step with Stripe. Data flows one way: Stripe →
//! `apply` → `store` → read routes.
//! - `apply`: store one Stripe object under the watermark rule (used by every writer)
//! - `signature`: `Stripe-Signature` verification of webhook deliveries
//! - `events`: one event → its object → `apply::store` (ordering, ties, re-fetch)
//! - `ingest`: webhook deliveries into the inbox, many per commit, applied in that same transaction
//! - `worker`: applies inbox events (claims, retries with backoff, dead events)
//! - `events_cli`: `paysync events list|replay`
//! - `jobs`: scheduled jobs of a running server
//! - `subscriptions`: refresh a subscription and its latest payment after a write

pub mod apply;
pub mod catchup;
pub mod compact;
pub mod events;
pub mod events_cli;
pub mod ingest;
pub mod jobs;
pub mod leader;
pub mod progress;
pub mod reconcile;
pub mod signature;
pub mod subscriptions;
pub mod worker;
