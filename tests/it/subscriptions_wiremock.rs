//! Subscribe behaviour localstripe cannot show: the coupon as sent to Stripe,
//! Stripe refusing a coupon, Stripe failing between creating the subscription
//! and fetching its invoice, and the idempotency keys of the writes.

use paysync::store::{Kind, Watermark};
use paysync::sync::apply;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::both;
use crate::common::*;

const CUSTOMER: &str = "cus_wire";
const PLAN: &str = "paysync_starter_monthly";

/// A server talking to wiremock, and a bucket whose customer (with a default card) is cached.
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
    let customer = json!({"object": "customer", "id": CUSTOMER, "created": 1_700_000_000, "default_source": "card_wire", "metadata": {"bucket_id": bucket}});
    let card = json!({"object": "card", "id": "card_wire", "customer": CUSTOMER, "last4": "4242"});
    apply::store(&app.ctx.db, &customer, &wm, false, true)
        .await
        .unwrap();
    apply::store(&app.ctx.db, &card, &wm, false, true)
        .await
        .unwrap();
    (app, server, bucket)
}

fn charge() -> Value {
    json!({"object": "charge", "id": "ch_wire", "customer": CUSTOMER, "amount": 1900, "currency": "usd", "status": "succeeded",
           "created": 1_700_000_000, "invoice": "in_wire", "payment_intent": "pi_wire", "receipt_url": "https://pay.example/r/1"})
}

fn intent() -> Value {
    json!({"object": "payment_intent", "id": "pi_wire", "customer": CUSTOMER, "status": "succeeded", "invoice": "in_wire",
           "created": 1_700_000_000, "client_secret": "pi_wire_secret_x", "latest_charge": "ch_wire"})
}

fn invoice(payment_intent: Value, charge: Value) -> Value {
    json!({"object": "invoice", "id": "in_wire", "customer": CUSTOMER, "subscription": "sub_wire", "status": "paid",
           "created": 1_700_000_000, "amount_paid": 1900, "payment_intent": payment_intent, "charge": charge})
}

fn subscription(latest_invoice: Value, discount: Value) -> Value {
    json!({"object": "subscription", "id": "sub_wire", "customer": CUSTOMER, "status": "active", "created": 1_700_000_000,
           "plan": {"id": PLAN}, "items": {"object": "list", "data": [{"id": "si_wire", "plan": {"id": PLAN}}]},
           "latest_invoice": latest_invoice, "discount": discount})
}

fn list(data: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"object": "list", "data": data, "has_more": false}))
}

/// The form pairs of a request body.
fn form_of(req: &wiremock::Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect()
}

async fn posts(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    let all = server.received_requests().await.unwrap_or_default();
    all.into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == p)
        .collect()
}

async fn coupon_reaches_stripe(b: Backend) {
    let (app, server, bucket) = setup(b).await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions"))
        .respond_with(list(vec![]))
        .mount(&server)
        .await;
    let paid = subscription(
        invoice(intent(), charge()),
        json!({"coupon": {"id": "SPRING", "percent_off": 20}}),
    );
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(paid))
        .mount(&server)
        .await;

    let resp = app
        .post(&format!("/api/bucket/{bucket}/payment/subscribe"), "alice")
        .header("Idempotency-Key", "click-1")
        .json(&json!({"plan": "starter", "coupon_id": "SPRING"}));
    let (status, body) = call(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["discount"]["coupon"]["id"], "SPRING");
    assert_eq!(body["bucket"]["plan"], "starter");

    let sent = posts(&server, "/v1/subscriptions").await;
    assert_eq!(sent.len(), 1);
    let form = form_of(&sent[0]);
    for pair in [
        ("customer", CUSTOMER),
        ("items[0][plan]", PLAN),
        ("discounts[0][coupon]", "SPRING"),
    ] {
        assert!(
            form.contains(&(pair.0.to_string(), pair.1.to_string())),
            "{pair:?} not in {form:?}"
        );
    }
    let key = sent[0]
        .headers
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok());
    assert_eq!(
        key,
        Some(format!("paysync:{bucket}:subscribe.create:click-1").as_str())
    );

    // What the answer showed is in the cache: subscription, invoice, receipt.
    let (_, invoices) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/invoices"), "alice")).await;
    assert_eq!(invoices[0]["id"], "in_wire", "{invoices}");
    assert_eq!(
        invoices[0]["payment_intent"], "pi_wire",
        "expansions are stored as ids"
    );
    let (_, receipts) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/receipts"), "alice")).await;
    assert_eq!(
        receipts[0]["receipt_url"], "https://pay.example/r/1",
        "{receipts}"
    );
}

