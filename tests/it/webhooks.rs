//! Webhook receiver and apply worker: real localstripe deliveries, signature
//! checks, order-independence (proptest), crash safety of the real binary,
//! and two processes sharing one database.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paysync::billing::plan_state;
use paysync::store::objects::Page;
use paysync::store::{Db, Kind, now};
use paysync::sync::signature;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::both;
use crate::common::*;
use crate::stripe_direct::*;

// ---------------------------------------------------------------- helpers

/// Evaluate `$check` (an `Option`) every 50 ms until it is Some; panic after `$secs`.
macro_rules! eventually {
    ($secs:expr, $what:expr, $check:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {}s waiting for {}",
                $secs,
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

/// Register this app's webhook URL in localstripe; `unregister_webhook` turns it off again.
async fn register_webhook(app: &TestApp) -> String {
    let name = format!("paysync-{}", app.url.rsplit(':').next().unwrap_or("x"));
    let resp = reqwest::Client::new()
        .post(format!("{}/_config/webhooks/{name}", localstripe_url()))
        .form(&[
            ("url", format!("{}/webhooks/stripe", app.url)),
            ("secret", WEBHOOK_SECRET.to_string()),
        ])
        .send()
        .await
        .expect("localstripe");
    assert!(
        resp.status().is_success(),
        "register webhook: {}",
        resp.status()
    );
    name
}

/// localstripe cannot delete a registration: point it at an event type that never happens.
async fn unregister_webhook(name: &str) {
    let _ = reqwest::Client::new()
        .post(format!("{}/_config/webhooks/{name}", localstripe_url()))
        .form(&[
            ("url", "http://127.0.0.1:9/"),
            ("secret", "whsec_off"),
            ("events[]", "paysync.never"),
        ])
        .send()
        .await;
}

async fn inbox_count(db: &Db) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM stripe_events")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

pub(crate) fn event(id: &str, ty: &str, created: i64, object: Value) -> String {
    json!({"id": id, "object": "event", "type": ty, "created": created, "livemode": false, "data": {"object": object}})
        .to_string()
}

pub(crate) fn card(id: &str, customer: &str, name: &str) -> Value {
    json!({"id": id, "object": "card", "customer": customer, "brand": "Visa", "last4": "4242",
           "exp_month": 12, "exp_year": 2030, "name": name})
}

// ---------------------------------------------------------------- real deliveries

async fn localstripe_deliveries_reach_the_cache(b: Backend) {
    let app = TestApp::start_with(
        b,
        Options {
            worker: true,
            ..Options::default()
        },
    )
    .await;
    let hook = register_webhook(&app).await;
    ensure_plan("paysync_starter_monthly", "1900").await;
    let db = &app.ctx.db;
    let catalog = &app.ctx.cfg.catalog;
    let bucket = app.bucket("alice").await;

    // A customer made in Stripe for the bucket: customer.created links it.
    let customer = customer_for(&bucket).await;
    eventually!(
        10,
        "customer.created linking the bucket",
        async {
            let b = db.bucket(&bucket).await.unwrap().unwrap();
            (b.stripe_customer_id.as_deref() == Some(customer.as_str())).then_some(())
        }
        .await
    );

    // Metadata changed in the dashboard: customer.updated.
    stripe(
        Method::POST,
        &format!("/customers/{customer}"),
        &[("metadata[company_name]", "Acme")],
    )
    .await;
    eventually!(
        10,
        "customer.updated",
        async {
            let c = db.object(Kind::Customer, &customer).await.unwrap()?;
            (c.data["metadata"]["company_name"] == "Acme").then_some(())
        }
        .await
    );

    let (status, metadata) = call(app.get(&format!("/api/bucket/{bucket}/payment"), "alice")).await;
    assert_eq!(status, 200, "{metadata}");
    assert!(
        metadata.to_string().contains("Acme"),
        "fetchMetadata shows the dashboard change: {metadata}"
    );

    // A card attached: customer.source.created.
    let token = card_token("4242424242424242").await;
    let card_id = id(&stripe(
        Method::POST,
        &format!("/customers/{customer}/sources"),
        &[("source", &token)],
    )
    .await);
    eventually!(
        10,
        "customer.source.created",
        async {
            db.bucket_object(Kind::Source, &bucket, &card_id)
                .await
                .unwrap()
                .map(|_| ())
        }
        .await
    );

    let (status, cards) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/cards"), "alice")).await;
    assert_eq!(status, 200, "{cards}");
    assert_eq!(
        cards["data"][0]["id"],
        card_id.as_str(),
        "fetchCreditCards shows the card: {cards}"
    );

    // A subscription: the bucket gets its plan, its first invoice is paid.
    let sub = id(&stripe(
        Method::POST,
        "/subscriptions",
        &[
            ("customer", &customer),
            ("items[0][plan]", "paysync_starter_monthly"),
        ],
    )
    .await);
    eventually!(
        10,
        "customer.subscription.created",
        async {
            let state = plan_state(db, catalog, &bucket).await.unwrap();
            (state.plan == "starter").then_some(())
        }
        .await
    );
    let (status, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (view["plan"].as_str(), view["subscription"]["id"].as_str()),
        (Some("starter"), Some(sub.as_str())),
        "{view}"
    );
    eventually!(
        10,
        "the subscription's invoice paid",
        async {
            let invoices = db
                .bucket_objects(Kind::Invoice, &bucket, &Page::default())
                .await
                .unwrap();
            invoices
                .iter()
                .any(|i| {
                    i.parent_id.as_deref() == Some(sub.as_str())
                        && i.status.as_deref() == Some("paid")
                })
                .then_some(())
        }
        .await
    );

    // An invoice paid by hand: invoice.created, then invoice.payment_succeeded.
    stripe(
        Method::POST,
        "/invoiceitems",
        &[
            ("customer", &customer),
            ("amount", "500"),
            ("currency", "usd"),
        ],
    )
    .await;
    let invoice = id(&stripe(Method::POST, "/invoices", &[("customer", &customer)]).await);
    stripe(Method::POST, &format!("/invoices/{invoice}/pay"), &[]).await;
    eventually!(
        10,
        "the paid invoice",
        async {
            let row = db
                .bucket_object(Kind::Invoice, &bucket, &invoice)
                .await
                .unwrap()?;
            (row.status.as_deref() == Some("paid")).then_some(())
        }
        .await
    );

    // Canceled in Stripe: state canceled, the bucket back on the free plan.
    stripe(Method::DELETE, &format!("/subscriptions/{sub}"), &[]).await;
    eventually!(
        10,
        "customer.subscription.deleted",
        async {
            let state = plan_state(db, catalog, &bucket).await.unwrap();
            let s = state.subscription?;
            (s.status.as_deref() == Some("canceled") && state.plan == "free").then_some(())
        }
        .await
    );
    let (status, state) = call(app.get(
        &format!("/api/bucket/{bucket}/payment/subscription/state"),
        "alice",
    ))
    .await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["status"], "canceled", "getSubcriptionState: {state}");
    let (_, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(view["plan"], "free", "{view}");
    assert_eq!(view["subscription"]["status"], "canceled", "{view}");

    // Every delivery was stored and applied; none failed.
    app.settle(10).await;
    assert_eq!(
        app.ctx.db.count_events("dead").await.unwrap()
            + app.ctx.db.count_events("failed").await.unwrap(),
        0
    );
    unregister_webhook(&hook).await;
}

both!(localstripe_deliveries_reach_the_cache);

// ---------------------------------------------------------------- signatures

async fn signatures_are_checked_before_anything_is_stored(b: Backend) {
    let opts = Options {
        webhook_secrets: vec!["whsec_old_1234".into(), WEBHOOK_SECRET.into()],
        ..Options::default()
    };
    let app = TestApp::start_with(b, opts).await;
    let db = &app.ctx.db;
    let t = now();
    let body = event(
        "evt_sig_1",
        "customer.created",
        t,
        json!({"id": "cus_nobody", "object": "customer"}),
    );
    let good = signature::sign(WEBHOOK_SECRET, t, body.as_bytes());
    let wrong = signature::sign("whsec_wrong", t, body.as_bytes());

    let refused: Vec<(&str, String, Option<String>, &str)> = vec![
        ("no header", body.clone(), None, "signature_missing"),
        (
            "garbage header",
            body.clone(),
            Some("garbage".into()),
            "signature_malformed",
        ),
        (
            "t not a number",
            body.clone(),
            Some(format!("t=soon,v1={good}")),
            "signature_malformed",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(format!("t={t},v1={wrong}")),
            "signature_mismatch",
        ),
        (
            "tampered body",
            body.replace("cus_nobody", "cus_someone"),
            Some(format!("t={t},v1={good}")),
            "signature_mismatch",
        ),
        (
            "too old",
            body.clone(),
            Some(signature::header(WEBHOOK_SECRET, t - 301, body.as_bytes())),
            "signature_expired",
        ),
        (
            "too new",
            body.clone(),
            // 30 s past the limit: a slow machine must not bring it back within tolerance.
            Some(signature::header(WEBHOOK_SECRET, t + 330, body.as_bytes())),
            "signature_expired",
        ),
        (
            "not JSON",
            "not json".into(),
            Some(signature::header(WEBHOOK_SECRET, t, b"not json")),
            "not_an_event",
        ),
        (
            "not an event",
            "{\"id\":1}".into(),
            Some(signature::header(WEBHOOK_SECRET, t, b"{\"id\":1}")),
            "not_an_event",
        ),
    ];
    for (what, body, header, code) in &refused {
        let got = app.deliver_with(body, header.as_deref()).await;
        assert_eq!(got.0, 400, "{what}: {:?}", got.1);
        assert_eq!(got.1["error"]["code"], *code, "{what}: {:?}", got.1);
        assert!(got.1["error"]["message"].is_string(), "{what}");
    }
    assert_eq!(inbox_count(db).await, 0, "refused deliveries store nothing");

    // Within tolerance both ways, the second secret of a rotation, two v1 of which one is good.
    let ok = app
        .deliver_with(&body, Some(&format!("t={t},v1={wrong},v1={good}")))
        .await;
    assert_eq!(ok.0, 200, "{:?}", ok.1);
    assert_eq!(ok.1["duplicate"], false);
    let body2 = event(
        "evt_sig_2",
        "customer.created",
        t,
        json!({"id": "cus_nobody2", "object": "customer"}),
    );
    // Near the limit, with 30 s of slack for a slow machine.
    let old_secret = signature::header("whsec_old_1234", t - 270, body2.as_bytes());
    assert_eq!(app.deliver_with(&body2, Some(&old_secret)).await.0, 200);
    assert_eq!(inbox_count(db).await, 2);

    // The same event again: 200, nothing new.
    let again = app.deliver(&body).await;
    assert_eq!((again.0, &again.1["duplicate"]), (200, &json!(true)));
    assert_eq!(inbox_count(db).await, 2);

    // A type paysync does not mirror: stored and acknowledged.
    let other = event(
        "evt_sig_3",
        "balance.available",
        t,
        json!({"object": "balance"}),
    );
    assert_eq!(app.deliver(&other).await.0, 200);
    assert_eq!(
        db.event("evt_sig_3").await.unwrap().unwrap().r#type,
        "balance.available"
    );

    // The inbox cannot be written: 503, so Stripe delivers again later.
    sqlx::query("ALTER TABLE stripe_events RENAME TO stripe_events_away")
        .execute(&db.pool)
        .await
        .unwrap();
    let body4 = event(
        "evt_sig_4",
        "customer.created",
        t,
        json!({"id": "cus_x", "object": "customer"}),
    );
    let got = app.deliver(&body4).await;
    assert_error(&got, 503, "inbox_unavailable");
    sqlx::query("ALTER TABLE stripe_events_away RENAME TO stripe_events")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(app.deliver(&body4).await.0, 200, "the retry is stored");
    assert_eq!(inbox_count(db).await, 4);
}

both!(signatures_are_checked_before_anything_is_stored);

/// No apply worker runs here: what the 200 answers for is already applied.
/// A delivery the database alone can apply is marked applied and listed by
/// the read route the moment it is acknowledged; one only Stripe can order
/// (the same second as the row, different content, no version field) is
/// stored and left pending for the worker, the cache untouched.
async fn a_delivery_is_visible_when_acknowledged(b: Backend) {
    let app = TestApp::start(b).await;
    let db = &app.ctx.db;
    let bucket = app.bucket("alice").await;
    db.link_customer(&bucket, "cus_inline").await.unwrap();
    let t = now() - 50;
    let cards_named = || async {
        let (status, body) =
            call(app.get(&format!("/api/bucket/{bucket}/payment/cards"), "alice")).await;
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["id"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };

    let created = event(
        "evt_in_1",
        "customer.source.created",
        t,
        card("card_in", "cus_inline", "first"),
    );
    assert_eq!(
        app.deliver(&created).await,
        (200, json!({"received": true, "duplicate": false}))
    );
    assert_eq!(
        db.event("evt_in_1").await.unwrap().unwrap().state,
        "applied"
    );
    assert_eq!(cards_named().await, ["card_in=first"]);

    let tie = event(
        "evt_in_2",
        "customer.source.updated",
        t,
        card("card_in", "cus_inline", "second"),
    );
    assert_eq!(app.deliver(&tie).await.0, 200);
    assert_eq!(
        db.event("evt_in_2").await.unwrap().unwrap().state,
        "pending"
    );
    assert_eq!(cards_named().await, ["card_in=first"]);

    // A redelivery of the first event is acknowledged and changes nothing.
    assert_eq!(
        app.deliver(&created).await,
        (200, json!({"received": true, "duplicate": true}))
    );
    assert_eq!(inbox_count(db).await, 2);

    // A newer version, while the list above is kept in memory: acknowledged
    // means the next read shows it.
    let newer = event(
        "evt_in_3",
        "customer.source.updated",
        t + 10,
        card("card_in", "cus_inline", "newer"),
    );
    assert_eq!(app.deliver(&newer).await.0, 200);
    assert_eq!(cards_named().await, ["card_in=newer"]);
}

both!(a_delivery_is_visible_when_acknowledged);

/// A customer's events that arrive before the event linking it to a bucket
/// (Stripe does not keep order) are ignored then, and applied once the link
/// comes: the worker is woken for them at once (its poll here is an hour),
/// including an event stored before the inbox kept each event's customer
/// (filled in when the database is migrated).
async fn events_before_the_link_apply_once_it_comes(b: Backend) {
    let mut sync = Options::default().sync;
    sync.poll = Duration::from_secs(3600);
    let app = TestApp::start_with(
        b,
        Options {
            worker: true,
            sync,
            ..Options::default()
        },
    )
    .await;
    let db = &app.ctx.db;
    let bucket = app.bucket("alice").await;
    let t = now() - 50;

    // Stored by a paysync without the customer column (before migration 0006), applied: ignored.
    let legacy = event(
        "evt_old",
        "customer.source.created",
        t,
        card("card_old", "cus_new", "old"),
    );
    sqlx::query(
        "INSERT INTO stripe_events (id, type, created, body, source, received_at, state) \
         VALUES ('evt_old', 'customer.source.created', $1, $2, 'webhook', $3, 'applied')",
    )
    .bind(t)
    .bind(&legacy)
    .bind(t)
    .execute(&db.pool)
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let filled: Option<String> =
        sqlx::query_scalar("SELECT customer_id FROM stripe_events WHERE id = 'evt_old'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(filled.as_deref(), Some("cus_new"));

    let early = event(
        "evt_early",
        "customer.source.created",
        t + 1,
        card("card_early", "cus_new", "early"),
    );
    assert_eq!(app.deliver(&early).await.0, 200);
    assert_eq!(
        db.event("evt_early").await.unwrap().unwrap().state,
        "applied"
    );
    assert!(
        db.object(Kind::Source, "card_early")
            .await
            .unwrap()
            .is_none(),
        "a customer of no bucket: ignored"
    );
    // Another customer's event, applied: not put back in line by this link.
    db.link_customer(&app.bucket("bob").await, "cus_other")
        .await
        .unwrap();
    let other = event(
        "evt_other",
        "customer.source.created",
        t,
        card("card_other", "cus_other", "other"),
    );
    assert_eq!(app.deliver(&other).await.0, 200);

    let linking = json!({"id": "cus_new", "object": "customer", "metadata": {"bucket_id": bucket}});
    assert_eq!(
        app.deliver(&event("evt_link", "customer.created", t, linking))
            .await
            .0,
        200
    );
    let listed = eventually!(
        20,
        "the cards delivered before the link",
        async {
            let (status, body) =
                call(app.get(&format!("/api/bucket/{bucket}/payment/cards"), "alice")).await;
            // 404: no card yet.
            assert!(status == 200 || status == 404, "{status} {body}");
            let mut ids: Vec<String> = body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            (ids.len() == 2).then_some(ids)
        }
        .await
    );
    assert_eq!(listed, ["card_early", "card_old"]);
    for id in ["evt_old", "evt_early", "evt_link", "evt_other"] {
        assert_eq!(
            db.event(id).await.unwrap().unwrap().state,
            "applied",
            "{id}"
        );
    }
    let other_row = db
        .object(Kind::Source, "card_other")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other_row.wm_event, "evt_other");
}

both!(events_before_the_link_apply_once_it_comes);

/// A customer whose bucket was deleted keeps its cards in the cache without a
/// bucket; when its metadata later names another bucket, that bucket gets
/// them (and nothing of another customer).
async fn a_relinked_customer_brings_its_cards(b: Backend) {
    let app = TestApp::start(b).await;
    let db = &app.ctx.db;
    let old = app.bucket("alice").await;
    db.link_customer(&old, "cus_moving").await.unwrap();
    let other = app.bucket("carol").await;
    db.link_customer(&other, "cus_staying").await.unwrap();
    let t = now() - 50;
    for (id, card_id, customer) in [
        ("evt_c1", "card_moving", "cus_moving"),
        ("evt_c2", "card_staying", "cus_staying"),
    ] {
        let body = event(
            id,
            "customer.source.created",
            t,
            card(card_id, customer, "x"),
        );
        assert_eq!(app.deliver(&body).await.0, 200);
    }
    assert!(db.delete_bucket(&old).await.unwrap());
    db.delete_bucket(&other).await.unwrap();
    let row = db
        .object(Kind::Source, "card_moving")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.bucket_id, None);

    let new = app.bucket("bob").await;
    let relinked =
        json!({"id": "cus_moving", "object": "customer", "metadata": {"bucket_id": new}});
    assert_eq!(
        app.deliver(&event("evt_c3", "customer.updated", t + 1, relinked))
            .await
            .0,
        200
    );
    let (status, cards) = call(app.get(&format!("/api/bucket/{new}/payment/cards"), "bob")).await;
    assert_eq!(status, 200, "{cards}");
    let ids: Vec<&str> = cards["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["card_moving"]);
    let staying = db
        .object(Kind::Source, "card_staying")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staying.bucket_id, None);
}

both!(a_relinked_customer_brings_its_cards);

/// Events stored without being applied (catch-up, or a delivery whose applying
/// transaction failed) are applied by the worker a claimed batch at a time:
/// the newest version of a card wins whatever the order in the batch, an
/// event of a customer of no bucket is applied as ignored, and a body that is
/// not an event fails on its own without holding the others back.
async fn the_worker_applies_a_stored_batch(b: Backend) {
    use paysync::store::inbox::NewEvent;
    use paysync::sync::worker::Drained;

    let app = TestApp::start(b).await;
    let db = &app.ctx.db;
    let bucket = app.bucket("alice").await;
    db.link_customer(&bucket, "cus_batch").await.unwrap();
    let t = now() - 50;
    let bodies = [
        (
            "evt_b2",
            event(
                "evt_b2",
                "customer.source.updated",
                t + 1,
                card("card_b", "cus_batch", "newer"),
            ),
        ),
        (
            "evt_b1",
            event(
                "evt_b1",
                "customer.source.created",
                t,
                card("card_b", "cus_batch", "older"),
            ),
        ),
        (
            "evt_b3",
            event(
                "evt_b3",
                "customer.source.created",
                t,
                card("card_x", "cus_elsewhere", "x"),
            ),
        ),
        (
            "evt_b4",
            r#"{"id": "evt_b4", "type": "customer.updated"}"#.to_string(),
        ),
    ];
    for (id, body) in &bodies {
        let stored = db
            .insert_event(&NewEvent {
                id,
                r#type: "customer.source.created",
                created: t,
                body,
                source: "catchup",
                customer: None,
                applied: false,
            })
            .await
            .unwrap();
        assert!(stored);
    }
    let drained = app.ctx.applier().drain().await.unwrap();
    assert_eq!(
        drained,
        Drained {
            applied: 3,
            failed: 1,
            dead: 0
        }
    );
    let (status, cards) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/cards"), "alice")).await;
    assert_eq!(status, 200, "{cards}");
    assert_eq!(cards["data"].as_array().unwrap().len(), 1);
    assert_eq!(cards["data"][0]["name"], "newer");
    for (id, state) in [
        ("evt_b1", "applied"),
        ("evt_b2", "applied"),
        ("evt_b3", "applied"),
        ("evt_b4", "failed"),
    ] {
        assert_eq!(db.event(id).await.unwrap().unwrap().state, state, "{id}");
    }
    assert!(db.object(Kind::Source, "card_x").await.unwrap().is_none());
}

both!(the_worker_applies_a_stored_batch);

// ---------------------------------------------------------------- apply rules

async fn tombstones_win_and_failures_are_parked_then_replayed(b: Backend) {
    let stripe_mock = wiremock::MockServer::start().await;
    let mut sync = Options::default().sync;
    sync.max_attempts = 2;
    sync.refetch = vec![Kind::Subscription];
    let opts = Options {
        stripe_base: Some(stripe_mock.uri()),
        stripe_max_attempts: 1,
        worker: true,
        sync,
        ..Options::default()
    };
    let app = TestApp::start_with(b, opts).await;
    let db = &app.ctx.db;
    let bucket = app.bucket("alice").await;
    db.link_customer(&bucket, "cus_tomb").await.unwrap();
    let t = now() - 100;

    // Deleted, then a late `updated` (older) and a same-second `updated`: the card stays deleted.
    assert_eq!(
        app.deliver(&event(
            "evt_t1",
            "customer.source.created",
            t,
            card("card_t", "cus_tomb", "a")
        ))
        .await
        .0,
        200
    );
    assert_eq!(
        app.deliver(&event(
            "evt_t3",
            "customer.source.deleted",
            t + 2,
            card("card_t", "cus_tomb", "b")
        ))
        .await
        .0,
        200
    );
    app.settle(10).await;
    assert_eq!(
        app.deliver(&event(
            "evt_t2",
            "customer.source.updated",
            t + 1,
            card("card_t", "cus_tomb", "late")
        ))
        .await
        .0,
        200
    );
    assert_eq!(
        app.deliver(&event(
            "evt_t4",
            "customer.source.updated",
            t + 2,
            card("card_t", "cus_tomb", "tie")
        ))
        .await
        .0,
        200
    );
    app.settle(10).await;
    let row = db.object(Kind::Source, "card_t").await.unwrap().unwrap();
    assert!(row.deleted, "a late update cannot resurrect a deleted card");
    assert!(
        db.bucket_objects(Kind::Source, &bucket, &Page::default())
            .await
            .unwrap()
            .is_empty()
    );

    // A customer of no bucket: ignored, the event kept and applied.
    let stranger = event(
        "evt_t5",
        "customer.source.created",
        t,
        card("card_s", "cus_stranger", "s"),
    );
    assert_eq!(app.deliver(&stranger).await.0, 200);
    app.settle(10).await;
    assert!(db.object(Kind::Source, "card_s").await.unwrap().is_none());
    assert_eq!(db.event("evt_t5").await.unwrap().unwrap().state, "applied");

    // A card delivered before the customer that links a bucket: applied once the link exists.
    let late_bucket = app.bucket("bob").await;
    let early = event(
        "evt_l1",
        "customer.source.created",
        t + 1,
        card("card_l", "cus_late", "l"),
    );
    assert_eq!(app.deliver(&early).await.0, 200);
    app.settle(10).await;
    assert!(
        db.object(Kind::Source, "card_l").await.unwrap().is_none(),
        "no bucket yet: ignored"
    );
    let linking =
        json!({"id": "cus_late", "object": "customer", "metadata": {"bucket_id": late_bucket}});
    assert_eq!(
        app.deliver(&event("evt_l2", "customer.created", t, linking))
            .await
            .0,
        200
    );
    app.settle(10).await;
    let cards = db
        .bucket_objects(Kind::Source, &late_bucket, &Page::default())
        .await
        .unwrap();
    assert_eq!(
        cards.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["card_l"]
    );

    // PAYSYNC_REFETCH=subscription and Stripe failing: retried, then parked dead.
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/v1/subscriptions/sub_r"))
        .respond_with(
            wiremock::ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "down"}})),
        )
        .up_to_n_times(2)
        .mount(&stripe_mock)
        .await;
    let sub = json!({"id": "sub_r", "object": "subscription", "customer": "cus_tomb", "status": "incomplete",
                     "plan": {"id": "paysync_starter_monthly"}});
    assert_eq!(
        app.deliver(&event(
            "evt_r",
            "customer.subscription.created",
            t,
            sub.clone()
        ))
        .await
        .0,
        200
    );
    let dead = eventually!(
        15,
        "the event parked as dead",
        async {
            db.event("evt_r")
                .await
                .unwrap()
                .filter(|e| e.state == "dead")
        }
        .await
    );
    assert_eq!(dead.attempts, 2);
    assert!(
        dead.last_error.as_deref().unwrap_or("").contains("500"),
        "{:?}",
        dead.last_error
    );

    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_paysync"))
            .args(args)
            .env("DATABASE_URL", &app.db.url)
            .env("STRIPE_SECRET_KEY", "sk_test_paysync")
            .env("STRIPE_API_BASE", stripe_mock.uri())
            .env("PAYSYNC_REFETCH", "subscription")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run paysync");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, listed, _) = cli(&["events", "list", "--dead"]);
    assert!(ok);
    assert!(
        listed.starts_with("evt_r\tcustomer.subscription.created\t"),
        "{listed}"
    );
    let (ok, listed, _) = cli(&["events", "list", "--failed"]);
    assert!(ok && listed.is_empty(), "{listed}");

    // Stripe is back: the replay applies Stripe's object (active), and the bucket gets the plan.
    let active = json!({"id": "sub_r", "object": "subscription", "customer": "cus_tomb", "status": "active",
                        "plan": {"id": "paysync_starter_monthly"}});
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/v1/subscriptions/sub_r"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(active))
        .mount(&stripe_mock)
        .await;
    let (ok, _, err) = cli(&["events", "replay", "evt_r", "evt_unknown"]);
    assert!(!ok, "an unknown id is reported: {err}");
    assert!(err.contains("evt_unknown: not in the inbox"), "{err}");
    assert_eq!(db.event("evt_r").await.unwrap().unwrap().state, "applied");
    let row = db
        .object(Kind::Subscription, "sub_r")
        .await
        .unwrap()
        .expect("the subscription is stored");
    assert_eq!(row.status.as_deref(), Some("active"), "{:?}", row.data);
    let state = plan_state(db, &app.ctx.cfg.catalog, &bucket).await.unwrap();
    assert_eq!(state.plan, "starter");

    // The customer deleted in Stripe: its cards go with it (Stripe sends no event for them).
    let kept = event(
        "evt_k1",
        "customer.source.created",
        t,
        card("card_k", "cus_tomb", "k"),
    );
    assert_eq!(app.deliver(&kept).await.0, 200);
    let gone = json!({"id": "cus_tomb", "object": "customer", "deleted": true});
    assert_eq!(
        app.deliver(&event("evt_k2", "customer.deleted", t + 5, gone))
            .await
            .0,
        200
    );
    app.settle(10).await;
    assert!(
        db.object(Kind::Customer, "cus_tomb")
            .await
            .unwrap()
            .unwrap()
            .deleted
    );
    assert!(
        db.object(Kind::Source, "card_k")
            .await
            .unwrap()
            .unwrap()
            .deleted,
        "the card went with its customer"
    );
}

