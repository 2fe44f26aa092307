//! Subscriptions, 3-D Secure, trials, invoices and receipts against localstripe.

use std::time::Duration;

use paysync::store::Kind;
use paysync::store::buckets::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::common::*;
use crate::stripe_direct::*;

const VISA: &str = "4242424242424242";
const THREE_DS: &str = "4000002760003184";

/// Make sure the catalog's plans exist in localstripe (idempotent, as `paysync plans sync`).
pub async fn plans(app: &TestApp) {
    paysync::stripe::plans::sync(&app.ctx.stripe, &app.ctx.cfg.catalog)
        .await
        .expect("plans sync");
}

async fn subscribe(app: &TestApp, bucket: &str, user: &str, body: Value) -> (u16, Value) {
    call(
        app.post(&format!("/api/bucket/{bucket}/payment/subscribe"), user)
            .json(&body),
    )
    .await
}

async fn get(app: &TestApp, bucket: &str, what: &str) -> (u16, Value) {
    call(app.get(&format!("/api/bucket/{bucket}{what}"), "alice")).await
}

/// The plan `GET /api/bucket/{id}` shows.
async fn plan_of(app: &TestApp, bucket: &str, user: &str) -> String {
    let (status, view) = call(app.get(&format!("/api/bucket/{bucket}"), user)).await;
    assert_eq!(status, 200, "{view}");
    view["plan"].as_str().expect("plan").to_string()
}

/// Complete (or fail) a 3-D Secure challenge the way Stripe.js would.
pub async fn authenticate(intent: &Value, success: bool) {
    let id = intent["id"].as_str().expect("intent id");
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v1/payment_intents/{id}/_authenticate?success={success}",
            localstripe_url()
        ))
        .form(&[
            ("key", "pk_test_paysync"),
            (
                "client_secret",
                intent["client_secret"].as_str().expect("client_secret"),
            ),
        ])
        .send()
        .await
        .expect("localstripe");
    assert!(
        resp.status().is_success(),
        "authenticate: {}",
        resp.text().await.unwrap_or_default()
    );
}

/// The subscriptions localstripe has for a customer that are not canceled.
async fn live_in_stripe(customer: &str) -> Vec<Value> {
    let list = stripe(
        Method::GET,
        &format!("/subscriptions?customer={customer}&status=all"),
        &[],
    )
    .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] != "canceled")
        .cloned()
        .collect()
}

async fn customer_of(app: &TestApp, bucket: &str) -> String {
    app.ctx
        .db
        .bucket(bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .expect("customer")
}

#[tokio::test]
async fn plans_sync_is_idempotent() {
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_paysync"))
            .args([
                "plans",
                "sync",
                "--plans",
                concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/plans.toml"),
            ])
            .env("STRIPE_SECRET_KEY", "sk_test_paysync")
            .env("STRIPE_API_BASE", localstripe_url())
            .env(
                "PAYSYNC_STRIPE_API_VERSION",
                paysync::stripe::version::LEGACY,
            )
            .env("RUST_LOG", "warn")
            .output()
            .expect("run paysync");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, first, err) = run();
    assert!(ok, "{first}{err}");
    let (ok, second, err) = run();
    assert!(ok, "{second}{err}");
    let lines: Vec<&str> = second.lines().collect();
    assert_eq!(
        lines,
        vec![
            "starter paysync_starter_monthly exists",
            "business paysync_business_monthly exists",
            "enterprise paysync_enterprise_yearly exists"
        ],
        "first run: {first}"
    );
    let plan = stripe(Method::GET, "/plans/paysync_enterprise_yearly", &[]).await;
    assert_eq!(
        (plan["amount"].as_i64(), plan["interval"].as_str()),
        (Some(500000), Some("year"))
    );
}

