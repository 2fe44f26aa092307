//! Test harness: a real paysync HTTP server in-process on a free port, over a
//! fresh database of either backend, talking to the localstripe started by
//! `scripts/test` (its URL in `PAYSYNC_TEST_STRIPE_URL`).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use paysync::app::{ApiContext, app};
use paysync::auth::JwtKeys;
use paysync::cfg::{Settings, StripeSettings, SyncSettings};
use paysync::plans::Catalog;
use paysync::store::Db;
use paysync::store::buckets::{Member, Role, new_id};
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::Value;
use sqlx::Connection;

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const WEBHOOK_SECRET: &str = "whsec_test_paysync_0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Run an `async fn name(Backend)` once per backend: `both!(name);` makes
/// tests `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

/// The Postgres server tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("PAYSYNC_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The localstripe started by `scripts/test`.
pub fn localstripe_url() -> String {
    std::env::var("PAYSYNC_TEST_STRIPE_URL")
        .expect("PAYSYNC_TEST_STRIPE_URL is not set: run the tests with scripts/test (it starts localstripe)")
}

/// A fresh, empty database of the backend; dropped (Postgres) or deleted (SQLite) by `scripts/test`.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pub name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        // `scripts/test` drops `paysync_t_<tag>…` databases of its own run only
        // (PAYSYNC_TEST_DB_TAG), so concurrent runs on one server do not collide.
        let tag = std::env::var("PAYSYNC_TEST_DB_TAG").unwrap_or_default();
        let name = format!("paysync_t_{tag}{}", new_id());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path: PathBuf = dir.path().join("paysync.db");
                TestDb {
                    url: format!("sqlite://{}", path.display()),
                    backend,
                    name,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let admin = pg_admin_url();
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("Postgres at {admin} is not reachable ({e}): scripts/test starts it")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin.clone());
                TestDb {
                    url: format!("{base}/{name}"),
                    backend,
                    name,
                    _dir: None,
                }
            }
        }
    }

    /// The same database, for a second server (the first one keeps owning the files).
    pub fn alias(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend,
            name: self.name.clone(),
            _dir: None,
        }
    }

    /// Make the database disappear under a running server.
    pub async fn destroy(&self) {
        match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
            Backend::Postgres => {
                let mut conn = sqlx::AnyConnection::connect(&pg_admin_url())
                    .await
                    .expect("pg admin");
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE {} WITH (FORCE)",
                    self.name
                )))
                .execute(&mut conn)
                .await
                .expect("drop test database");
            }
        }
    }
}

/// Knobs of a test server.
#[derive(Clone)]
pub struct Options {
    /// Stripe API base (localstripe by default; a wiremock server's URI for failure tests).
    pub stripe_base: Option<String>,
    pub stripe_timeout: Duration,
    pub stripe_max_attempts: u32,
    pub stripe_rps: u32,
    pub admin_token: Option<String>,
    pub max_body: usize,
    /// Webhook signing secrets (default: `WEBHOOK_SECRET`).
    pub webhook_secrets: Vec<String>,
    pub webhook_tolerance: Duration,
    /// Apply worker settings (max attempts, backoff, lease, poll, re-fetched kinds).
    pub sync: SyncSettings,
    /// Run the apply worker, as `paysync serve` does.
    pub worker: bool,
    /// How often a SQLite server looks for other processes' changes. An hour
    /// by default, so a test fails if a write of the server itself is not in
    /// its next read at once.
    pub cards_look_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stripe_base: None,
            stripe_timeout: Duration::from_secs(10),
            stripe_max_attempts: 3,
            stripe_rps: 0,
            admin_token: Some(ADMIN_TOKEN.into()),
            max_body: 64 * 1024,
            webhook_secrets: vec![WEBHOOK_SECRET.into()],
            webhook_tolerance: Duration::from_secs(300),
            sync: SyncSettings {
                poll: Duration::from_millis(500),
                backoff: Duration::from_secs(1),
                ..SyncSettings::default()
            },
            worker: false,
            cards_look_every: Duration::from_secs(3600),
        }
    }
}

/// A running paysync.
pub struct TestApp {
    pub url: String,
    pub ctx: ApiContext,
    pub db: TestDb,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    worker: Option<paysync::sync::worker::Worker>,
}