both!(tombstones_win_and_failures_are_parked_then_replayed);

// ---------------------------------------------------------------- order independence

/// One change in a generated history. `tie` = same second as the previous change.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    CardUpdate,
    CardDelete,
    CustomerUpdate,
    SubUpdate(&'static str),
    SubCancel,
    InvoiceFinalize,
    InvoicePay,
}

pub(crate) fn op_strategy() -> impl proptest::strategy::Strategy<Value = (Op, bool)> {
    use proptest::prelude::*;
    let op = prop_oneof![
        3 => Just(Op::CardUpdate),
        1 => Just(Op::CardDelete),
        2 => Just(Op::CustomerUpdate),
        3 => prop_oneof![Just("active"), Just("past_due"), Just("unpaid")].prop_map(Op::SubUpdate),
        1 => Just(Op::SubCancel),
        2 => Just(Op::InvoiceFinalize),
        2 => Just(Op::InvoicePay),
    ];
    (op, proptest::bool::weighted(0.4))
}

/// A history on one customer: the events Stripe would send, and the objects as Stripe has them at the end.
pub(crate) struct History {
    pub events: Vec<String>,
    truth: Vec<(Kind, String, Option<Value>)>,
    plan: &'static str,
}

pub(crate) fn history(case: u64, customer: &str, ops: &[(Op, bool)], t0: i64) -> History {
    let (card_id, sub_id, inv_id) = (
        format!("card_p{case}"),
        format!("sub_p{case}"),
        format!("in_p{case}"),
    );
    let mut events = Vec::new();
    let mut t = t0;
    let mut n = 0;
    let mut emit = |events: &mut Vec<String>, t: i64, ty: &str, obj: &Value| {
        n += 1;
        events.push(event(&format!("evt_p{case}_{n:03}"), ty, t, obj.clone()));
    };
    let mut cust = json!({"id": customer, "object": "customer", "metadata": {"v": "0"}});
    let mut card_obj = card(&card_id, customer, "v0");
    let mut card_gone = false;
    let mut sub = json!({"id": sub_id, "object": "subscription", "customer": customer, "status": "active",
                         "plan": {"id": "paysync_starter_monthly"}, "canceled_at": null, "metadata": {"v": "0"}});
    let mut inv = json!({"id": inv_id, "object": "invoice", "customer": customer, "subscription": sub_id,
                         "status": "draft", "status_transitions": {"finalized_at": null, "paid_at": null}});
    emit(&mut events, t, "customer.source.created", &card_obj);
    emit(&mut events, t, "customer.subscription.created", &sub);
    emit(&mut events, t, "invoice.created", &inv);
    for (i, (op, tie)) in ops.iter().enumerate() {
        if !tie {
            t += 1;
        }
        let v = format!("v{}", i + 1);
        let canceled = sub["status"] == "canceled";
        match op {
            Op::CardUpdate if !card_gone => {
                card_obj["name"] = json!(v);
                emit(&mut events, t, "customer.source.updated", &card_obj);
            }
            Op::CardDelete if !card_gone => {
                card_gone = true;
                emit(&mut events, t, "customer.source.deleted", &card_obj);
            }
            Op::CustomerUpdate => {
                cust["metadata"]["v"] = json!(v);
                emit(&mut events, t, "customer.updated", &cust);
            }
            Op::SubUpdate(status) if !canceled => {
                sub["status"] = json!(status);
                sub["metadata"]["v"] = json!(v);
                emit(&mut events, t, "customer.subscription.updated", &sub);
            }
            Op::SubCancel if !canceled => {
                sub["status"] = json!("canceled");
                sub["canceled_at"] = json!(t);
                emit(&mut events, t, "customer.subscription.deleted", &sub);
            }
            Op::InvoiceFinalize if inv["status"] == "draft" => {
                inv["status"] = json!("open");
                inv["status_transitions"]["finalized_at"] = json!(t);
                emit(&mut events, t, "invoice.finalized", &inv);
            }
            Op::InvoicePay if inv["status"] == "open" => {
                inv["status"] = json!("paid");
                inv["status_transitions"]["paid_at"] = json!(t);
                emit(&mut events, t, "invoice.paid", &inv);
            }
            _ => {}
        }
    }
    let customer_changed = cust["metadata"]["v"] != "0";
    let mut truth = Vec::new();
    truth.push((Kind::Source, card_id, (!card_gone).then_some(card_obj)));
    let plan = if ["active", "past_due"].contains(&sub["status"].as_str().unwrap_or("")) {
        "starter"
    } else {
        "free"
    };
    truth.push((Kind::Subscription, sub_id, Some(sub)));
    truth.push((Kind::Invoice, inv_id, Some(inv)));
    if customer_changed {
        truth.push((Kind::Customer, customer.to_string(), Some(cust)));
    }
    History {
        events,
        truth,
        plan,
    }
}

