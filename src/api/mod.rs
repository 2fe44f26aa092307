//! The HTTP API, one module per area. Each module holds one poem-openapi
//! `#[OpenApi]` struct; `service()` puts them together, and the spec in
//! `openapi/openapi.json` is generated from exactly this.

pub mod access;
pub mod admin;
pub mod banks;
pub mod bucket;
pub mod cards;
pub mod contract;
pub mod health;
pub mod iban;
pub mod invoices;
pub mod json_text;
pub mod metadata;
pub mod middleware;
pub mod observe;
pub mod schema;
pub mod subscription;
pub mod text;
pub mod trial;
pub mod webhook;
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
    /// The bucket's cards, SEPA bank account and billing metadata.
    Payment,
    /// Plans, subscriptions and trials.
    Subscription,
    /// Invoices and receipts.
    Invoices,
}

pub type Apis = (
    bucket::BucketApi,
    cards::CardsApi,
    banks::BanksApi,
    metadata::MetadataApi,
    subscription::SubscriptionApi,
    trial::TrialApi,
    invoices::InvoicesApi,
    admin::AdminApi,
    health::HealthApi,
);

pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            bucket::BucketApi,
            cards::CardsApi,
            banks::BanksApi,
            metadata::MetadataApi,
            subscription::SubscriptionApi,
            trial::TrialApi,
            invoices::InvoicesApi,
            admin::AdminApi,
            health::HealthApi,
        ),
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

/// The methods the spec documents for a request path (for the `Allow` header of a 405).
pub fn allowed_methods(path: &str) -> Option<String> {
    use std::sync::OnceLock;
    static ROUTES: OnceLock<Vec<(Vec<String>, String)>> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap_or_default();
        let paths = spec
            .get("paths")
            .and_then(|p| p.as_object())
            .cloned()
            .unwrap_or_default();
        paths
            .into_iter()
            .map(|(template, ops)| {
                let segments = template.split('/').map(str::to_string).collect();
                let methods: Vec<String> = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                (segments, methods.join(", "))
            })
            .collect()
    });
    let wanted: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .find(|(segments, _)| {
            segments.len() == wanted.len()
                && segments
                    .iter()
                    .zip(&wanted)
                    .all(|(t, w)| t == w || (t.starts_with('{') && !w.is_empty()))
        })
        .map(|(_, methods)| methods.clone())
}