pub fn settings(bind: std::net::SocketAddr, db: &TestDb, opts: &Options) -> Settings {
    Settings {
        bind,
        database_url: db.url.clone(),
        stripe: StripeSettings {
            secret_key: "sk_test_paysync".into(),
            api_base: opts
                .stripe_base
                .clone()
                .unwrap_or_else(localstripe_url_or_unused),
            timeout: opts.stripe_timeout,
            max_attempts: opts.stripe_max_attempts,
            rps: opts.stripe_rps,
            api_version: paysync::stripe::version::DEFAULT.into(),
        },
        webhook_secrets: opts.webhook_secrets.clone(),
        webhook_tolerance: opts.webhook_tolerance,
        sync: opts.sync.clone(),
        admin_token: opts.admin_token.clone(),
        public_url: format!("http://{bind}"),
        jwt: JwtKeys::hs256(JWT_SECRET).expect("jwt"),
        catalog: Catalog::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/plans.toml"
        )))
        .expect("catalog"),
        publishable_key: Some("pk_test_paysync".into()),
        max_body: opts.max_body,
        cards_cache: 16 * 1024 * 1024,
        cards_look_every: opts.cards_look_every,
        trial_cron: "0 * * * * *".into(),
        catchup_cron: "30 * * * * *".into(),
        reconcile_cron: "0 0 3 * * *".into(),
    }
}

/// Tests that never reach Stripe need no localstripe.
fn localstripe_url_or_unused() -> String {
    std::env::var("PAYSYNC_TEST_STRIPE_URL").unwrap_or_else(|_| "http://127.0.0.1:9".into())
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, opts: Options) -> TestApp {
        let db = TestDb::new(backend).await;
        Self::start_on(db, opts).await
    }

    /// Start a server on an existing test database.
    pub async fn start_on(db: TestDb, opts: Options) -> TestApp {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind");
        let addr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("socket addr");
        let cfg = settings(addr, &db, &opts);
        let store = Db::open(&db.url).await.expect("open database");
        let ctx = ApiContext::new(store, cfg).expect("context");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let endpoint = app(ctx.clone());
        let worker = opts.worker.then(|| ctx.start_worker());
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    endpoint,
                    async {
                        let _ = rx.await;
                    },
                    Some(Duration::from_secs(1)),
                )
                .await;
        });
        TestApp {
            url: format!("http://{addr}"),
            ctx,
            db,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            worker,
        }
    }

    /// Start the apply worker (as `paysync serve` does), if not running yet.
    pub fn start_worker(&mut self) {
        if self.worker.is_none() {
            self.worker = Some(self.ctx.start_worker());
        }
    }

    /// Post a webhook delivery signed with `WEBHOOK_SECRET` now.
    pub async fn deliver(&self, body: &str) -> (u16, Value) {
        let header = paysync::sync::signature::header(
            WEBHOOK_SECRET,
            paysync::store::now(),
            body.as_bytes(),
        );
        self.deliver_with(body, Some(&header)).await
    }

    /// Post a webhook delivery with this `Stripe-Signature` header (or none).
    pub async fn deliver_with(&self, body: &str, signature: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/webhooks/stripe", self.url))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string());
        if let Some(sig) = signature {
            req = req.header("stripe-signature", sig);
        }
        call(req).await
    }

    /// Wait until the inbox has nothing left to apply (panics after `secs`).
    pub async fn settle(&self, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (left, _) = self.ctx.db.inbox_backlog().await.expect("inbox backlog");
            if left == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{left} events still unapplied after {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn token(&self, user: &str) -> String {
        JwtKeys::hs256(JWT_SECRET)
            .expect("jwt")
            .mint(user, Duration::from_secs(3600))
            .expect("mint")
    }

    /// A new bucket owned by `owner`.
    pub async fn bucket(&self, owner: &str) -> String {
        let id = new_id();
        self.ctx
            .db
            .put_bucket(
                &id,
                &format!("bucket of {owner}"),
                &[Member {
                    user_id: owner.into(),
                    role: Role::Owner,
                }],
            )
            .await
            .expect("create bucket");
        id
    }

    pub async fn add_member(&self, bucket: &str, user: &str, role: Role) {
        assert!(
            self.ctx
                .db
                .set_member(bucket, user, role)
                .await
                .expect("add member")
        );
    }

    pub fn get(&self, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(self.token(user))
    }
    pub fn post(&self, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(self.token(user))
    }
    pub fn put(&self, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.http
            .put(format!("{}{path}", self.url))
            .bearer_auth(self.token(user))
    }
    pub fn delete(&self, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.url))
            .bearer_auth(self.token(user))
    }
    /// A request without credentials.
    pub fn anon(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    pub fn shared(self) -> Arc<TestApp> {
        Arc::new(self)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Status and JSON body of a response (Null when the body is not JSON).
pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Send, and return status and JSON body.
pub async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    status_json(req.send().await.expect("request sent")).await
}

/// Assert a JSON error answer with this status and error code.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "status of {:?}", got.1);
    assert_eq!(got.1["error"]["code"], code, "error code in {:?}", got.1);
    assert!(
        got.1["error"]["message"].is_string(),
        "error message in {:?}",
        got.1
    );
}