/// Stripe as it is at the end of the history: answers the re-fetches.
async fn mount_truth(
    server: &wiremock::MockServer,
    customer: &str,
    truth: &[(Kind, String, Option<Value>)],
) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    for (kind, id, obj) in truth {
        let p = match kind {
            Kind::Source => format!("/v1/customers/{customer}/sources/{id}"),
            Kind::Subscription => format!("/v1/subscriptions/{id}"),
            Kind::Invoice => format!("/v1/invoices/{id}"),
            Kind::Customer => format!("/v1/customers/{id}"),
            _ => continue,
        };
        let resp = match obj {
            Some(o) => ResponseTemplate::new(200).set_body_json(o),
            None => ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such source"}})),
        };
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(resp)
            .mount(server)
            .await;
    }
}

async fn check_state(app: &TestApp, bucket: &str, h: &History) -> Result<(), String> {
    let db = &app.ctx.db;
    for (kind, id, want) in &h.truth {
        let row = db.object(*kind, id).await.map_err(|e| e.to_string())?;
        match (want, row) {
            (None, Some(r)) if r.deleted => {}
            (Some(w), Some(r)) if !r.deleted && &r.data == w => {}
            (w, r) => {
                return Err(format!(
                    "{kind:?} {id}: want {w:?}, got {:?}",
                    r.map(|r| (r.deleted, r.data))
                ));
            }
        }
    }
    let plan = plan_state(db, &app.ctx.cfg.catalog, bucket)
        .await
        .map_err(|e| e.to_string())?
        .plan;
    if plan != h.plan {
        return Err(format!("plan {plan}, want {}", h.plan));
    }
    Ok(())
}

