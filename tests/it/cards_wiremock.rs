//! Card writes against a scripted Stripe, for what localstripe cannot do:
//! rate limits, failures and time-outs (retried, or answered 500 with the
//! cache unchanged), and the idempotency keys that reach Stripe.

use std::time::Duration;

use paysync::store::Kind;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::both;
use crate::common::*;

const CUS: &str = "cus_wire1";
const CARD: &str = "card_wire1";

fn card_json() -> Value {
    json!({"object": "card", "id": CARD, "customer": CUS, "brand": "Visa", "last4": "4242",
        "exp_month": "12", "exp_year": "2030", "created": 1_700_000_000})
}

/// A Stripe that creates customer `cus_wire1` and updates it; the sources
/// endpoint is mounted by each test.
async fn fake_stripe() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(|req: &Request| {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body).into_owned().collect();
            let bucket = form.iter().find(|(k, _)| k == "metadata[bucket_id]").map(|(_, v)| v.clone());
            ResponseTemplate::new(200).set_body_json(json!({"object": "customer", "id": CUS, "created": 1_700_000_000,
                "metadata": {"bucket_id": bucket}, "default_source": null, "invoice_settings": {"default_payment_method": null}}))
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/customers/{CUS}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "customer", "id": CUS,
            "created": 1_700_000_000, "metadata": {}, "default_source": CARD, "invoice_settings": {"default_payment_method": null}})))
        .mount(&server)
        .await;
    server
}

fn sources_path() -> String {
    format!("/v1/customers/{CUS}/sources")
}

async fn app_on(b: Backend, server: &MockServer, timeout: Duration, attempts: u32) -> TestApp {
    TestApp::start_with(
        b,
        Options {
            stripe_base: Some(server.uri()),
            stripe_timeout: timeout,
            stripe_max_attempts: attempts,
            ..Options::default()
        },
    )
    .await
}