async fn unknown_coupon_is_400(b: Backend) {
    let (app, server, bucket) = setup(b).await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions"))
        .respond_with(list(vec![]))
        .mount(&server)
        .await;
    let refusal = json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "discounts[0][coupon]",
                                   "message": "No such coupon: 'NOPE'"}});
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(refusal))
        .mount(&server)
        .await;

    let got = call(
        app.post(&format!("/api/bucket/{bucket}/payment/subscribe"), "alice")
            .json(&json!({"plan": "starter", "coupon_id": "NOPE"})),
    )
    .await;
    assert_error(&got, 400, "resource_missing");
    assert_eq!(got.1["error"]["param"], "discounts[0][coupon]");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("NOPE"));
    // Without a caller's key, the write still carries one (made by the gateway).
    let sent = posts(&server, "/v1/subscriptions").await;
    assert!(
        sent[0]
            .headers
            .get("Idempotency-Key")
            .is_some_and(|k| !k.is_empty())
    );
    assert!(
        app.ctx
            .db
            .bucket_objects(Kind::Subscription, &bucket, &Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn stripe_failure_midway_leaves_a_consistent_cache(b: Backend) {
    let (app, server, bucket) = setup(b).await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions"))
        .respond_with(list(vec![]))
        .mount(&server)
        .await;
    // Created, but the invoice cannot be fetched.
    let created = subscription(json!("in_wire"), Value::Null);
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created.clone()))
        .mount(&server)
        .await;
    let boom = json!({"error": {"type": "api_error", "message": "boom"}});
    Mock::given(method("GET"))
        .and(path("/v1/invoices/in_wire"))
        .respond_with(ResponseTemplate::new(500).set_body_json(boom))
        .mount(&server)
        .await;

    let subscribe = || {
        app.post(&format!("/api/bucket/{bucket}/payment/subscribe"), "alice")
            .json(&json!({"plan": "starter"}))
    };
    assert_error(&call(subscribe()).await, 500, "stripe_error");
    // Nothing half-written: no subscription without its invoice, no plan.
    assert_error(
        &call(app.get(
            &format!("/api/bucket/{bucket}/payment/subscription"),
            "alice",
        ))
        .await,
        404,
        "no_subscription",
    );
    assert_error(
        &call(app.get(&format!("/api/bucket/{bucket}/payment/invoices"), "alice")).await,
        404,
        "no_invoices",
    );
    let (_, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(view["plan"], "free");

    // Stripe is back: retrying finds the subscription in Stripe instead of making a second one.
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions"))
        .respond_with(list(vec![created.clone()]))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_wire"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created))
        .mount(&server)
        .await;
    let inv = invoice(json!("pi_wire"), json!("ch_wire"));
    Mock::given(method("GET"))
        .and(path("/v1/invoices/in_wire"))
        .respond_with(ResponseTemplate::new(200).set_body_json(inv))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_wire"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/charges/ch_wire"))
        .respond_with(ResponseTemplate::new(200).set_body_json(charge()))
        .mount(&server)
        .await;

    let (status, body) = call(subscribe()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["id"], "sub_wire");
    assert_eq!(body["bucket"]["plan"], "starter");
    assert!(
        posts(&server, "/v1/subscriptions").await.is_empty(),
        "no second subscription"
    );
    let (_, invoices) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/invoices"), "alice")).await;
    assert_eq!(invoices[0]["id"], "in_wire", "{invoices}");
    let (_, receipts) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/receipts"), "alice")).await;
    assert_eq!(receipts[0]["id"], "ch_wire", "{receipts}");
}

both!(
    coupon_reaches_stripe,
    unknown_coupon_is_400,
    stripe_failure_midway_leaves_a_consistent_cache
);
