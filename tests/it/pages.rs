//! The pages (`/billing`, `/ops`) as the server serves them, the plan
//! catalog they read, and the sync-health data of `/ops` (`GET /admin/ops`,
//! the replay route). The pages in a browser: scripts/browser-test.

use std::time::Duration;

use paysync::cfg::SyncSettings;
use paysync::store::Kind;
use paysync::sync::{catchup, reconcile};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::common::*;
use crate::webhooks::event;

async fn get_page(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = app
        .anon(Method::GET, path)
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap_or_default())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The script and stylesheet the page names, fetched.
async fn assets_of(app: &TestApp, html: &str) {
    for (prefix, content_type) in [
        ("/assets/paysync.css?v=", "text/css"),
        ("/assets/paysync.js?v=", "text/javascript"),
    ] {
        let at = html.find(prefix).expect("asset named in the page");
        let end = html[at..].find('"').expect("end of the asset URL") + at;
        let (status, headers, body) = get_page(app, &html[at..end]).await;
        assert_eq!(status, 200, "{}", &html[at..end]);
        assert!(header(&headers, "content-type").starts_with(content_type));
        assert!(header(&headers, "cache-control").contains("immutable"));
        assert!(!body.is_empty());
    }
}

async fn pages_load_even_without_the_database(b: Backend) {
    let app = TestApp::start(b).await;
    let (status, headers, html) = get_page(&app, "/billing").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("text/html"));
    assert!(html.contains(r#"data-page="billing""#));
    // Against a stand-in (localstripe here) the page posts card details to it, never to paysync.
    assert!(html.contains(r#"data-cards="stand-in""#), "{html}");
    assert!(html.contains(r#"data-stripe-key="pk_test_paysync""#));
    assert!(
        !html.contains("js.stripe.com"),
        "no Stripe.js with a stand-in"
    );
    let csp = header(&headers, "content-security-policy");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self' http://"), "{csp}");
    assets_of(&app, &html).await;

    let (status, headers, html) = get_page(&app, "/ops").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-page="ops""#));
    assert!(header(&headers, "content-security-policy").contains("connect-src 'self';"));
    assets_of(&app, &html).await;
    assert_eq!(get_page(&app, "/assets/other.js").await.0, 404);

    // The database gone: the pages still load (they hold no data), and the API
    // they call answers a JSON error the page shows. (A SQLite file deleted
    // under open connections stays readable to them: Postgres only.)
    if b == Backend::Sqlite {
        return;
    }
    let user = app.token("alice");
    app.db.destroy().await;
    assert_eq!(get_page(&app, "/billing").await.0, 200);
    assert_eq!(get_page(&app, "/ops").await.0, 200);
    let got = call(app.anon(Method::GET, "/admin/ops").bearer_auth(ADMIN_TOKEN)).await;
    assert!(got.0 >= 500, "{got:?}");
    assert!(got.1["error"]["message"].is_string(), "{got:?}");
    let got = call(app.anon(Method::GET, "/api/bucket").bearer_auth(user)).await;
    assert!(got.0 >= 500, "{got:?}");
    assert!(got.1["error"]["message"].is_string(), "{got:?}");
}

async fn the_plan_catalog(b: Backend) {
    let app = TestApp::start(b).await;
    let (status, plans) = call(app.get("/api/plans", "anyone")).await;
    assert_eq!(status, 200, "{plans}");
    let names: Vec<&str> = plans
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["free", "starter", "business", "enterprise"]);
    assert_eq!(
        plans[1],
        json!({"name": "starter", "amount": 1900, "currency": "usd", "interval": "month",
               "trial_days": 14, "subscribable": true, "free": false})
    );
    assert_eq!(plans[3]["subscribable"], false);
    assert!(plans[1].get("stripe_id").is_none());
    assert_eq!(call(app.anon(Method::GET, "/api/plans")).await.0, 401);
}

async fn admin(app: &TestApp, method: Method, path: &str) -> (u16, Value) {
    call(app.anon(method, path).bearer_auth(ADMIN_TOKEN)).await
}

/// An event whose apply needs Stripe (customers are re-fetched) while Stripe
/// is unreachable is parked as dead after one attempt; /admin/ops shows it on
/// every replica, and the replay route puts it back in line.
async fn sync_health_and_replay(b: Backend) {
    let opts = Options {
        // Nothing listens there: every Stripe call fails at once.
        stripe_base: Some("http://127.0.0.1:9".into()),
        stripe_max_attempts: 1,
        stripe_timeout: Duration::from_secs(2),
        sync: SyncSettings {
            max_attempts: 1,
            refetch: vec![Kind::Customer],
            ..Options::default().sync
        },
        ..Options::default()
    };
    let app = TestApp::start_with(b, opts.clone()).await;
    let bucket = app.bucket("alice").await;
    app.ctx.db.link_customer(&bucket, "cus_ops").await.unwrap();
    let customer = json!({"id": "cus_ops", "object": "customer", "created": 1, "metadata": {"bucket_id": bucket}});
    let created = paysync::store::now();
    let (status, _) = app
        .deliver(&event(
            "evt_ops_dead",
            "customer.updated",
            created,
            customer,
        ))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .deliver(&event(
            "evt_ops_other",
            "product.created",
            created,
            json!({"id": "prod_1", "object": "product"}),
        ))
        .await;
    assert_eq!(status, 200);
    let drained = app.ctx.applier().drain().await.unwrap();
    assert_eq!(drained.dead, 1, "{drained:?}");

    let (status, health) = admin(&app, Method::GET, "/admin/ops").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["inbox"]["dead"], 1);
    assert_eq!(health["inbox"]["failed"], 0);
    assert_eq!(health["inbox"]["depth"], 0);
    let problems = health["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{health}");
    assert_eq!(problems[0]["id"], "evt_ops_dead");
    assert_eq!(problems[0]["type"], "customer.updated");
    assert_eq!(problems[0]["state"], "dead");
    assert_eq!(problems[0]["attempts"], 1);
    assert!(
        problems[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("stripe unreachable"),
        "{health}"
    );
    let minutes = health["webhooks_per_minute"].as_array().unwrap();
    assert_eq!(minutes.len(), 10);
    assert_eq!(
        minutes
            .iter()
            .map(|m| m["count"].as_i64().unwrap())
            .sum::<i64>(),
        2
    );
    assert_eq!(
        health["apply_lag"]["applied"], 1,
        "the product event was applied"
    );
    assert_eq!(
        health["stripe"]["api_version"],
        paysync::stripe::version::DEFAULT
    );
    assert!(health["stripe"]["calls"].as_u64().unwrap() >= 1);
    assert!(health["catchup"]["last_run_at"].is_null());

    // Another replica on the same database reports the same shared state.
    let replica = TestApp::start_on(app.db.alias(), opts).await;
    let (_, seen) = admin(&replica, Method::GET, "/admin/ops").await;
    for key in ["inbox", "problems", "webhooks_per_minute"] {
        assert_eq!(seen[key], health[key], "{key} differs between replicas");
    }

    // Replay: back in line (attempts reset), and a second click does nothing.
    let (status, replayed) = admin(&app, Method::POST, "/admin/events/evt_ops_dead/replay").await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(
        replayed,
        json!({"id": "evt_ops_dead", "state": "pending", "requeued": true})
    );
    let (_, health) = admin(&app, Method::GET, "/admin/ops").await;
    assert_eq!(
        (
            health["inbox"]["dead"].as_i64(),
            health["inbox"]["depth"].as_i64()
        ),
        (Some(0), Some(1))
    );
    assert!(health["inbox"]["oldest_unapplied_at"].is_i64());
    let (_, again) = admin(&app, Method::POST, "/admin/events/evt_ops_dead/replay").await;
    assert_eq!(again["requeued"], false);
    let (_, applied) = admin(&app, Method::POST, "/admin/events/evt_ops_other/replay").await;
    assert_eq!(
        (applied["state"].as_str(), applied["requeued"].as_bool()),
        (Some("applied"), Some(false))
    );
    assert_error(
        &admin(&app, Method::POST, "/admin/events/evt_nope/replay").await,
        404,
        "event_not_found",
    );

    // The admin token only.
    assert_eq!(call(app.anon(Method::GET, "/admin/ops")).await.0, 401);
    assert_eq!(call(app.get("/admin/ops", "alice")).await.0, 401);
    assert_eq!(
        call(app.post("/admin/events/evt_ops_dead/replay", "alice"))
            .await
            .0,
        401
    );
}

/// The catch-up and reconcile cursors, as the page shows them.
async fn sync_health_reads_the_job_cursors(b: Backend) {
    let app = TestApp::start(b).await;
    let db = &app.ctx.db;
    let t = paysync::store::now();
    db.set_cursor(catchup::CURSOR, &(t - 90).to_string())
        .await
        .unwrap();
    db.set_cursor(reconcile::CURSOR_LAST_SUCCESS, &(t - 3600).to_string())
        .await
        .unwrap();
    db.set_cursor(
        reconcile::CURSOR_LAST_DRIFT,
        r#"{"card":2,"subscription":1}"#,
    )
    .await
    .unwrap();
    let (status, health) = admin(&app, Method::GET, "/admin/ops").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["catchup"]["cursor"], t - 90);
    let age = health["catchup"]["cursor_age_seconds"].as_i64().unwrap();
    assert!((90..100).contains(&age), "{health}");
    assert!(health["catchup"]["last_run_at"].as_i64().unwrap() >= t);
    assert_eq!(health["reconcile"]["last_success_at"], t - 3600);
    assert_eq!(
        health["reconcile"]["drift"],
        json!({"card": 2, "subscription": 1})
    );
    assert!(health["reconcile"]["in_progress_after"].is_null());
}

both!(
    pages_load_even_without_the_database,
    the_plan_catalog,
    sync_health_and_replay,
    sync_health_reads_the_job_cursors,
);