fn attach_req(app: &TestApp, bucket: &str) -> reqwest::RequestBuilder {
    app.post(&format!("/api/bucket/{bucket}/payment/cards"), "alice")
        .json(&json!({"token": "tok_wire"}))
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn key_of(r: &Request) -> Option<String> {
    r.headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn cached_sources(app: &TestApp, bucket: &str) -> usize {
    app.ctx
        .db
        .bucket_objects(Kind::Source, bucket, &Default::default())
        .await
        .unwrap()
        .len()
}

/// 429 with Retry-After, then success: retried once, with the same idempotency key.
async fn rate_limited_then_ok(b: Backend) {
    let server = fake_stripe().await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(
            json!({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(card_json()))
        .mount(&server)
        .await;
    let app = app_on(b, &server, Duration::from_secs(5), 3).await;
    let bucket = app.bucket("alice").await;

    let (status, body) = call(attach_req(&app, &bucket)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["exp_month"], 12);
    let tries = requests_to(&server, &sources_path()).await;
    assert_eq!(tries.len(), 2);
    assert!(
        key_of(&tries[0]).is_some() && key_of(&tries[0]) == key_of(&tries[1]),
        "a retry reuses the key"
    );
    assert_eq!(cached_sources(&app, &bucket).await, 1);
}

/// A 500, then success.
async fn failing_then_ok(b: Backend) {
    let server = fake_stripe().await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"type": "api_error", "message": "boom"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(card_json()))
        .mount(&server)
        .await;
    let app = app_on(b, &server, Duration::from_secs(5), 3).await;
    let bucket = app.bucket("alice").await;
    let (status, body) = call(attach_req(&app, &bucket)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(requests_to(&server, &sources_path()).await.len(), 2);
}

/// Stripe keeps rate-limiting: 500 `stripe_error` with Retry-After, and no card cached.
async fn rate_limited_for_good(b: Backend) {
    let server = fake_stripe().await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(
            json!({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}}),
        ))
        .mount(&server)
        .await;
    let app = app_on(b, &server, Duration::from_secs(5), 2).await;
    let bucket = app.bucket("alice").await;
    let resp = attach_req(&app, &bucket).send().await.unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let got = status_json(resp).await;
    assert_error(&got, 500, "stripe_error");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(cached_sources(&app, &bucket).await, 0);
    assert_error(
        &call(app.get(&format!("/api/bucket/{bucket}/payment/cards"), "alice")).await,
        404,
        "no_cards",
    );
}

/// Stripe does not answer in time: 500 `stripe_error`, no card cached.
async fn time_out(b: Backend) {
    let server = fake_stripe().await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(card_json())
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let app = app_on(b, &server, Duration::from_millis(500), 1).await;
    let bucket = app.bucket("alice").await;
    let got = call(attach_req(&app, &bucket)).await;
    assert_error(&got, 500, "stripe_error");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{:?}",
        got.1
    );
    assert_eq!(cached_sources(&app, &bucket).await, 0);
}

/// Every write carries a key; a caller's key reaches Stripe namespaced by
/// bucket and route; the customer's key comes from the bucket id.
async fn idempotency_keys(b: Backend) {
    let server = fake_stripe().await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(card_json()))
        .mount(&server)
        .await;
    let app = app_on(b, &server, Duration::from_secs(5), 1).await;
    let bucket = app.bucket("alice").await;

    let (status, body) =
        call(attach_req(&app, &bucket).header("Idempotency-Key", "order-42")).await;
    assert_eq!(status, 200, "{body}");
    let created = requests_to(&server, "/v1/customers").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        key_of(&created[0]).as_deref(),
        Some(format!("paysync:customer:{bucket}").as_str())
    );
    let attached = requests_to(&server, &sources_path()).await;
    assert_eq!(
        key_of(&attached[0]).as_deref(),
        Some(format!("paysync:{bucket}:attachCreditCard:order-42:attach").as_str())
    );
    let defaulted = requests_to(&server, &format!("/v1/customers/{CUS}")).await;
    assert_eq!(
        key_of(&defaulted[0]).as_deref(),
        Some(format!("paysync:{bucket}:attachCreditCard:order-42:default").as_str())
    );

    // Without a caller's key, every write still carries one, each different.
    let (status, _) = call(app.post(
        &format!("/api/bucket/{bucket}/payment/card/{CARD}/default"),
        "alice",
    ))
    .await;
    assert_eq!(status, 200);
    let writes: Vec<Request> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() != "GET")
        .collect();
    assert_eq!(writes.len(), 4);
    assert!(
        writes
            .iter()
            .all(|r| key_of(r).is_some_and(|k| !k.is_empty())),
        "every write has a key"
    );
    let last = key_of(writes.last().unwrap()).unwrap();
    assert!(!last.contains("order-42"));

    // A key Stripe would refuse is refused here first.
    let long = "k".repeat(300);
    assert_error(
        &call(attach_req(&app, &bucket).header("Idempotency-Key", long)).await,
        400,
        "invalid_idempotency_key",
    );
}

/// Two first writes at once: one customer is created.
async fn concurrent_first_writes(b: Backend) {
    let server = fake_stripe().await;
    Mock::given(method("POST"))
        .and(path(sources_path()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(card_json())
                .set_delay(Duration::from_millis(100)),
        )
        .mount(&server)
        .await;
    let app = app_on(b, &server, Duration::from_secs(5), 1).await;
    let bucket = app.bucket("alice").await;
    let (a, c) = tokio::join!(
        call(attach_req(&app, &bucket)),
        call(attach_req(&app, &bucket))
    );
    assert_eq!((a.0, c.0), (200, 200));
    assert_eq!(requests_to(&server, "/v1/customers").await.len(), 1);
}

both!(
    rate_limited_then_ok,
    failing_then_ok,
    rate_limited_for_good,
    time_out,
    idempotency_keys,
    concurrent_first_writes
);