async fn any_order_any_duplicates_same_cache(b: Backend) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let server = wiremock::MockServer::start().await;
    let opts = Options {
        stripe_base: Some(server.uri()),
        stripe_max_attempts: 1,
        worker: true,
        ..Options::default()
    };
    let in_order = Arc::new(TestApp::start_with(b, opts.clone()).await);
    let shuffled = Arc::new(TestApp::start_with(b, opts).await);
    let server = Arc::new(server);
    let case = Arc::new(AtomicU64::new(0));

    let strategy = proptest::collection::vec(op_strategy(), 1..14).prop_flat_map(|ops| {
        // Upper bound of the events of a history: 3 creations + one per op.
        let n = ops.len() + 3;
        (
            Just(ops),
            proptest::collection::vec(0..n, 0..n),
            any::<u64>(),
        )
    });
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(ops, dups, seed)| {
            let (in_order, shuffled, server, case) = (
                in_order.clone(),
                shuffled.clone(),
                server.clone(),
                case.clone(),
            );
            handle
                .block_on(async move {
                    let c = case.fetch_add(1, Ordering::SeqCst);
                    let customer = format!("cus_p{c}");
                    let h = history(c, &customer, &ops, now() - 1000);
                    mount_truth(&server, &customer, &h.truth).await;
                    let mut buckets = Vec::new();
                    for app in [&in_order, &shuffled] {
                        let bucket = app.bucket("alice").await;
                        app.ctx
                            .db
                            .link_customer(&bucket, &customer)
                            .await
                            .map_err(|e| e.to_string())?;
                        buckets.push(bucket);
                    }
                    // In order, once.
                    for e in &h.events {
                        let got = in_order.deliver(e).await;
                        if got.0 != 200 {
                            return Err(format!("in order: {got:?}"));
                        }
                    }
                    // Shuffled, with duplicates.
                    let mut order: Vec<usize> = (0..h.events.len()).collect();
                    order.extend(dups.iter().filter(|&&i| i < h.events.len()));
                    shuffle(&mut order, seed);
                    for &i in &order {
                        let got = shuffled.deliver(&h.events[i]).await;
                        if got.0 != 200 {
                            return Err(format!("shuffled: {got:?}"));
                        }
                    }
                    in_order.settle(20).await;
                    shuffled.settle(20).await;
                    check_state(&in_order, &buckets[0], &h)
                        .await
                        .map_err(|e| format!("in order: {e}"))?;
                    check_state(&shuffled, &buckets[1], &h)
                        .await
                        .map_err(|e| format!("shuffled {order:?}: {e}"))?;
                    Ok(())
                })
                .map_err(TestCaseError::fail)
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Every delivery was applied; none is left failing.
    assert_eq!(shuffled.ctx.db.count_events("dead").await.unwrap(), 0);
}

