//! paysync against a Stripe that answers in the newest API version's shapes
//! (the wiremock stand-in of `common::standin`, fed from
//! `fixtures/stripe/<newest>/`, which refuses removed expansions as Stripe
//! does): subscribe with and without 3-D Secure, paymentIntentSucceed, a
//! coupon, the full reconcile, an invoice payment that arrives before its
//! invoice, and events paysync cannot mirror.

use paysync::store::objects::Page;
use paysync::store::{Kind, Watermark};
use paysync::sync::{apply, reconcile};
use serde_json::{Value, json};

use crate::both;
use crate::common::shapes::{self, *};
use crate::common::standin::{Seen, StandIn};
use crate::common::*;
use paysync::stripe::version::LEGACY;

fn newest(name: &str) -> Value {
    shapes::object(NEWEST, name)
}

/// The paid story, as the stand-in holds it after the first payment went through.
fn paid_account() -> Vec<Value> {
    [
        "customer",
        "card",
        "source_sepa_debit",
        "payment_method_card",
        "subscription",
        "invoice",
        "invoice_payment",
        "payment_intent",
        "charge",
    ]
    .into_iter()
    .map(newest)
    .collect()
}

/// A paysync pinned to the newest version, talking to `standin`, with the
/// story's bucket linked to its customer (cached with its cards).
async fn setup(b: Backend, standin: &StandIn, worker: bool) -> TestApp {
    let opts = Options {
        stripe_base: Some(standin.uri()),
        stripe_api_version: NEWEST,
        stripe_max_attempts: 1,
        worker,
        ..Options::default()
    };
    let app = TestApp::start_with(b, opts).await;
    app.bucket_with_id(BUCKET, "alice").await;
    app
}

/// Cache the customer and its cards, as the card routes would have.
async fn cache_customer(app: &TestApp) {
    app.ctx.db.link_customer(BUCKET, CUSTOMER).await.unwrap();
    let wm = Watermark::api("test");
    for name in ["customer", "card", "payment_method_card"] {
        apply::store(&app.ctx.db, &newest(name), &wm, false, true)
            .await
            .unwrap();
    }
}

fn route(path: &str) -> String {
    format!("/api/bucket/{BUCKET}/payment{path}")
}

