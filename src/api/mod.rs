//! The HTTP API, one module per area. Each module holds one poem-openapi
//! `#[OpenApi]` struct; `service()` puts them together, and the spec in
//! `openapi/openapi.json` is generated from exactly this.

pub mod access;
pub mod admin;
pub mod bucket;
pub mod health;
pub mod middleware;
pub mod observe;
pub mod write;

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum Tag {
    /// The caller's buckets.
    Bucket,
    /// Provisioning of buckets and members (admin token).
    Admin,
    /// Liveness and readiness.
    Health,
}

pub type Apis = (bucket::BucketApi, admin::AdminApi, health::HealthApi);

pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (bucket::BucketApi, admin::AdminApi, health::HealthApi),
        "paysync",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Billing backend of a bucket: cards, SEPA bank account, customer metadata, \
         subscriptions, trials, invoices and receipts. Writes go to Stripe; reads are \
         served from a local mirror kept in sync by Stripe webhooks and a reconciler.",
    )
}

/// The spec as the server publishes it at `/openapi.json`.
pub fn spec_json() -> String {
    service().spec()
}
