//! Cancel (at period end, or now) and resume against localstripe: written
//! through to Stripe, and in the cache before the answer.

use paysync::store::buckets::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::common::*;
use crate::stripe_direct::*;

const VISA: &str = "4242424242424242";

/// A bucket of alice (bob is a member) subscribed to starter with a Visa card.
async fn subscribed(app: &TestApp) -> (String, String) {
    paysync::stripe::plans::sync(&app.ctx.stripe, &app.ctx.cfg.catalog)
        .await
        .expect("plans sync");
    let bucket = app.bucket("alice").await;
    app.add_member(&bucket, "bob", Role::Member).await;
    let token = card_token(VISA).await;
    let (status, body) = call(
        app.post(&format!("/api/bucket/{bucket}/payment/subscribe"), "alice")
            .json(&json!({"plan": "starter", "stripe_token": token})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sub = body["subscription"]["id"].as_str().expect("id").to_string();
    (bucket, sub)
}

async fn bucket_view(app: &TestApp, bucket: &str) -> Value {
    let (status, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(status, 200, "{view}");
    view
}

async fn cancel_at_period_end_then_resume(b: Backend) {
    let app = TestApp::start(b).await;
    let (bucket, sub) = subscribed(&app).await;
    let path = format!("/api/bucket/{bucket}/payment/subscription");

    // A member may not.
    assert_error(
        &call(app.delete(&path, "bob")).await,
        403,
        "insufficient_role",
    );
    assert_error(
        &call(app.post(&format!("{path}/resume"), "bob")).await,
        403,
        "insufficient_role",
    );

    let (status, body) = call(app.delete(&path, "alice")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["id"], sub.as_str());
    assert_eq!(body["subscription"]["cancel_at_period_end"], true);
    assert_eq!(body["bucket"]["subscription"]["cancel_at_period_end"], true);
    // Until the period ends the bucket keeps its plan; the next read shows the cancelation.
    let view = bucket_view(&app, &bucket).await;
    assert_eq!(view["plan"], "starter");
    assert_eq!(view["subscription"]["status"], "active");
    assert_eq!(view["subscription"]["cancel_at_period_end"], true);
    let in_stripe = stripe(Method::GET, &format!("/subscriptions/{sub}"), &[]).await;
    assert_eq!(in_stripe["cancel_at_period_end"], true);
    // Canceling twice is harmless.
    let (status, again) = call(app.delete(&path, "alice")).await;
    assert_eq!(
        (status, &again["subscription"]["cancel_at_period_end"]),
        (200, &json!(true))
    );

    let (status, body) = call(app.post(&format!("{path}/resume"), "alice")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["cancel_at_period_end"], false);
    let view = bucket_view(&app, &bucket).await;
    assert_eq!(view["subscription"]["cancel_at_period_end"], false);
    assert_eq!(view["plan"], "starter");
    let in_stripe = stripe(Method::GET, &format!("/subscriptions/{sub}"), &[]).await;
    assert_eq!(in_stripe["cancel_at_period_end"], false);
    let (_, cached) = call(app.get(&path, "alice")).await;
    assert_eq!(cached["cancel_at_period_end"], false);
}

async fn cancel_now_ends_the_plan(b: Backend) {
    let app = TestApp::start(b).await;
    let (bucket, sub) = subscribed(&app).await;
    let path = format!("/api/bucket/{bucket}/payment/subscription");

    let (status, body) = call(app.delete(&format!("{path}?at=now"), "alice")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"]["status"], "canceled");
    assert_eq!(body["bucket"]["plan"], "free");
    assert_eq!(bucket_view(&app, &bucket).await["plan"], "free");
    let (status, state) = call(app.get(&format!("{path}/state"), "alice")).await;
    assert_eq!(status, 200);
    assert_eq!(state["status"], "canceled");
    // (localstripe sets `ended_at` but not `canceled_at`, which Stripe sets too.)
    assert!(body["subscription"]["ended_at"].is_i64(), "{body}");
    let in_stripe = stripe(Method::GET, &format!("/subscriptions/{sub}"), &[]).await;
    assert_eq!(in_stripe["status"], "canceled");

    // Nothing live is left to cancel or resume.
    assert_error(
        &call(app.delete(&path, "alice")).await,
        404,
        "no_subscription",
    );
    assert_error(
        &call(app.post(&format!("{path}/resume"), "alice")).await,
        404,
        "no_subscription",
    );
}

async fn cancel_needs_a_subscription_and_a_known_when(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    let path = format!("/api/bucket/{bucket}/payment/subscription");
    assert_error(
        &call(app.delete(&path, "alice")).await,
        404,
        "no_subscription",
    );
    let (status, body) = call(app.delete(&format!("{path}?at=later"), "alice")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_error(
        &call(app.delete(&path, "mallory")).await,
        404,
        "bucket_not_found",
    );
    let (status, _) = call(app.anon(Method::DELETE, &path)).await;
    assert_eq!(status, 401);
}

both!(
    cancel_at_period_end_then_resume,
    cancel_now_ends_the_plan,
    cancel_needs_a_subscription_and_a_known_when,
);
