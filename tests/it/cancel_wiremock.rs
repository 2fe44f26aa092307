//! Cancel and resume where localstripe cannot show it: the idempotency keys
//! Stripe receives, and Stripe failing (the cache is left as it was).

use paysync::store::Watermark;
use paysync::sync::apply;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both;
use crate::common::*;

const CUSTOMER: &str = "cus_wire";

fn subscription(cancel_at_period_end: bool) -> Value {
    json!({"object": "subscription", "id": "sub_wire", "customer": CUSTOMER, "status": "active",
           "created": 1_700_000_000, "current_period_end": 1_900_000_000,
           "cancel_at_period_end": cancel_at_period_end, "plan": {"id": "paysync_starter_monthly"},
           "items": {"object": "list", "data": [{"id": "si_wire", "plan": {"id": "paysync_starter_monthly"}}]}})
}

/// A server talking to wiremock, and a bucket whose active subscription is cached.
async fn setup(b: Backend) -> (TestApp, MockServer, String) {
    let server = MockServer::start().await;
    let opts = Options {
        stripe_base: Some(server.uri()),
        stripe_max_attempts: 1,
        ..Options::default()
    };
    let app = TestApp::start_with(b, opts).await;
    let bucket = app.bucket("alice").await;
    app.ctx.db.link_customer(&bucket, CUSTOMER).await.unwrap();
    let wm = Watermark::api("test");
    let customer = json!({"object": "customer", "id": CUSTOMER, "created": 1_700_000_000, "metadata": {"bucket_id": bucket}});
    for obj in [customer, subscription(false)] {
        apply::store(&app.ctx.db, &obj, &wm, false, true)
            .await
            .unwrap();
    }
    (app, server, bucket)
}

async fn cancel_at_period_end(app: &TestApp, bucket: &str) -> Value {
    let (status, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(status, 200, "{view}");
    view["subscription"]["cancel_at_period_end"].clone()
}

async fn stripe_failing_leaves_the_cache(b: Backend) {
    let (app, server, bucket) = setup(b).await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_wire"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"type": "api_error", "message": "Stripe is having a bad day"}}),
        ))
        .mount(&server)
        .await;
    let path = format!("/api/bucket/{bucket}/payment/subscription");
    assert_error(&call(app.delete(&path, "alice")).await, 500, "stripe_error");
    assert_eq!(cancel_at_period_end(&app, &bucket).await, false);
    assert_error(
        &call(app.post(&format!("{path}/resume"), "alice")).await,
        500,
        "stripe_error",
    );
}

async fn writes_carry_idempotency_keys(b: Backend) {
    let (app, server, bucket) = setup(b).await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_wire"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(true)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_wire"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(false)))
        .mount(&server)
        .await;
    let path = format!("/api/bucket/{bucket}/payment/subscription");
    let (status, body) = call(
        app.delete(&path, "alice")
            .header("Idempotency-Key", "click-1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cancel_at_period_end(&app, &bucket).await, true);
    let (status, body) = call(app.post(&format!("{path}/resume"), "alice")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cancel_at_period_end(&app, &bucket).await, false);

    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(sent.len(), 2, "one Stripe write each");
    let key = |r: &wiremock::Request| {
        r.headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let body = |r: &wiremock::Request| String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(
        key(&sent[0]).as_deref(),
        Some(format!("paysync:{bucket}:cancelSubscription.sub_wire.period_end:click-1").as_str())
    );
    assert_eq!(body(&sent[0]), "cancel_at_period_end=true");
    // Without the caller's key, the gateway makes a fresh one: still a key.
    assert!(
        key(&sent[1]).is_some_and(|k| k.starts_with("paysync-")),
        "{:?}",
        key(&sent[1])
    );
    assert_eq!(body(&sent[1]), "cancel_at_period_end=false");
}

both!(
    stripe_failing_leaves_the_cache,
    writes_carry_idempotency_keys
);
