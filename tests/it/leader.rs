//! Several replicas on one Postgres: exactly one runs the scheduled sync jobs,
//! and when it dies another takes over. Each replica talks to its own
//! wiremock "Stripe", so the Events API calls each one makes tell who leads.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `paysync serve` process whose catch-up runs every second.
fn replica(db: &TestDb, stripe: &str, log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_paysync"))
        .arg("serve")
        .env("PAYSYNC_BIND", format!("127.0.0.1:{}", free_port()))
        .env("DATABASE_URL", &db.url)
        .env("STRIPE_SECRET_KEY", "sk_test_leader")
        .env("STRIPE_API_BASE", stripe)
        .env("PAYSYNC_JWT_SECRET", JWT_SECRET)
        .env(
            "PAYSYNC_PLANS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/plans.toml"),
        )
        .env("PAYSYNC_CATCHUP_CRON", "* * * * * *")
        .env("PAYSYNC_RECONCILE_CRON", "0 0 3 * * *")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn paysync")
}

async fn stripe_events_api() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "data": [], "has_more": false})),
        )
        .mount(&server)
        .await;
    // Anything else (a full reconcile of zero buckets lists nothing) is an empty list too.
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "data": [], "has_more": false})),
        )
        .mount(&server)
        .await;
    server
}

async fn event_calls(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1/events")
        .count()
}

/// Wait until `f` holds, up to `secs`.
async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_runs_the_scheduled_jobs_and_another_takes_over() {
    let db = TestDb::new(Backend::Postgres).await;
    // Create the schema once, so the two replicas do not race on migrations.
    paysync::store::Db::open(&db.url).await.expect("migrate");
    let logs = tempfile::tempdir().expect("tempdir");
    let (stripe_a, stripe_b) = (stripe_events_api().await, stripe_events_api().await);
    let mut a = Killed(replica(&db, &stripe_a.uri(), &logs.path().join("a.log")));
    let _b = Killed(replica(&db, &stripe_b.uri(), &logs.path().join("b.log")));

    // Someone leads: catch-up calls reach one of the two Stripes.
    assert!(
        eventually(30, || async {
            event_calls(&stripe_a).await + event_calls(&stripe_b).await >= 3
        })
        .await,
        "no replica ran the scheduled catch-up; logs: {:?}",
        std::fs::read_to_string(logs.path().join("a.log"))
    );
    // For several more periods, only that one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (na, nb) = (event_calls(&stripe_a).await, event_calls(&stripe_b).await);
    assert!(
        na == 0 || nb == 0,
        "both replicas ran the catch-up: {na} and {nb} calls"
    );
    assert!(
        na + nb >= 5,
        "the leader stopped running the catch-up: {na} + {nb} calls"
    );

    // Kill the leader (SIGKILL: no clean unlock); the other takes over within a few periods.
    let (leader_stripe, other_stripe) = if na > 0 {
        (&stripe_a, &stripe_b)
    } else {
        (&stripe_b, &stripe_a)
    };
    if na > 0 {
        a.0.kill().expect("kill a");
        a.0.wait().expect("wait a");
    } else {
        drop(_b);
    }
    let before = event_calls(other_stripe).await;
    assert_eq!(
        before, 0,
        "the follower had run the catch-up before the leader died"
    );
    let led_calls = event_calls(leader_stripe).await;
    assert!(
        eventually(30, || async { event_calls(other_stripe).await >= 2 }).await,
        "the surviving replica did not take over the scheduled catch-up"
    );
    // The dead one made no further calls.
    assert_eq!(event_calls(leader_stripe).await, led_calls);
}
