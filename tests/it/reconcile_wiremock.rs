//! Reconciler behaviour only a scripted Stripe can show: rate limits, the
//! request budget, and resuming an interrupted full run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paysync::cfg::StripeSettings;
use paysync::store::buckets::{Member, Role};
use paysync::stripe::Stripe;
use paysync::sync::reconcile;
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::both;
use crate::common::*;

fn stripe(uri: &str, rps: u32, attempts: u32) -> Stripe {
    Stripe::new(&StripeSettings {
        secret_key: "sk_test_x".into(),
        api_base: uri.into(),
        timeout: Duration::from_secs(5),
        max_attempts: attempts,
        rps,
        api_version: paysync::stripe::version::DEFAULT.into(),
    })
    .unwrap()
}

fn empty_list() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"object": "list", "data": [], "has_more": false}))
}

/// Answers `GET /v1/customers/:id` with that customer, and records when each request came.
#[derive(Clone, Default)]
struct Customers {
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Respond for Customers {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let id = req
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        self.seen.lock().unwrap().push((Instant::now(), id.clone()));
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "customer", "id": id, "created": 1_700_000_000, "metadata": {},
            "sources": {"object": "list", "data": [], "has_more": false}
        }))
    }
}

async fn mount_lists(server: &MockServer) {
    for p in [
        "/v1/payment_methods",
        "/v1/subscriptions",
        "/v1/invoices",
        "/v1/charges",
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(empty_list())
            .mount(server)
            .await;
    }
}

/// Buckets linked to customers `cus_test_0..n` (ids sort in the order made).
async fn buckets(app: &TestApp, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("{:024x}", 0xb0c4e7_u64 * 1000 + i as u64);
        app.ctx
            .db
            .put_bucket(
                &id,
                "b",
                &[Member {
                    user_id: "u".into(),
                    role: Role::Owner,
                }],
            )
            .await
            .unwrap();
        let customer = format!("cus_test_{i}");
        app.ctx.db.link_customer(&id, &customer).await.unwrap();
        out.push((id, customer));
    }
    out
}

async fn honours_retry_after(b: Backend) {
    let app = TestApp::start(b).await;
    let server = MockServer::start().await;
    let (_, customer) = buckets(&app, 1).await.remove(0);
    // First answer: 429 with Retry-After: 2; then the customer.
    Mock::given(method("GET"))
        .and(path(format!("/v1/customers/{customer}")))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(
                    json!({"error": {"type": "rate_limit_error", "message": "slow down"}}),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let customers = Customers::default();
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/customers/[^/]+$"))
        .respond_with(customers.clone())
        .mount(&server)
        .await;
    mount_lists(&server).await;

    let started = Instant::now();
    let drift = reconcile::bucket(
        &app.ctx.db,
        &stripe(&server.uri(), 0, 3),
        &app.ctx.db.buckets_with_customer().await.unwrap()[0].0,
    )
    .await
    .expect("reconcile succeeds after the 429");
    let retried_at = customers.seen.lock().unwrap()[0].0;
    assert!(
        retried_at.duration_since(started) >= Duration::from_secs(2),
        "the retry came before Retry-After elapsed"
    );
    assert_eq!(drift.get(paysync::store::Kind::Customer), 1);
}

async fn budget_caps_the_request_rate(b: Backend) {
    let app = TestApp::start(b).await;
    let server = MockServer::start().await;
    buckets(&app, 6).await;
    let customers = Customers::default();
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/customers/[^/]+$"))
        .respond_with(customers.clone())
        .mount(&server)
        .await;
    // Count every request, lists included, with its time.
    let all = Customers::default();
    for p in [
        "/v1/payment_methods",
        "/v1/subscriptions",
        "/v1/invoices",
        "/v1/charges",
    ] {
        let all = all.clone();
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(move |req: &Request| {
                all.seen
                    .lock()
                    .unwrap()
                    .push((Instant::now(), req.url.path().to_string()));
                empty_list()
            })
            .mount(&server)
            .await;
    }
    let rps = 5;
    reconcile::full(&app.ctx.db, &stripe(&server.uri(), rps, 1), &|_, _, _| {})
        .await
        .unwrap();
    let mut times: Vec<Instant> = customers
        .seen
        .lock()
        .unwrap()
        .iter()
        .chain(all.seen.lock().unwrap().iter())
        .map(|(t, _)| *t)
        .collect();
    times.sort();
    assert_eq!(times.len(), 30, "6 buckets x (customer + 4 lists)");
    // After the initial burst (at most `rps`), no one-second window holds more than `rps` requests.
    let steady = &times[rps as usize..];
    for (i, t) in steady.iter().enumerate() {
        let in_window = steady[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_millis(950))
            .count();
        assert!(
            in_window <= rps as usize + 1,
            "{in_window} requests within one second at a budget of {rps}/s"
        );
    }
}

async fn interrupted_full_run_resumes(b: Backend) {
    let app = TestApp::start(b).await;
    let server = MockServer::start().await;
    let linked = buckets(&app, 3).await;
    // The second bucket's customer fails once: the run stops after the first bucket.
    Mock::given(method("GET"))
        .and(path(format!("/v1/customers/{}", linked[1].1)))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"type": "api_error", "message": "boom"}})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let customers = Customers::default();
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/customers/[^/]+$"))
        .respond_with(customers.clone())
        .mount(&server)
        .await;
    mount_lists(&server).await;
    let s = stripe(&server.uri(), 0, 1);

    assert!(
        reconcile::full(&app.ctx.db, &s, &|_, _, _| {})
            .await
            .is_err(),
        "the 500 interrupts the run"
    );
    let first: Vec<String> = customers
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(first, vec![linked[0].1.clone()]);

    let report = reconcile::full(&app.ctx.db, &s, &|_, _, _| {})
        .await
        .expect("second run finishes");
    assert_eq!(report.resumed_after.as_deref(), Some(linked[0].0.as_str()));
    assert_eq!(report.buckets, 2);
    let all: Vec<String> = customers
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(
        all,
        vec![
            linked[0].1.clone(),
            linked[1].1.clone(),
            linked[2].1.clone()
        ],
        "bucket 1 is not fetched again"
    );

    // A finished run starts from the beginning next time.
    let again = reconcile::full(&app.ctx.db, &s, &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (again.resumed_after, again.buckets, again.drift.total()),
        (None, 3, 0)
    );
}

both!(
    honours_retry_after,
    budget_caps_the_request_rate,
    interrupted_full_run_resumes
);
