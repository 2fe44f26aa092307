//! `/metrics` after a scripted scenario shows the counters at the values the
//! scenario implies. A test binary of its own: the metrics recorder is
//! process-wide, so no other test may move these counters meanwhile. Each
//! backend runs in turn and the test compares counter deltas.

#[path = "it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::*;
use reqwest::Method;
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every sample of the exposition: `name{labels}` → value.
async fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let text = app
        .anon(Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The value of the series whose name is `name` and whose labels include all of `labels`.
fn value(m: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .filter(|(k, _)| {
            labels
                .iter()
                .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .sum()
}

fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    value(after, name, labels) - value(before, name, labels)
}

async fn stripe_stub() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/customers/cus_metrics_\w+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "customer", "id": "cus_metrics_1", "created": 1_700_000_000,
            "metadata": {"vat_number": "FR123"},
            "sources": {"object": "list", "data": [], "has_more": false}
        })))
        .mount(&server)
        .await;
    for p in [
        "/v1/payment_methods",
        "/v1/subscriptions",
        "/v1/invoices",
        "/v1/charges",
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"object": "list", "data": [], "has_more": false})),
            )
            .mount(&server)
            .await;
    }
    server
}

async fn scenario(backend: Backend) {
    let stripe = stripe_stub().await;
    let app = TestApp::start_with(
        backend,
        Options {
            stripe_base: Some(stripe.uri()),
            ..Options::default()
        },
    )
    .await;
    let bucket = app.bucket("alice").await;
    app.ctx
        .db
        .link_customer(&bucket, "cus_metrics_1")
        .await
        .expect("link customer");
    let before = scrape(&app).await;

    // HTTP: 3 good reads, 2 without a token, 1 by a stranger (404).
    for _ in 0..3 {
        assert_eq!(
            call(app.get(&format!("/api/bucket/{bucket}"), "alice"))
                .await
                .0,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            call(app.anon(Method::GET, &format!("/api/bucket/{bucket}")))
                .await
                .0,
            401
        );
    }
    assert_eq!(
        call(app.get(&format!("/api/bucket/{bucket}"), "mallory"))
            .await
            .0,
        404
    );

    // Reconcile one customer against the stub: 1 customer fetch + 4 lists; the customer is new (drift 1).
    let report = paysync::sync::reconcile::full(&app.ctx.db, &app.ctx.stripe, &|_, _, _| {})
        .await
        .expect("reconcile");
    assert_eq!(report.drift.total(), 1, "{report:?}");

    let after = scrape(&app).await;
    let http = |status: &str| {
        delta(
            &before,
            &after,
            "paysync_http_requests_total",
            &[
                ("route", "getBucket"),
                ("method", "GET"),
                ("status", status),
            ],
        )
    };
    assert_eq!(http("200"), 3.0);
    assert_eq!(http("401"), 2.0);
    assert_eq!(http("404"), 1.0);
    assert_eq!(
        delta(
            &before,
            &after,
            "paysync_http_request_duration_seconds_count",
            &[("route", "getBucket")]
        ),
        6.0
    );
    let stripe_calls = delta(
        &before,
        &after,
        "paysync_stripe_requests_total",
        &[("status", "200")],
    );
    assert_eq!(
        stripe_calls,
        stripe.received_requests().await.unwrap_or_default().len() as f64
    );
    assert!(stripe_calls >= 5.0, "{stripe_calls} Stripe calls counted");
    assert_eq!(
        value(&after, "paysync_reconcile_drift", &[("kind", "customer")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_scripted_scenario() {
    scenario(Backend::Sqlite).await;
    scenario(Backend::Postgres).await;
}