/// A deterministic Fisher-Yates shuffle from a seed (xorshift).
pub(crate) fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

both!(any_order_any_duplicates_same_cache);

// ---------------------------------------------------------------- real processes

/// A `paysync serve` child process on a test database.
struct Server {
    child: Child,
    url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    async fn start(db_url: &str) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_paysync"))
            .arg("serve")
            .env("DATABASE_URL", db_url)
            .env("PAYSYNC_BIND", format!("127.0.0.1:{port}"))
            .env("STRIPE_SECRET_KEY", "sk_test_paysync")
            .env("STRIPE_API_BASE", "http://127.0.0.1:9")
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("PAYSYNC_JWT_SECRET", JWT_SECRET)
            .env(
                "PAYSYNC_PLANS",
                concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/plans.toml"),
            )
            .env("PAYSYNC_EVENT_LEASE", "1s")
            .env("PAYSYNC_EVENT_POLL", "200ms")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start paysync serve");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually!(20, "paysync serve to listen", {
            http.get(format!("{url}/healthz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        });
        Server { child, url }
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (event id, body) in sending order, and each card's final state (None: deleted).
type CardHistories = (Vec<(String, String)>, BTreeMap<String, Option<Value>>);

/// `cards` cards of one customer, ten events each (created, updates, and every
/// fourth card deleted at the end), each change one second after the last.
fn card_histories(prefix: &str, customer: &str, cards: usize, t0: i64) -> CardHistories {
    let mut events = Vec::new();
    let mut truth = BTreeMap::new();
    for c in 0..cards {
        let id = format!("card_{prefix}{c}");
        let mut last = card(&id, customer, "v0");
        events.push((
            format!("evt_{prefix}{c}_0"),
            event(
                &format!("evt_{prefix}{c}_0"),
                "customer.source.created",
                t0,
                last.clone(),
            ),
        ));
        for k in 1..10 {
            let eid = format!("evt_{prefix}{c}_{k}");
            last = card(&id, customer, &format!("v{k}"));
            let ty = if k == 9 && c % 4 == 0 {
                "customer.source.deleted"
            } else {
                "customer.source.updated"
            };
            events.push((eid.clone(), event(&eid, ty, t0 + k, last.clone())));
        }
        truth.insert(id, (c % 4 != 0).then_some(last));
    }
    (events, truth)
}

async fn post_signed(http: &reqwest::Client, url: &str, body: &str) -> Option<u16> {
    let header = signature::header(WEBHOOK_SECRET, now(), body.as_bytes());
    let resp = http
        .post(format!("{url}/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

async fn check_cards(db: &Db, truth: &BTreeMap<String, Option<Value>>) {
    for (id, want) in truth {
        let row = db
            .object(Kind::Source, id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} missing"));
        match want {
            None => assert!(row.deleted, "{id} should be deleted"),
            Some(w) => assert!(!row.deleted && &row.data == w, "{id}: {:?}", row.data),
        }
    }
}

async fn unapplied(db: &Db) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM stripe_events WHERE state <> 'applied'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn sigkill_while_receiving_loses_nothing(b: Backend) {
    let test_db = TestDb::new(b).await;
    let db = Db::open(&test_db.url).await.unwrap();
    let bucket = paysync::store::buckets::new_id();
    db.put_bucket(&bucket, "crash", &[]).await.unwrap();
    db.link_customer(&bucket, "cus_crash").await.unwrap();
    let (events, truth) = card_histories("k", "cus_crash", 200, now() - 5000);
    assert_eq!(events.len(), 2000);

    let server = Server::start(&test_db.url).await;
    let acked = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let count = Arc::new(AtomicU64::new(0));
    let events = Arc::new(events);
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (events, acked, count, http, url) = (
            events.clone(),
            acked.clone(),
            count.clone(),
            http.clone(),
            server.url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for (id, body) in events.iter().skip(w).step_by(8) {
                if post_signed(&http, &url, body).await == Some(200) {
                    acked.lock().unwrap().insert(id.clone());
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Kill it mid-stream, while deliveries are being received and applied.
    eventually!(
        60,
        "some deliveries acknowledged",
        async { (count.load(Ordering::SeqCst) >= 700).then_some(()) }.await
    );
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 700 && acked.len() < 2000,
        "killed mid-stream: {} acknowledged",
        acked.len()
    );

    // Every acknowledged event survived the kill.
    let stored: HashSet<String> = sqlx::query("SELECT id FROM stripe_events")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>("id").unwrap())
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    // Restart; Stripe re-sends what did not get a 200.
    let server = Server::start(&test_db.url).await;
    for (id, body) in events.iter().filter(|(id, _)| !acked.contains(id)) {
        assert_eq!(
            post_signed(&http, &server.url, body).await,
            Some(200),
            "{id}"
        );
    }
    eventually!(
        60,
        "every event applied",
        async { (inbox_count(&db).await == 2000 && unapplied(&db).await == 0).then_some(()) }.await
    );
    check_cards(&db, &truth).await;
    assert_eq!(db.count_events("dead").await.unwrap(), 0);
    let cards = db
        .bucket_objects(Kind::Source, &bucket, &Page::default())
        .await
        .unwrap();
    assert_eq!(cards.len(), 150);
    drop(server);
}

both!(sigkill_while_receiving_loses_nothing);

async fn two_processes_apply_each_event_once(b: Backend) {
    let test_db = TestDb::new(b).await;
    let db = Db::open(&test_db.url).await.unwrap();
    let bucket = paysync::store::buckets::new_id();
    db.put_bucket(&bucket, "shared", &[]).await.unwrap();
    db.link_customer(&bucket, "cus_two").await.unwrap();
    let (events, truth) = card_histories("d", "cus_two", 50, now() - 5000);
    assert_eq!(events.len(), 500);
    let (a, b2) = (
        Server::start(&test_db.url).await,
        Server::start(&test_db.url).await,
    );

    // Both receive every event (as with two endpoints, or Stripe retrying on another replica), in different orders.
    let mut reversed = events.clone();
    reversed.reverse();
    let http = reqwest::Client::new();
    let send_all = |url: String, list: Vec<(String, String)>| {
        let http = http.clone();
        async move {
            for (id, body) in &list {
                assert_eq!(post_signed(&http, &url, body).await, Some(200), "{id}");
            }
        }
    };
    tokio::join!(
        send_all(a.url.clone(), events.clone()),
        send_all(b2.url.clone(), reversed)
    );

    eventually!(
        60,
        "every event applied",
        async { (unapplied(&db).await == 0).then_some(()) }.await
    );
    assert_eq!(inbox_count(&db).await, 500);
    check_cards(&db, &truth).await;
    let applied = a.metric("paysync_events_applied_total").await
        + b2.metric("paysync_events_applied_total").await;
    assert_eq!(
        applied, 500.0,
        "each event applied exactly once across both processes"
    );
    let received = a.metric("paysync_webhook_received_total").await
        + b2.metric("paysync_webhook_received_total").await;
    assert_eq!(received, 1000.0);
}

both!(two_processes_apply_each_event_once);

// ---------------------------------------------------------------- catch-up

/// No webhook registered: `paysync reconcile` stores the events it lists and applies them before it exits.
async fn catch_up_applies_what_it_stored(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    let customer = customer_for(&bucket).await;
    let token = card_token("4242424242424242").await;
    let card_id = id(&stripe(
        Method::POST,
        &format!("/customers/{customer}/sources"),
        &[("source", &token)],
    )
    .await);

    let out = Command::new(env!("CARGO_BIN_EXE_paysync"))
        .arg("reconcile")
        .env("DATABASE_URL", &app.db.url)
        .env("STRIPE_SECRET_KEY", "sk_test_paysync")
        .env("STRIPE_API_BASE", localstripe_url())
        .env(
            "PAYSYNC_STRIPE_API_VERSION",
            paysync::stripe::version::LEGACY,
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run paysync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("applied "), "{stderr}");
    let db = &app.ctx.db;
    assert_eq!(
        db.bucket(&bucket)
            .await
            .unwrap()
            .unwrap()
            .stripe_customer_id
            .as_deref(),
        Some(customer.as_str())
    );
    assert!(
        db.bucket_object(Kind::Source, &bucket, &card_id)
            .await
            .unwrap()
            .is_some(),
        "the card is applied"
    );
    assert_eq!(
        db.inbox_backlog().await.unwrap().0,
        0,
        "nothing left unapplied"
    );
}

both!(catch_up_applies_what_it_stored);