#[tokio::test]
async fn the_stand_in_refuses_removed_expansions_like_stripe() {
    let standin = StandIn::start(paid_account()).await;
    let http = reqwest::Client::new();
    let get = |path: &str, version: &str| {
        http.get(format!("{}/v1{path}", standin.uri()))
            .bearer_auth("sk_test_x")
            .header("Stripe-Version", version)
    };
    let (status, body) = call(get(
        &format!("/subscriptions/{SUBSCRIPTION}?expand[]=latest_invoice.payment_intent"),
        NEWEST,
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "This property cannot be expanded (payment_intent)."
    );
    let (status, body) = call(get(
        &format!("/invoices/{INVOICE}?expand[]=payments&expand[]=confirmation_secret"),
        NEWEST,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["payments"]["data"][0]["payment"]["payment_intent"],
        INTENT
    );
    assert!(body["confirmation_secret"]["client_secret"].is_string());
    let (status, _) = call(get(&format!("/invoices/{INVOICE}"), LEGACY)).await;
    assert_eq!(status, 400, "a call pinned to another version is refused");
}

async fn subscribe_without_3d_secure(b: Backend) {
    let standin = StandIn::start(
        paid_account()
            .into_iter()
            .filter(|o| o["object"] != "subscription"),
    )
    .await;
    standin.creates(newest("subscription"));
    let app = setup(b, &standin, false).await;
    cache_customer(&app).await;

    let (status, body) = call(
        app.post(&route("/subscribe"), "alice")
            .json(&json!({"plan": "starter"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(standin.refused().is_empty(), "{:?}", standin.refused());
    assert_eq!(body["bucket"]["plan"], "starter");
    assert!(body.get("payment_intent").is_none(), "{body}");
    assert_eq!(body["subscription"]["id"], SUBSCRIPTION);
    assert_eq!(body["subscription"]["current_period_end"], PERIOD_END);
    assert_eq!(
        body["bucket"]["subscription"]["current_period_end"],
        PERIOD_END
    );

    let requests = standin.requests().await;
    let create = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/v1/subscriptions")
        .expect("the subscription was created");
    let asked = create.expansions();
    assert!(
        asked.contains(&"latest_invoice.payments")
            && asked.contains(&"latest_invoice.confirmation_secret"),
        "{asked:?}"
    );

    // The invoice, its payment, the intent and the charge are in the cache, linked.
    let (_, invoices) = call(app.get(&route("/invoices"), "alice")).await;
    let inv = &invoices[0];
    assert_eq!(
        (&inv["id"], &inv["subscription"], &inv["paid"]),
        (&json!(INVOICE), &json!(SUBSCRIPTION), &json!(true)),
        "{invoices}"
    );
    assert_eq!(
        (&inv["payment_intent"], &inv["charge"]),
        (&json!(INTENT), &json!(CHARGE))
    );
    let (_, receipts) = call(app.get(&route("/receipts"), "alice")).await;
    assert_eq!(receipts[0]["invoice"], INVOICE, "{receipts}");
    let db = &app.ctx.db;
    let stored = db.object(Kind::Invoice, INVOICE).await.unwrap().unwrap();
    assert!(
        stored.data.get("payments").is_none() && stored.data.get("confirmation_secret").is_none(),
        "the invoice is stored as webhooks show it"
    );
    let payment = db
        .object(Kind::InvoicePayment, INVOICE_PAYMENT)
        .await
        .unwrap()
        .expect("the invoice payment is mirrored");
    assert_eq!(payment.bucket_id.as_deref(), Some(BUCKET));
}

/// The account while the first payment waits for 3-D Secure.
fn awaiting_3ds(standin: &StandIn) {
    let mut sub = newest("subscription");
    sub["status"] = "incomplete".into();
    let mut invoice = newest("invoice");
    invoice["status"] = "open".into();
    invoice["amount_paid"] = 0.into();
    invoice["amount_remaining"] = 1900.into();
    invoice["status_transitions"]["paid_at"] = Value::Null;
    let mut payment = newest("invoice_payment");
    payment["status"] = "open".into();
    payment["amount_paid"] = Value::Null;
    payment["status_transitions"]["paid_at"] = Value::Null;
    let mut intent = newest("payment_intent");
    intent["status"] = "requires_action".into();
    intent["amount_received"] = 0.into();
    intent["latest_charge"] = Value::Null;
    intent["next_action"] =
        json!({"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}});
    for obj in [invoice, payment, intent] {
        standin.put(obj);
    }
    standin.creates(sub);
}

async fn subscribe_with_3d_secure_then_confirm(b: Backend) {
    let standin = StandIn::start(
        ["customer", "card", "payment_method_card"]
            .into_iter()
            .map(newest),
    )
    .await;
    awaiting_3ds(&standin);
    let app = setup(b, &standin, false).await;
    cache_customer(&app).await;

    let (status, body) = call(
        app.post(&route("/subscribe"), "alice")
            .json(&json!({"plan": "starter"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let secret = newest("payment_intent")["client_secret"].clone();
    assert_eq!(
        body["payment_intent"],
        json!({"id": INTENT, "client_secret": secret, "status": "requires_action"})
    );
    assert_eq!(body["subscription"]["status"], "incomplete");
    assert_eq!(body["bucket"]["plan"], "free");

    let confirm = || {
        app.post(&route(&format!("/subscribe/{INTENT}")), "alice")
            .json(&json!({"plan": "starter"}))
    };
    assert_error(&call(confirm()).await, 400, "payment_intent_not_succeeded");

    // The customer completes 3-D Secure: Stripe pays the invoice.
    for obj in paid_account() {
        standin.put(obj);
    }
    let (status, body) = call(confirm()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bucket"]["plan"], "starter");
    assert_eq!(body["bucket"]["subscription"]["status"], "active");
    assert!(standin.refused().is_empty(), "{:?}", standin.refused());
    let requests = standin.requests().await;
    assert!(
        requests.iter().any(|r| r.method == "GET"
            && r.path == "/v1/invoice_payments"
            && r.has("payment[payment_intent]", INTENT)),
        "the intent's invoice is found through its invoice payment: {requests:?}"
    );
    let (_, receipts) = call(app.get(&route("/receipts"), "alice")).await;
    assert_eq!(
        (&receipts[0]["id"], &receipts[0]["invoice"]),
        (&json!(CHARGE), &json!(INVOICE)),
        "{receipts}"
    );
    let (_, state) = call(app.get(&route("/subscription/state"), "alice")).await;
    assert_eq!(state["status"], "active");
}

async fn a_coupon_already_applied_is_not_applied_again(b: Backend) {
    let standin = StandIn::start(paid_account()).await;
    let discount = json!({"id": "di_1TfPsyncSpring", "object": "discount", "checkout_session": null,
        "customer": CUSTOMER, "customer_account": null, "end": null, "invoice": null, "invoice_item": null,
        "promotion_code": null, "source": {"coupon": "SPRING", "type": "coupon"}, "start": T0 + 300,
        "subscription": SUBSCRIPTION, "subscription_item": null});
    let mut sub = newest("subscription");
    sub["discounts"] = json!(["di_1TfPsyncSpring"]);
    standin.put(discount);
    standin.put(sub);
    let app = setup(b, &standin, false).await;
    cache_customer(&app).await;

    let subscribe = |coupon: &str| {
        app.post(&route("/subscribe"), "alice")
            .json(&json!({"plan": "starter", "coupon_id": coupon}))
    };
    let (status, body) = call(subscribe("SPRING")).await;
    assert_eq!(status, 200, "{body}");
    let writes = |requests: Vec<Seen>| {
        requests
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect::<Vec<_>>()
    };
    assert!(
        writes(standin.requests().await).is_empty(),
        "same plan, same coupon: nothing to write"
    );
    let stored = app
        .ctx
        .db
        .object(Kind::Subscription, SUBSCRIPTION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.data["discounts"], json!(["di_1TfPsyncSpring"]));

    let (status, body) = call(subscribe("AUTUMN")).await;
    assert_eq!(status, 200, "{body}");
    let posts = writes(standin.requests().await);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, format!("/v1/subscriptions/{SUBSCRIPTION}"));
    assert!(posts[0].has("discounts[0][coupon]", "AUTUMN"), "{posts:?}");
    assert!(standin.refused().is_empty(), "{:?}", standin.refused());
}

async fn reconcile_of_a_current_shape_account_converges(b: Backend) {
    let standin = StandIn::start(paid_account()).await;
    let app = setup(b, &standin, false).await;
    app.ctx.db.link_customer(BUCKET, CUSTOMER).await.unwrap();
    let run = || reconcile::full(&app.ctx.db, &app.ctx.stripe, &|_, _, _| {});

    let first = run().await.expect("first run");
    assert!(standin.refused().is_empty(), "{:?}", standin.refused());
    for (kind, n) in [
        (Kind::Customer, 1),
        (Kind::Source, 3),
        (Kind::Subscription, 1),
        (Kind::Invoice, 1),
        (Kind::InvoicePayment, 1),
        (Kind::Charge, 1),
    ] {
        assert_eq!(first.drift.get(kind), n, "{kind:?} in {:?}", first.drift);
    }
    let (_, receipts) = call(app.get(&route("/receipts"), "alice")).await;
    assert_eq!(receipts[0]["invoice"], INVOICE, "{receipts}");
    let (_, invoices) = call(app.get(&route("/invoices"), "alice")).await;
    assert_eq!(invoices[0]["subscription"], SUBSCRIPTION, "{invoices}");
    let (_, view) = call(app.get(&format!("/api/bucket/{BUCKET}"), "alice")).await;
    assert_eq!(view["plan"], "starter", "{view}");

    let second = run().await.expect("second run");
    assert_eq!(second.drift.total(), 0, "{:?}", second.drift);

    // A payment Stripe no longer has is tombstoned by the next run, and only it.
    let mut invoice = newest("invoice");
    invoice["status"] = "void".into();
    standin.put(invoice);
    let mut payment = newest("invoice_payment");
    payment["invoice"] = "in_1TfPsyncOther".into();
    standin.put(payment);
    let third = run().await.expect("third run");
    assert_eq!(
        (
            third.drift.get(Kind::Invoice),
            third.drift.get(Kind::InvoicePayment),
            third.drift.total()
        ),
        (1, 1, 2),
        "{:?}",
        third.drift
    );
    let gone = app
        .ctx
        .db
        .object(Kind::InvoicePayment, INVOICE_PAYMENT)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.deleted);
}

async fn an_invoice_payment_before_its_invoice(b: Backend) {
    let standin = StandIn::start(paid_account()).await;
    let app = setup(b, &standin, true).await;
    let app = &app;
    let deliver = |id: &str, ty: &str, created: i64, object: Value| {
        let body = event(NEWEST, id, ty, created, object, None);
        async move { app.deliver(&body).await }
    };
    let (status, _) = deliver("evt_c", "customer.created", T0, newest("customer")).await;
    assert_eq!(status, 200);
    // Stripe does not promise an order: the payment comes before its invoice.
    let (status, answer) = deliver(
        "evt_p",
        "invoice_payment.paid",
        T0 + 303,
        newest("invoice_payment"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    app.settle(20).await;
    let db = &app.ctx.db;
    let invoice = db.object(Kind::Invoice, INVOICE).await.unwrap();
    assert_eq!(
        invoice.and_then(|i| i.bucket_id).as_deref(),
        Some(BUCKET),
        "the invoice was fetched from Stripe"
    );
    let payment = db
        .object(Kind::InvoicePayment, INVOICE_PAYMENT)
        .await
        .unwrap()
        .expect("the invoice payment is stored");
    assert_eq!(payment.bucket_id.as_deref(), Some(BUCKET));
    let (status, _) = deliver("evt_ch", "charge.succeeded", T0 + 302, newest("charge")).await;
    assert_eq!(status, 200);
    let (_, receipts) = call(app.get(&route("/receipts"), "alice")).await;
    assert_eq!(receipts[0]["invoice"], INVOICE, "{receipts}");
}

async fn events_paysync_cannot_mirror_get_a_clear_answer(b: Backend) {
    let app = TestApp::start(b).await;
    app.bucket_with_id(BUCKET, "alice").await;
    let db = &app.ctx.db;
    let (status, _) = app
        .deliver(&event(
            NEWEST,
            "evt_cus",
            "customer.created",
            T0,
            newest("customer"),
            None,
        ))
        .await;
    assert_eq!(status, 200);

    // The upcoming invoice has no id: stored and acknowledged, nothing mirrored.
    let mut upcoming = newest("invoice");
    upcoming.as_object_mut().unwrap().remove("id");
    upcoming["status"] = "draft".into();
    let got = app
        .deliver(&event(
            NEWEST,
            "evt_up",
            "invoice.upcoming",
            T0 + 10,
            upcoming.clone(),
            None,
        ))
        .await;
    assert_eq!(got, (200, json!({"received": true, "duplicate": false})));
    // The same object in a type paysync mirrors: acknowledged, nothing written.
    let got = app
        .deliver(&event(
            NEWEST,
            "evt_upd",
            "invoice.updated",
            T0 + 11,
            upcoming,
            None,
        ))
        .await;
    assert_eq!(got.0, 200);
    // An object of a kind paysync does not know, under a mirrored type.
    let quote = json!({"id": "qt_1", "object": "quote", "customer": CUSTOMER, "status": "open"});
    let got = app
        .deliver(&event(
            NEWEST,
            "evt_qt",
            "invoice.paid",
            T0 + 12,
            quote,
            None,
        ))
        .await;
    assert_eq!(got.0, 200);
    // An invoice payment that names no invoice.
    let mut orphan = newest("invoice_payment");
    orphan.as_object_mut().unwrap().remove("invoice");
    let got = app
        .deliver(&event(
            NEWEST,
            "evt_orph",
            "invoice_payment.paid",
            T0 + 13,
            orphan,
            None,
        ))
        .await;
    assert_eq!(got.0, 200);
    for id in ["evt_up", "evt_upd", "evt_qt", "evt_orph"] {
        let stored = db.event(id).await.unwrap().expect("stored");
        assert_eq!(stored.state, "applied", "{id}");
    }
    for kind in [Kind::Invoice, Kind::InvoicePayment] {
        assert!(
            db.bucket_objects(kind, BUCKET, &Page::default())
                .await
                .unwrap()
                .is_empty(),
            "{kind:?}"
        );
    }

    // A thin event (Stripe's v2 event destinations): acknowledged, not stored.
    let thin = json!({"id": "evt_thin", "object": "v2.core.event", "type": "v1.billing.meter.error_report_triggered",
        "created": "2026-10-01T09:00:00.000Z", "livemode": false, "reason": null,
        "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"}});
    let (status, body) = app.deliver(&thin.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["ignored"].is_string(), "{body}");
    assert!(db.event("evt_thin").await.unwrap().is_none());

    // No event id: not an event, refused, nothing stored.
    let mut no_id: Value = serde_json::from_str(&event(
        NEWEST,
        "evt_x",
        "invoice.paid",
        T0 + 20,
        newest("invoice"),
        None,
    ))
    .unwrap();
    no_id.as_object_mut().unwrap().remove("id");
    let got = app.deliver(&no_id.to_string()).await;
    assert_error(&got, 400, "not_an_event");
    assert!(
        db.bucket_objects(Kind::Invoice, BUCKET, &Page::default())
            .await
            .unwrap()
            .is_empty()
    );
}

both!(
    subscribe_without_3d_secure,
    subscribe_with_3d_secure_then_confirm,
    a_coupon_already_applied_is_not_applied_again,
    reconcile_of_a_current_shape_account_converges,
    an_invoice_payment_before_its_invoice,
    events_paysync_cannot_mirror_get_a_clear_answer
);
