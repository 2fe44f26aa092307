//! The HTTP API, one module per area. Each module holds one poem-openapi
//! `#[OpenApi]` struct; `service()` puts them together, and the spec in
//! `openapi/openapi.json` is generated from exactly this.

pub mod access;
pub mod admin;
pub mod banks;
pub mod bucket;
pub mod cancel;
pub mod cards;
pub mod contract;
pub mod health;
pub mod iban;
pub mod invoices;
pub mod json_text;
pub mod metadata;
pub mod middleware;
pub mod observe;
pub mod ops;
pub mod plans;
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
    plans::PlansApi,
    trial::TrialApi,
    invoices::InvoicesApi,
    admin::AdminApi,
    ops::OpsApi,
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
            plans::PlansApi,
            trial::TrialApi,
            invoices::InvoicesApi,
            admin::AdminApi,
            ops::OpsApi,
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

#[cfg(test)]
mod tests {
    /// poem-openapi writes one path item per API struct: a path declared in two
    /// structs appears twice in the spec, and a JSON reader keeps only one of
    /// them (its other operations vanish from every generated client).
    #[test]
    fn no_operation_is_lost_from_the_spec() {
        let raw = super::spec_json();
        let declared = raw.matches("\"operationId\"").count();
        let spec: serde_json::Value = serde_json::from_str(&raw).expect("spec is JSON");
        let kept: usize = spec["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|ops| ops.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(kept, declared, "a path is declared by two API structs");
    }
}
