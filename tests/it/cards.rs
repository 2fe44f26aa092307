//! The card routes against localstripe, on both backends: attach (token and
//! PaymentMethod), list default-first, fetch, update, set default, delete with
//! the last-card rule, and the errors a billing page meets.

use paysync::store::buckets::Role;
use paysync::store::{Kind, Watermark};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::common::*;
use crate::stripe_direct::*;

fn cards(bucket: &str) -> String {
    format!("/api/bucket/{bucket}/payment/cards")
}
fn card(bucket: &str, id: &str) -> String {
    format!("/api/bucket/{bucket}/payment/card/{id}")
}

/// Attach a fresh test card; returns its id.
pub async fn attach(app: &TestApp, bucket: &str, user: &str, number: &str) -> String {
    let token = card_token(number).await;
    let got = call(
        app.post(&cards(bucket), user)
            .json(&json!({"token": token})),
    )
    .await;
    assert_eq!(got.0, 200, "{:?}", got.1);
    got.1["data"]["id"].as_str().expect("card id").to_string()
}

/// A card PaymentMethod made in Stripe (as Stripe.js would).
async fn card_pm() -> String {
    let pm = stripe(
        Method::POST,
        "/payment_methods",
        &[
            ("type", "card"),
            ("card[number]", "4242424242424242"),
            ("card[exp_month]", "11"),
            ("card[exp_year]", "2031"),
            ("card[cvc]", "123"),
        ],
    )
    .await;
    id(&pm)
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

async fn attach_and_list(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    assert_error(
        &call(app.get(&cards(&bucket), "alice")).await,
        404,
        "no_cards",
    );
    assert_error(
        &call(app.get(&format!("/api/bucket/{bucket}/payment/card"), "alice")).await,
        404,
        "no_default_card",
    );

    let token = card_token("4242424242424242").await;
    let (status, body) = call(
        app.post(&cards(&bucket), "alice")
            .json(&json!({"token": token})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first = body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["object"], "card");
    assert_eq!(body["data"]["last4"], "4242");
    assert_eq!(body["data"]["exp_month"], 12);

    // The bucket got its customer, with metadata.bucket_id, and the first card is the default.
    let customer = app
        .ctx
        .db
        .bucket(&bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .expect("customer linked");
    let in_stripe = stripe(Method::GET, &format!("/customers/{customer}"), &[]).await;
    assert_eq!(in_stripe["metadata"]["bucket_id"], bucket.as_str());
    assert_eq!(in_stripe["default_source"], first.as_str());

    // Read-your-writes, and a PaymentMethod is listed as a card too, the default first.
    let pm = card_pm().await;
    let (status, body) = call(
        app.post(&cards(&bucket), "alice")
            .json(&json!({"token": pm})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["object"], "card");
    assert_eq!(body["data"]["brand"], "Visa");
    assert_eq!(body["data"]["exp_year"], 2031);
    let second = attach(&app, &bucket, "alice", "5555555555554444").await;
    let (status, list) = call(app.get(&cards(&bucket), "alice")).await;
    assert_eq!(status, 200, "{list}");
    let listed = ids(&list);
    assert_eq!(listed[0], first, "default first");
    let mut rest = listed[1..].to_vec();
    rest.sort();
    let mut want = vec![second, pm.clone()];
    want.sort();
    assert_eq!(rest, want);

    let (status, one) = call(app.get(&card(&bucket, &pm), "alice")).await;
    assert_eq!(
        (status, one["data"]["last4"].as_str()),
        (200, Some("4242")),
        "{one}"
    );
    let (status, default) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/card"), "alice")).await;
    assert_eq!(
        (status, default["data"]["id"].as_str()),
        (200, Some(first.as_str()))
    );

    // The list is served from each row's stored view; rows written before the
    // views existed (or by an older replica) have none and are shown the same.
    let views: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, view FROM stripe_sources ORDER BY id")
            .fetch_all(&app.ctx.db.pool)
            .await
            .unwrap();
    assert_eq!(views.len(), 3);
    assert!(
        views.iter().all(|(_, v)| v.is_some()),
        "every written source has its view: {views:?}"
    );
    for table in ["stripe_sources", "stripe_customers"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET view = NULL"
        )))
        .execute(&app.ctx.db.pool)
        .await
        .unwrap();
    }
    let (status, again) = call(app.get(&cards(&bucket), "alice")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, list, "the same answer without stored views");
    // What a start does for such rows: their views are filled in, same answer.
    let filled = paysync::store::views::fill_missing(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(filled, 4, "three sources and the customer");
    let (status, filled_in) = call(app.get(&cards(&bucket), "alice")).await;
    assert_eq!((status, &filled_in), (200, &list));
}

async fn bad_input_and_declines(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    assert_error(
        &call(app.post(&cards(&bucket), "alice").json(&json!({}))).await,
        400,
        "missing_token",
    );
    assert_error(
        &call(
            app.post(&cards(&bucket), "alice")
                .json(&json!({"token": "4242"})),
        )
        .await,
        400,
        "invalid_token",
    );
    assert_error(
        &call(
            app.post(&cards(&bucket), "alice")
                .json(&json!({"token": "pm_x/../../customers"})),
        )
        .await,
        400,
        "invalid_token",
    );
    // A token Stripe does not know: the caller's mistake.
    let got = call(
        app.post(&cards(&bucket), "alice")
            .json(&json!({"token": "tok_doesnotexist"})),
    )
    .await;
    assert_eq!(got.0, 400, "{:?}", got.1);

    // Declined: 402 with Stripe's code, and nothing cached.
    let token = card_token("4000000000000002").await;
    let got = call(
        app.post(&cards(&bucket), "alice")
            .json(&json!({"token": token})),
    )
    .await;
    assert_error(&got, 402, "card_declined");
    assert_eq!(got.1["error"]["stripe_code"], "card_declined");
    assert_error(
        &call(app.get(&cards(&bucket), "alice")).await,
        404,
        "no_cards",
    );

    // Roles: a member reads but may not write; a stranger sees no bucket.
    app.add_member(&bucket, "mallory", Role::Member).await;
    let token = card_token("4242424242424242").await;
    assert_error(
        &call(
            app.post(&cards(&bucket), "mallory")
                .json(&json!({"token": token})),
        )
        .await,
        403,
        "insufficient_role",
    );
    assert_error(
        &call(app.get(&cards(&bucket), "mallory")).await,
        404,
        "no_cards",
    );
    assert_error(
        &call(app.get(&cards(&bucket), "eve")).await,
        404,
        "bucket_not_found",
    );
    assert_error(
        &call(
            app.post(&cards(&bucket), "eve")
                .json(&json!({"token": token})),
        )
        .await,
        404,
        "bucket_not_found",
    );
}

async fn update_default_and_cross_bucket(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    let other = app.bucket("bob").await;
    let first = attach(&app, &bucket, "alice", "4242424242424242").await;
    let second = attach(&app, &bucket, "alice", "5555555555554444").await;
    let bobs = attach(&app, &other, "bob", "4242424242424242").await;
    let pm = card_pm().await;
    assert_eq!(
        call(
            app.post(&cards(&bucket), "alice")
                .json(&json!({"token": pm}))
        )
        .await
        .0,
        200
    );

    // Another bucket's card does not exist here, for reads and writes alike.
    assert_error(
        &call(app.get(&card(&bucket, &bobs), "alice")).await,
        404,
        "card_not_found",
    );
    assert_error(
        &call(app.delete(&card(&bucket, &bobs), "alice")).await,
        404,
        "card_not_found",
    );
    assert_error(
        &call(app.post(&format!("{}/default", card(&bucket, &bobs)), "alice")).await,
        404,
        "card_not_found",
    );
    let put = format!("/api/bucket/{bucket}/payment/card");
    assert_error(
        &call(
            app.put(&put, "alice")
                .json(&json!({"id": bobs, "address_city": "Paris"})),
        )
        .await,
        404,
        "card_not_found",
    );
    assert_error(
        &call(app.get(&card(&bucket, "not-a-card"), "alice")).await,
        400,
        "invalid_card_id",
    );

    // Update: 400 without id or fields, then the address lands in Stripe and in the cache.
    assert_error(
        &call(
            app.put(&put, "alice")
                .json(&json!({"address_city": "Paris"})),
        )
        .await,
        400,
        "missing_card_id",
    );
    assert_error(
        &call(app.put(&put, "alice").json(&json!({"id": second}))).await,
        400,
        "nothing_to_update",
    );
    let (status, body) = call(app.put(&put, "alice").json(&json!({
        "id": second, "address_line1": "1 rue de Rivoli", "address_country": "FR", "address_zip": "75001", "address_city": "Paris"
    }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["address_city"], "Paris");
    assert_eq!(
        body["data"]["exp_month"], 12,
        "a number even when Stripe answers a string"
    );
    let (_, one) = call(app.get(&card(&bucket, &second), "alice")).await;
    assert_eq!(one["data"]["address_zip"], "75001");
    let (status, body) = call(
        app.put(&put, "alice")
            .json(&json!({"id": pm, "address_city": "Lyon"})),
    )
    .await;
    assert_eq!(
        (status, body["data"]["address_city"].as_str()),
        (200, Some("Lyon")),
        "{body}"
    );

    // Set default: a card, then a PaymentMethod; the list follows.
    let (status, body) =
        call(app.post(&format!("{}/default", card(&bucket, &second)), "alice")).await;
    assert_eq!(
        (status, body["data"]["id"].as_str()),
        (200, Some(second.as_str())),
        "{body}"
    );
    let (_, list) = call(app.get(&cards(&bucket), "alice")).await;
    assert_eq!(ids(&list)[0], second);
    let customer = app
        .ctx
        .db
        .bucket(&bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .unwrap();
    assert_eq!(
        stripe(Method::GET, &format!("/customers/{customer}"), &[]).await["default_source"],
        second.as_str()
    );
    let (status, _) = call(app.post(&format!("{}/default", card(&bucket, &pm)), "alice")).await;
    assert_eq!(status, 200);
    let (_, default) = call(app.get(&format!("/api/bucket/{bucket}/payment/card"), "alice")).await;
    assert_eq!(default["data"]["id"], pm.as_str());
    let (status, _) = call(app.post(&format!("{}/default", card(&bucket, &first)), "alice")).await;
    assert_eq!(status, 200);
    let (_, default) = call(app.get(&format!("/api/bucket/{bucket}/payment/card"), "alice")).await;
    assert_eq!(
        default["data"]["id"],
        first.as_str(),
        "a card source wins again once the PaymentMethod default is cleared"
    );

    // A member may look but not change anything.
    app.add_member(&bucket, "mallory", Role::Member).await;
    assert_eq!(call(app.get(&cards(&bucket), "mallory")).await.0, 200);
    assert_error(
        &call(app.post(&format!("{}/default", card(&bucket, &second)), "mallory")).await,
        403,
        "insufficient_role",
    );
    assert_error(
        &call(app.delete(&card(&bucket, &second), "mallory")).await,
        403,
        "insufficient_role",
    );
    assert_error(
        &call(
            app.put(&put, "mallory")
                .json(&json!({"id": second, "address_city": "X"})),
        )
        .await,
        403,
        "insufficient_role",
    );
}

/// Pretend Stripe told us about a live subscription of the bucket.
async fn live_subscription(app: &TestApp, bucket: &str) {
    let customer = app
        .ctx
        .db
        .bucket(bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .unwrap();
    let sub = json!({"object": "subscription", "id": format!("sub_{bucket}"), "customer": customer, "status": "active",
        "created": 1_700_000_000, "plan": {"id": "paysync_starter_monthly"}});
    paysync::sync::apply::store(&app.ctx.db, &sub, &Watermark::api("test"), false, true)
        .await
        .unwrap();
}

async fn delete_and_last_card_rule(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    let first = attach(&app, &bucket, "alice", "4242424242424242").await;
    let second = attach(&app, &bucket, "alice", "5555555555554444").await;
    live_subscription(&app, &bucket).await;

    // Deleting the default: Stripe picks the new default, and the cache follows.
    let (status, body) = call(app.delete(&card(&bucket, &first), "alice")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["id"].as_str(), body["deleted"].as_bool()),
        (Some(first.as_str()), Some(true))
    );
    assert_error(
        &call(app.get(&card(&bucket, &first), "alice")).await,
        404,
        "card_not_found",
    );
    assert!(
        app.ctx
            .db
            .object(Kind::Source, &first)
            .await
            .unwrap()
            .unwrap()
            .deleted,
        "tombstoned"
    );
    let (_, list) = call(app.get(&cards(&bucket), "alice")).await;
    assert_eq!(ids(&list), vec![second.clone()]);
    let (status, default) =
        call(app.get(&format!("/api/bucket/{bucket}/payment/card"), "alice")).await;
    assert_eq!(
        (status, default["data"]["id"].as_str()),
        (200, Some(second.as_str())),
        "{default}"
    );

    // The last card of a subscribed bucket stays.
    assert_error(
        &call(app.delete(&card(&bucket, &second), "alice")).await,
        403,
        "last_card",
    );
    assert_eq!(call(app.get(&card(&bucket, &second), "alice")).await.0, 200);

    // A PaymentMethod is detached the same way, and without a subscription the last card goes too.
    let pm = card_pm().await;
    assert_eq!(
        call(
            app.post(&cards(&bucket), "alice")
                .json(&json!({"token": pm}))
        )
        .await
        .0,
        200
    );
    let (status, body) = call(app.delete(&card(&bucket, &pm), "alice")).await;
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let other = app.bucket("bob").await;
    let only = attach(&app, &other, "bob", "4242424242424242").await;
    assert_eq!(call(app.delete(&card(&other, &only), "bob")).await.0, 200);
    assert_error(&call(app.get(&cards(&other), "bob")).await, 404, "no_cards");
}

/// After the writes, Stripe is unreachable: every read still answers from the
/// cache, and writes answer 500 `stripe_error` without changing it.
async fn reads_never_call_stripe(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    let card_id = attach(&app, &bucket, "alice", "4242424242424242").await;
    let bank = call(
        app.post(&format!("/api/bucket/{bucket}/payment/banks"), "alice")
            .json(&json!({"type": "sepa", "iban": "DE89370400440532013000", "name": "Alice"})),
    )
    .await;
    assert_eq!(bank.0, 200, "{:?}", bank.1);
    let meta = call(
        app.put(&format!("/api/bucket/{bucket}/payment"), "alice")
            .json(&json!({"metadata": {"company_name": "Acme"}})),
    )
    .await;
    assert_eq!(meta.0, 200, "{:?}", meta.1);

    let offline = TestApp::start_on(
        app.db.alias(),
        Options {
            stripe_base: Some("http://127.0.0.1:9".into()),
            stripe_max_attempts: 1,
            ..Options::default()
        },
    )
    .await;
    for path in [
        cards(&bucket),
        card(&bucket, &card_id),
        format!("/api/bucket/{bucket}/payment/card"),
        format!("/api/bucket/{bucket}/payment"),
        format!("/api/bucket/{bucket}/payment/banks"),
    ] {
        let (status, body) = call(offline.get(&path, "alice")).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, meta) = call(offline.get(&format!("/api/bucket/{bucket}/payment"), "alice")).await;
    assert_eq!(meta["company_name"], "Acme");

    let before = app
        .ctx
        .db
        .bucket_objects(Kind::Source, &bucket, &Default::default())
        .await
        .unwrap()
        .len();
    assert_error(
        &call(offline.delete(&card(&bucket, &card_id), "alice")).await,
        500,
        "stripe_error",
    );
    assert_error(
        &call(offline.post(&format!("{}/default", card(&bucket, &card_id)), "alice")).await,
        500,
        "stripe_error",
    );
    assert_error(
        &call(offline.delete(&format!("/api/bucket/{bucket}/payment/banks"), "alice")).await,
        500,
        "stripe_error",
    );
    let token = card_token("5555555555554444").await;
    assert_error(
        &call(
            offline
                .post(&cards(&bucket), "alice")
                .json(&json!({"token": token})),
        )
        .await,
        500,
        "stripe_error",
    );
    assert_error(
        &call(
            offline
                .put(&format!("/api/bucket/{bucket}/payment"), "alice")
                .json(&json!({"metadata": {"company_name": "X"}})),
        )
        .await,
        500,
        "stripe_error",
    );
    let put = format!("/api/bucket/{bucket}/payment/card");
    let update = call(
        offline
            .put(&put, "alice")
            .json(&json!({"id": card_id, "address_city": "Nowhere"})),
    )
    .await;
    assert_error(&update, 500, "stripe_error");
    let new_bank = offline
        .post(&format!("/api/bucket/{bucket}/payment/banks"), "alice")
        .json(&json!({"type": "sepa", "iban": "FR1420041010050500013M02606", "name": "Alice"}));
    assert_error(&call(new_bank).await, 500, "stripe_error");
    assert_eq!(
        app.ctx
            .db
            .bucket_objects(Kind::Source, &bucket, &Default::default())
            .await
            .unwrap()
            .len(),
        before
    );
    let (_, one) = call(offline.get(&card(&bucket, &card_id), "alice")).await;
    assert!(one["data"]["address_city"].is_null(), "{one}");
    let (_, bank_now) =
        call(offline.get(&format!("/api/bucket/{bucket}/payment/banks"), "alice")).await;
    assert_eq!(bank_now["data"]["id"], bank.1["data"]["id"]);
    let (_, list) = call(offline.get(&cards(&bucket), "alice")).await;
    assert_eq!(ids(&list), vec![card_id]);
    let (_, meta) = call(offline.get(&format!("/api/bucket/{bucket}/payment"), "alice")).await;
    assert_eq!(meta["company_name"], "Acme");
}

/// Two first writes at once make one Stripe customer, and both cards land on it.
async fn concurrent_first_writes_one_customer(b: Backend) {
    let app = TestApp::start(b).await.shared();
    let bucket = app.bucket("alice").await;
    let (t1, t2) = (
        card_token("4242424242424242").await,
        card_token("5555555555554444").await,
    );
    let (a, b2) = tokio::join!(
        call(
            app.post(&cards(&bucket), "alice")
                .json(&json!({"token": t1}))
        ),
        call(
            app.post(&cards(&bucket), "alice")
                .json(&json!({"token": t2}))
        ),
    );
    assert_eq!((a.0, b2.0), (200, 200), "{:?} {:?}", a.1, b2.1);
    let customer = app
        .ctx
        .db
        .bucket(&bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .unwrap();
    assert_eq!(a.1["data"]["customer"], customer.as_str());
    assert_eq!(b2.1["data"]["customer"], customer.as_str());
    assert_eq!(customers_of(&bucket).await, vec![customer]);
    let (_, list) = call(app.get(&cards(&bucket), "alice")).await;
    assert_eq!(ids(&list).len(), 2);
}

/// Every Stripe customer whose `metadata.bucket_id` is this bucket.
async fn customers_of(bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![("limit", "100".to_string())];
        if let Some(a) = &after {
            q.push(("starting_after", a.clone()));
        }
        let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let page = stripe(Method::GET, &format!("/customers?{}", query.join("&")), &[]).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        out.extend(
            data.iter()
                .filter(|c| c["metadata"]["bucket_id"] == bucket)
                .map(id),
        );
        match (page["has_more"].as_bool(), data.last()) {
            (Some(true), Some(last)) => after = Some(id(last)),
            _ => return out,
        }
    }
}

/// A card deleted in Stripe behind paysync's back: deleting it here succeeds and tombstones it.
async fn delete_card_already_gone(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    let gone = attach(&app, &bucket, "alice", "4242424242424242").await;
    let customer = app
        .ctx
        .db
        .bucket(&bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .unwrap();
    stripe(
        Method::DELETE,
        &format!("/customers/{customer}/sources/{gone}"),
        &[],
    )
    .await;
    let (status, body) = call(app.delete(&card(&bucket, &gone), "alice")).await;
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_error(
        &call(app.get(&cards(&bucket), "alice")).await,
        404,
        "no_cards",
    );
}

both!(
    delete_card_already_gone,
    attach_and_list,
    bad_input_and_declines,
    update_default_and_cross_bucket,
    delete_and_last_card_rule,
    reads_never_call_stripe,
    concurrent_first_writes_one_customer
);

/// The list is kept in memory (`store::cards_cache`); a change made outside
/// this server (a `paysync` command, another replica: here a second database
/// handle, which has no cache of its own) must still show, within moments
/// (`store::changes`: SQLite's change log is looked at every few
/// milliseconds, Postgres notifies).
async fn list_follows_changes_made_elsewhere(b: Backend) {
    let opts = Options {
        cards_look_every: paysync::store::changes::LOOK_EVERY,
        ..Options::default()
    };
    let app = TestApp::start_with(b, opts).await;
    let bucket = app.bucket("alice").await;
    app.add_member(&bucket, "bob", Role::Member).await;
    let card = attach(&app, &bucket, "alice", "4242424242424242").await;
    for user in ["alice", "bob"] {
        let (status, list) = call(app.get(&cards(&bucket), user)).await;
        assert_eq!((status, ids(&list)), (200, vec![card.clone()]), "{list}");
    }
    assert!(
        app.ctx.db.cards_cached_bytes() > 0,
        "the answer is kept in memory"
    );

    let elsewhere = paysync::store::Db::open(&app.db.url).await.unwrap();
    // Read until the list answers `want` (two seconds at most).
    let settled = |user: &'static str, want: (u16, &'static str)| {
        let app = &app;
        let bucket = bucket.clone();
        async move {
            let mut got = (0, Value::Null);
            for _ in 0..100 {
                got = call(app.get(&cards(&bucket), user)).await;
                if (got.0, got.1["error"]["code"].as_str().unwrap_or("")) == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("{user} still gets {got:?}, expected {want:?}");
        }
    };

    // The card is deleted elsewhere: nobody is shown it any more.
    sqlx::query("UPDATE stripe_sources SET deleted = 1 WHERE id = $1")
        .bind(&card)
        .execute(&elsewhere.pool)
        .await
        .unwrap();
    settled("alice", (404, "no_cards")).await;
    settled("bob", (404, "no_cards")).await;

    // Bob is removed elsewhere: the bucket no longer exists for him, at once
    // for the answer he was served from memory a moment ago.
    let alice = paysync::store::buckets::Member {
        user_id: "alice".into(),
        role: Role::Owner,
    };
    elsewhere
        .put_bucket(&bucket, "renamed", std::slice::from_ref(&alice))
        .await
        .unwrap();
    settled("bob", (404, "bucket_not_found")).await;
    settled("alice", (404, "no_cards")).await;
}

/// A process's own writes are in its next read at once, however long it
/// would take to notice another process's (here: an hour).
async fn own_writes_are_read_at_once(b: Backend) {
    let test_db = TestDb::new(b).await;
    let db = paysync::store::Db::open(&test_db.url)
        .await
        .unwrap()
        .with_cards_cache(1 << 20, std::time::Duration::from_secs(3600));
    let owner = |user: &str| paysync::store::buckets::Member {
        user_id: user.into(),
        role: Role::Owner,
    };
    let bucket = paysync::store::buckets::new_id();
    db.put_bucket(&bucket, "own", &[owner("alice")])
        .await
        .unwrap();
    // Until the cache serves (Postgres: once its listener listens), then an
    // answer ("no card") is kept.
    for _ in 0..100 {
        let answer = db.cards_answer(&bucket, "alice").await.unwrap();
        assert_eq!(answer, Some(None), "a member, no card yet");
        if db.cards_cached_bytes() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(db.cards_cached_bytes() > 0, "the answer is kept");

    db.link_customer(&bucket, "cus_own").await.unwrap();
    let wm = Watermark::api("test");
    let customer = json!({"object": "customer", "id": "cus_own", "created": 1_700_000_000,
        "default_source": "card_own", "metadata": {"bucket_id": bucket}});
    let card = json!({"object": "card", "id": "card_own", "customer": "cus_own", "last4": "4242"});
    for obj in [&customer, &card] {
        paysync::sync::apply::store(&db, obj, &wm, false, true)
            .await
            .unwrap();
    }
    let answer = db.cards_answer(&bucket, "alice").await.unwrap();
    let listed: Value = serde_json::from_slice(&answer.flatten().expect("cards")).unwrap();
    assert_eq!(ids(&listed), ["card_own"]);

    // A webhook delivery: its 200 (the intake's answer) means the next read shows it.
    let event = json!({"id": "evt_own", "object": "event", "type": "customer.source.created",
        "created": 1_700_000_001, "data": {"object":
        {"object": "card", "id": "card_two", "customer": "cus_own", "last4": "1881"}}});
    let body = paysync::sync::compact::minify(&event.to_string());
    let delivery = paysync::sync::ingest::Delivery {
        object: paysync::sync::compact::object_span(&body),
        value: serde_json::from_str(&body).unwrap(),
        body,
    };
    let intake = || paysync::sync::ingest::Intake {
        db: db.clone(),
        sync: Default::default(),
        wake: Default::default(),
    };
    let received = paysync::sync::ingest::InboxWriter::default()
        .insert(intake, delivery)
        .await
        .unwrap();
    assert!(
        matches!(received, paysync::sync::ingest::Received::Applied(_)),
        "{received:?}"
    );
    let answer = db.cards_answer(&bucket, "alice").await.unwrap();
    let listed: Value = serde_json::from_slice(&answer.flatten().expect("cards")).unwrap();
    assert_eq!(ids(&listed), ["card_own", "card_two"]);

    db.put_bucket(&bucket, "own", &[owner("bob")])
        .await
        .unwrap();
    assert_eq!(
        db.cards_answer(&bucket, "alice").await.unwrap(),
        None,
        "alice left"
    );
}

/// Many reads at once, of many buckets, by members and by others: each gets
/// its own bucket's cards, default first, or nothing (on Postgres concurrent
/// reads are answered together, several buckets by one statement).
async fn concurrent_reads_get_their_own_answers(b: Backend) {
    let test_db = TestDb::new(b).await;
    let db = paysync::store::Db::open(&test_db.url).await.unwrap();
    let wm = Watermark::api("test");
    let mut buckets = Vec::new();
    for i in 0..24 {
        let bucket = paysync::store::buckets::new_id();
        let owner = paysync::store::buckets::Member {
            user_id: format!("user{i}"),
            role: Role::Owner,
        };
        db.put_bucket(&bucket, "many", &[owner]).await.unwrap();
        let customer = format!("cus_many{i}");
        db.link_customer(&bucket, &customer).await.unwrap();
        // i % 4 cards, the oldest the default: listed first, then newest first.
        let cards: Vec<String> = (0..i % 4).map(|k| format!("card_many{i}_{k}")).collect();
        let obj = json!({"object": "customer", "id": customer, "created": 1_700_000_000,
            "default_source": cards.first(), "metadata": {"bucket_id": bucket}});
        paysync::sync::apply::store(&db, &obj, &wm, false, true)
            .await
            .unwrap();
        for (k, card) in cards.iter().enumerate() {
            let obj = json!({"object": "card", "id": card, "customer": customer,
                "last4": "4242", "created": 1_700_000_000 + k as i64});
            paysync::sync::apply::store(&db, &obj, &wm, false, true)
                .await
                .unwrap();
        }
        let mut listed = cards.clone();
        if listed.len() > 1 {
            listed[1..].reverse();
        }
        buckets.push((bucket, listed));
    }
    let reads = (0..600).map(|n| {
        let (db, buckets) = (db.clone(), &buckets);
        async move {
            let i = n % buckets.len();
            // Every third read by a user of another bucket.
            let user = format!(
                "user{}",
                if n % 3 == 0 {
                    (i + 1) % buckets.len()
                } else {
                    i
                }
            );
            let got = db.cards_answer(&buckets[i].0, &user).await.unwrap();
            (n, i, got)
        }
    });
    for (n, i, got) in futures::future::join_all(reads).await {
        if n % 3 == 0 {
            assert_eq!(got, None, "read {n}: not a member of bucket {i}");
            continue;
        }
        let listed = match got.expect("a member") {
            Some(bytes) => ids(&serde_json::from_slice(&bytes).unwrap()),
            None => Vec::new(),
        };
        assert_eq!(listed, buckets[i].1, "read {n}: bucket {i}'s cards");
    }
}

both!(
    list_follows_changes_made_elsewhere,
    own_writes_are_read_at_once,
    concurrent_reads_get_their_own_answers
);