async fn subscribe_then_change_plan(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let bucket = app.bucket("alice").await;
    let token = card_token(VISA).await;

    let (status, body) = subscribe(
        &app,
        &bucket,
        "alice",
        json!({"plan": "starter", "stripe_token": token}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["status"], "active");
    assert_eq!(body["bucket"]["plan"], "starter");
    assert!(body.get("payment_intent").is_none(), "{body}");
    let sub_id = body["subscription"]["id"].as_str().unwrap().to_string();
    assert_eq!(plan_of(&app, &bucket, "alice").await, "starter");

    // Reads come from the cache, written before the answer.
    let (status, sub) = get(&app, &bucket, "/payment/subscription").await;
    assert_eq!((status, sub["id"].as_str()), (200, Some(sub_id.as_str())));
    let (status, state) = get(&app, &bucket, "/payment/subscription/state").await;
    assert_eq!(status, 200);
    assert_eq!(
        state,
        json!({"status": "active", "plan": "starter", "canceled_at": null})
    );
    let (status, invoices) = get(&app, &bucket, "/payment/invoices").await;
    assert_eq!(status, 200, "{invoices}");
    assert_eq!(invoices.as_array().unwrap().len(), 1);
    assert_eq!(invoices[0]["status"], "paid");
    assert_eq!(invoices[0]["subscription"], sub_id.as_str());
    let (status, receipts) = get(&app, &bucket, "/payment/receipts").await;
    assert_eq!(status, 200, "{receipts}");
    assert_eq!(receipts.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            receipts[0]["amount"].as_i64(),
            receipts[0]["currency"].as_str()
        ),
        (Some(1900), Some("usd"))
    );
    assert_eq!(receipts[0]["invoice"], invoices[0]["id"]);
    assert!(receipts[0].get("receipt_url").is_some(), "{receipts}");
    // The rows are stored as Stripe shows them: the reconciler finds nothing to fix.
    let drift = paysync::sync::reconcile::bucket(&app.ctx.db, &app.ctx.stripe, &bucket)
        .await
        .unwrap();
    for kind in [Kind::Subscription, Kind::Invoice, Kind::Charge] {
        assert_eq!(
            drift.get(kind),
            0,
            "{kind:?} drift after subscribe: {drift:?}"
        );
    }

    // Another plan: the same subscription, changed in place.
    let (status, body) = subscribe(&app, &bucket, "alice", json!({"plan": "business"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["id"], sub_id.as_str());
    assert_eq!(body["bucket"]["plan"], "business");
    assert_eq!(plan_of(&app, &bucket, "alice").await, "business");
    let (_, state) = get(&app, &bucket, "/payment/subscription/state").await;
    assert_eq!(state["plan"], "business");
    let live = live_in_stripe(&customer_of(&app, &bucket).await).await;
    assert_eq!(live.len(), 1, "one subscription in Stripe: {live:?}");
}

async fn subscribe_refusals(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let bucket = app.bucket("alice").await;
    app.add_member(&bucket, "mia", Role::Member).await;

    assert_error(
        &subscribe(&app, &bucket, "alice", json!({"plan": "platinum"})).await,
        400,
        "unknown_plan",
    );
    assert_error(
        &subscribe(&app, &bucket, "alice", json!({"plan": "enterprise"})).await,
        403,
        "plan_not_allowed",
    );
    assert_error(
        &subscribe(&app, &bucket, "alice", json!({"stripe_token": "tok_x"})).await,
        400,
        "bad_request",
    );
    let no_card = subscribe(&app, &bucket, "alice", json!({"plan": "starter"})).await;
    assert_error(&no_card, 403, "need_credit_card");
    assert_eq!(no_card.1["error"]["message"], "need a credit card");
    assert_error(
        &subscribe(&app, &bucket, "mia", json!({"plan": "starter"})).await,
        403,
        "insufficient_role",
    );
    let declined = card_token("4000000000000002").await;
    let (status, body) = subscribe(
        &app,
        &bucket,
        "alice",
        json!({"plan": "starter", "stripe_token": declined}),
    )
    .await;
    assert_eq!(status, 402, "{body}");

    // Nothing was subscribed.
    assert_error(
        &get(&app, &bucket, "/payment/subscription").await,
        404,
        "no_subscription",
    );
    assert_error(
        &get(&app, &bucket, "/payment/subscription/state").await,
        404,
        "no_subscription",
    );
    assert_error(
        &get(&app, &bucket, "/payment/invoices").await,
        404,
        "no_invoices",
    );
    assert_error(
        &get(&app, &bucket, "/payment/receipts").await,
        404,
        "no_receipts",
    );
    assert_eq!(plan_of(&app, &bucket, "alice").await, "free");
}

async fn three_d_secure(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let bucket = app.bucket("alice").await;
    let token = card_token(THREE_DS).await;

    let (status, body) = subscribe(
        &app,
        &bucket,
        "alice",
        json!({"plan": "starter", "stripe_token": token}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["status"], "incomplete");
    let intent = body["payment_intent"].clone();
    assert_eq!(intent["status"], "requires_action", "{body}");
    assert!(
        intent["client_secret"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert_eq!(body["bucket"]["plan"], "free");
    assert_eq!(plan_of(&app, &bucket, "alice").await, "free");

    let confirm = |bucket: String, user: &'static str| {
        let app = &app;
        let pi = intent["id"].as_str().unwrap().to_string();
        async move {
            call(
                app.post(
                    &format!("/api/bucket/{bucket}/payment/subscribe/{pi}"),
                    user,
                )
                .json(&json!({"plan": "starter"})),
            )
            .await
        }
    };
    // Not authenticated yet.
    assert_error(
        &confirm(bucket.clone(), "alice").await,
        400,
        "payment_intent_not_succeeded",
    );
    authenticate(&intent, true).await;

    // Another bucket cannot claim this payment, with or without a customer of its own.
    let other = app.bucket("bob").await;
    assert_error(
        &confirm(other.clone(), "bob").await,
        400,
        "payment_intent_mismatch",
    );
    let bob_card = card_token(VISA).await;
    assert_eq!(
        subscribe(
            &app,
            &other,
            "bob",
            json!({"plan": "business", "stripe_token": bob_card})
        )
        .await
        .0,
        200
    );
    assert_error(
        &confirm(other.clone(), "bob").await,
        400,
        "payment_intent_mismatch",
    );
    assert_eq!(plan_of(&app, &other, "bob").await, "business");

    let (status, body) = confirm(bucket.clone(), "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bucket"]["plan"], "starter");
    assert_eq!(plan_of(&app, &bucket, "alice").await, "starter");
    let (_, state) = get(&app, &bucket, "/payment/subscription/state").await;
    assert_eq!(state["status"], "active");
    let (_, invoices) = get(&app, &bucket, "/payment/invoices").await;
    assert_eq!(invoices[0]["status"], "paid", "{invoices}");
    let (status, receipts) = get(&app, &bucket, "/payment/receipts").await;
    assert_eq!(status, 200, "{receipts}");
    assert_eq!(receipts[0]["invoice"], invoices[0]["id"]);

    let bad = call(
        app.post(
            &format!("/api/bucket/{bucket}/payment/subscribe/not_an_intent"),
            "alice",
        )
        .json(&json!({"plan": "starter"})),
    )
    .await;
    assert_error(&bad, 400, "invalid_payment_intent");
}

async fn failed_three_d_secure(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let bucket = app.bucket("alice").await;
    let token = card_token(THREE_DS).await;
    let (status, body) = subscribe(
        &app,
        &bucket,
        "alice",
        json!({"plan": "starter", "stripe_token": token}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let intent = body["payment_intent"].clone();
    let abandoned = body["subscription"]["id"].as_str().unwrap().to_string();
    authenticate(&intent, false).await;

    let pi = intent["id"].as_str().unwrap();
    let got = call(
        app.post(
            &format!("/api/bucket/{bucket}/payment/subscribe/{pi}"),
            "alice",
        )
        .json(&json!({"plan": "starter"})),
    )
    .await;
    assert_error(&got, 400, "payment_intent_not_succeeded");
    assert_eq!(plan_of(&app, &bucket, "alice").await, "free");

    // A working card: the abandoned subscription is replaced, not kept next to the new one.
    let visa = card_token(VISA).await;
    let (status, body) = subscribe(
        &app,
        &bucket,
        "alice",
        json!({"plan": "starter", "stripe_token": visa}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["status"], "active");
    assert_ne!(body["subscription"]["id"], abandoned.as_str());
    assert_eq!(plan_of(&app, &bucket, "alice").await, "starter");
    let live = live_in_stripe(&customer_of(&app, &bucket).await).await;
    assert_eq!(live.len(), 1, "{live:?}");
}

async fn declined_first_payment(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let bucket = app.bucket("alice").await;
    // Attaches fine, but its charges fail.
    let token = card_token("4000000000000341").await;
    let got = subscribe(
        &app,
        &bucket,
        "alice",
        json!({"plan": "starter", "stripe_token": token}),
    )
    .await;
    assert_error(&got, 402, "card_declined");
    assert_eq!(plan_of(&app, &bucket, "alice").await, "free");
    let (_, state) = get(&app, &bucket, "/payment/subscription/state").await;
    assert_eq!(
        state["status"], "incomplete",
        "the unpaid subscription is visible as such"
    );
    assert_error(
        &get(&app, &bucket, "/payment/receipts").await,
        404,
        "no_receipts",
    );
}

async fn trial_once(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let bucket = app.bucket("alice").await;
    let trial = |bucket: &str, plan: &str| {
        app.put(&format!("/api/bucket/{bucket}/payment/trial"), "alice")
            .json(&json!({"plan": plan}))
    };

    assert_error(&call(trial(&bucket, "nope")).await, 400, "unknown_plan");
    assert_error(
        &call(trial(&bucket, "enterprise")).await,
        400,
        "cant_claim_trial",
    );
    let (status, body) = call(trial(&bucket, "business")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["duration"].as_str(), body["plan"].as_str()),
        (Some("P14D"), Some("business"))
    );
    assert_eq!(
        body["ends_at"].as_i64().unwrap() - body["started_at"].as_i64().unwrap(),
        14 * 86_400
    );
    let (_, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(
        (view["plan"].as_str(), view["trial"]["active"].as_bool()),
        (Some("business"), Some(true)),
        "{view}"
    );
    assert_error(
        &call(trial(&bucket, "starter")).await,
        400,
        "cant_claim_trial",
    );

    // The job ends a trial past its end; the bucket is back on the free plan, and stays trial-less.
    sqlx::query("UPDATE trials SET ends_at = ends_at - 15 * 86400 WHERE bucket_id = $1")
        .bind(&bucket)
        .execute(&app.ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(
        paysync::sync::jobs::end_expired_trials(&app.ctx)
            .await
            .unwrap(),
        1
    );
    let (_, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(
        (view["plan"].as_str(), view["trial"]["active"].as_bool()),
        (Some("free"), Some(false)),
        "{view}"
    );
    assert_eq!(
        paysync::sync::jobs::end_expired_trials(&app.ctx)
            .await
            .unwrap(),
        0
    );
    assert_error(
        &call(trial(&bucket, "business")).await,
        400,
        "cant_claim_trial",
    );

    // A subscribed bucket cannot start a trial.
    let paid = app.bucket("alice").await;
    let token = card_token(VISA).await;
    assert_eq!(
        subscribe(
            &app,
            &paid,
            "alice",
            json!({"plan": "starter", "stripe_token": token})
        )
        .await
        .0,
        200
    );
    assert_error(
        &call(trial(&paid, "business")).await,
        400,
        "cant_claim_trial",
    );

    // Subscribing during a trial ends the trial: the paid plan is the bucket's.
    let trying = app.bucket("alice").await;
    assert_eq!(call(trial(&trying, "business")).await.0, 200);
    let token = card_token(VISA).await;
    assert_eq!(
        subscribe(
            &app,
            &trying,
            "alice",
            json!({"plan": "starter", "stripe_token": token})
        )
        .await
        .0,
        200
    );
    let (_, view) = call(app.get(&format!("/api/bucket/{trying}"), "alice")).await;
    assert_eq!(
        (view["plan"].as_str(), view["trial"]["active"].as_bool()),
        (Some("starter"), Some(false)),
        "{view}"
    );
}

async fn invoices_and_receipts_page_newest_first(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let bucket = app.bucket("alice").await;
    let token = card_token(VISA).await;
    let (_, first) = subscribe(
        &app,
        &bucket,
        "alice",
        json!({"plan": "starter", "stripe_token": token}),
    )
    .await;
    let first_sub = first["subscription"]["id"].as_str().unwrap().to_string();
    // Canceled in Stripe (as from its dashboard), then subscribed again a second later.
    stripe(Method::DELETE, &format!("/subscriptions/{first_sub}"), &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, second) = subscribe(&app, &bucket, "alice", json!({"plan": "business"})).await;
    assert_eq!(status, 200, "{second}");
    let second_sub = second["subscription"]["id"].as_str().unwrap().to_string();
    assert_ne!(first_sub, second_sub);
    let (_, sub) = get(&app, &bucket, "/payment/subscription").await;
    assert_eq!(sub["id"], second_sub.as_str());

    let (status, all) = get(&app, &bucket, "/payment/invoices").await;
    assert_eq!(status, 200);
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["subscription"], second_sub.as_str(), "newest first");
    assert_eq!(all[1]["subscription"], first_sub.as_str());
    let (_, page1) = get(&app, &bucket, "/payment/invoices?limit=1").await;
    assert_eq!(page1.as_array().unwrap(), &all[..1]);
    let after = all[0]["id"].as_str().unwrap();
    let (_, page2) = get(
        &app,
        &bucket,
        &format!("/payment/invoices?limit=1&starting_after={after}"),
    )
    .await;
    assert_eq!(page2.as_array().unwrap(), &all[1..]);
    let last = all[1]["id"].as_str().unwrap();
    let (status, page3) = get(
        &app,
        &bucket,
        &format!("/payment/invoices?starting_after={last}"),
    )
    .await;
    assert_eq!((status, page3), (200, json!([])));

    let (status, receipts) = get(&app, &bucket, "/payment/receipts").await;
    assert_eq!(status, 200);
    let receipts = receipts.as_array().unwrap().clone();
    assert_eq!(
        receipts
            .iter()
            .map(|r| r["amount"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![7900, 1900]
    );
    assert_eq!(receipts[0]["invoice"], all[0]["id"]);
    let after = receipts[0]["id"].as_str().unwrap();
    let (_, page2) = get(
        &app,
        &bucket,
        &format!("/payment/receipts?limit=1&starting_after={after}"),
    )
    .await;
    assert_eq!(page2.as_array().unwrap(), &receipts[1..]);

    assert_error(
        &get(&app, &bucket, "/payment/invoices?limit=0").await,
        400,
        "invalid_limit",
    );
    assert_error(
        &get(&app, &bucket, "/payment/receipts?limit=101").await,
        400,
        "invalid_limit",
    );
    assert_eq!(
        get(&app, &bucket, "/payment/invoices?limit=abc").await.0,
        400
    );
    assert_error(
        &get(&app, &bucket, "/payment/invoices?starting_after=in_nope").await,
        400,
        "invalid_starting_after",
    );
    // Another bucket's ids are no anchor, and its members see nothing of this one.
    let other = app.bucket("bob").await;
    let got = call(app.get(
        &format!("/api/bucket/{other}/payment/invoices?starting_after={after}"),
        "bob",
    ))
    .await;
    assert_error(&got, 400, "invalid_starting_after");
    assert_error(
        &call(app.get(&format!("/api/bucket/{bucket}/payment/invoices"), "bob")).await,
        404,
        "bucket_not_found",
    );
}

both!(
    subscribe_then_change_plan,
    subscribe_refusals,
    three_d_secure,
    failed_three_d_secure,
    declined_first_payment,
    trial_once,
    invoices_and_receipts_page_newest_first
);
