//! Reconciler against localstripe with no webhook registered: changes made in
//! Stripe behind paysync's back reach the cache through `paysync reconcile`.

use paysync::store::Kind;
use paysync::store::objects::Page;
use reqwest::Method;

use crate::both;
use crate::common::*;
use crate::stripe_direct::*;

/// Run the real CLI; returns (success, stdout).
fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paysync"))
        .args(args)
        .env("DATABASE_URL", &app.db.url)
        .env("STRIPE_SECRET_KEY", "sk_test_paysync")
        .env("STRIPE_API_BASE", localstripe_url())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run paysync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `drift: customer=1 source=2 … (total 3)` → the count of one kind.
fn drift_of(summary: &str, kind: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{kind}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {kind} in {summary:?}"))
}

async fn full_reconcile_converges(b: Backend) {
    // `paysync reconcile` runs as a process of its own: the server sees its
    // writes when it next looks (SQLite) or is notified (Postgres).
    let opts = Options {
        cards_look_every: paysync::store::changes::LOOK_EVERY,
        ..Options::default()
    };
    let app = TestApp::start_with(b, opts).await;
    let bucket = app.bucket("alice").await;
    let customer = customer_for(&bucket).await;
    app.ctx.db.link_customer(&bucket, &customer).await.unwrap();
    ensure_plan("paysync_starter_monthly", "1900").await;

    // Behind paysync's back: a card, metadata, a paid subscription.
    let token = card_token("4242424242424242").await;
    let card = id(&stripe(
        Method::POST,
        &format!("/customers/{customer}/sources"),
        &[("source", &token)],
    )
    .await);
    stripe(
        Method::POST,
        &format!("/customers/{customer}"),
        &[("metadata[vat_number]", "FR40303265045")],
    )
    .await;
    let sub = id(&stripe(
        Method::POST,
        "/subscriptions",
        &[
            ("customer", &customer),
            ("items[0][plan]", "paysync_starter_monthly"),
        ],
    )
    .await);

    let (ok, summary) = cli(&app, &["reconcile", "--full"]);
    assert!(ok, "{summary}");
    assert_eq!(drift_of(&summary, "customer"), 1, "{summary}");
    assert_eq!(drift_of(&summary, "source"), 1, "{summary}");
    assert_eq!(drift_of(&summary, "subscription"), 1, "{summary}");
    assert!(
        drift_of(&summary, "invoice") >= 1 && drift_of(&summary, "charge") >= 1,
        "{summary}"
    );
    // The drift per kind is kept for every replica's /ops page.
    let (status, health) = call(
        app.anon(reqwest::Method::GET, "/admin/ops")
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["reconcile"]["drift"]["subscription"], 1, "{health}");
    assert!(health["reconcile"]["last_success_at"].is_i64(), "{health}");

    let db = &app.ctx.db;
    let cards = db
        .bucket_objects(Kind::Source, &bucket, &Page::default())
        .await
        .unwrap();
    assert_eq!(
        cards.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![card.as_str()]
    );
    let cust = db.object(Kind::Customer, &customer).await.unwrap().unwrap();
    assert_eq!(cust.data["metadata"]["vat_number"], "FR40303265045");
    let (_, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(view["plan"], "starter", "{view}");
    assert_eq!(view["subscription"]["id"], sub.as_str());
    // The read routes show it all.
    let read = |path: &str| call(app.get(&format!("/api/bucket/{bucket}/payment{path}"), "alice"));
    let (status, cards) = read("/cards").await;
    assert_eq!(
        (status, cards["data"][0]["id"].as_str()),
        (200, Some(card.as_str())),
        "{cards}"
    );
    let (_, metadata) = read("").await;
    assert_eq!(metadata["vat_number"], "FR40303265045", "{metadata}");
    let (_, state) = read("/subscription/state").await;
    assert_eq!(
        (state["status"].as_str(), state["plan"].as_str()),
        (Some("active"), Some("starter")),
        "{state}"
    );
    let (status, invoices) = read("/invoices").await;
    assert_eq!(status, 200);
    assert_eq!(invoices[0]["subscription"], sub.as_str(), "{invoices}");

    // Nothing changed since: zero drift.
    let (ok, summary) = cli(&app, &["reconcile", "--full"]);
    assert!(ok);
    assert!(summary.contains("(total 0)"), "second run: {summary}");

    // Canceled in Stripe and the card deleted: the bucket is back on free, the card tombstoned.
    stripe(Method::DELETE, &format!("/subscriptions/{sub}"), &[]).await;
    stripe(
        Method::DELETE,
        &format!("/customers/{customer}/sources/{card}"),
        &[],
    )
    .await;
    let (ok, summary) = cli(&app, &["reconcile", "--full", "--bucket", &bucket]);
    assert!(ok, "{summary}");
    assert_eq!(drift_of(&summary, "subscription"), 1, "{summary}");
    assert_eq!(drift_of(&summary, "source"), 1, "{summary}");
    let (_, view) = call(app.get(&format!("/api/bucket/{bucket}"), "alice")).await;
    assert_eq!(view["plan"], "free", "{view}");
    assert_eq!(view["subscription"]["status"], "canceled", "{view}");
    let (_, state) = call(app.get(
        &format!("/api/bucket/{bucket}/payment/subscription/state"),
        "alice",
    ))
    .await;
    assert_eq!(state["status"], "canceled", "{state}");
    // The card list was read (and kept in memory) before the command ran.
    let mut status = 0;
    for _ in 0..100 {
        status = call(app.get(&format!("/api/bucket/{bucket}/payment/cards"), "alice"))
            .await
            .0;
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 404, "no card left");
    assert!(
        db.bucket_objects(Kind::Source, &bucket, &Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.object(Kind::Source, &card)
            .await
            .unwrap()
            .unwrap()
            .deleted,
        "the card is a tombstone"
    );
}

both!(full_reconcile_converges);
