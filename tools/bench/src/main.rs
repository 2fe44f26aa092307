//! paysync-bench: the benchmark suite behind `scripts/bench` (see
//! `bench/README.md`). `suite` runs every measure on one backend against a
//! release build of paysync and prints one JSON object per measure.

mod backfill;
mod load;
mod seed;
mod server;
mod signup;
mod standin;
mod webhooks;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::Empty;
use paysync::auth::JwtKeys;
use paysync::store::Db;
use rand::Rng;
use serde_json::{Value, json};

use crate::seed::{bucket_id, user_id};
use crate::server::{JWT_SECRET, Paysync, Start, WEBHOOK_SECRET};

#[derive(Parser)]
#[command(
    name = "paysync-bench",
    about = "paysync benchmarks (run through scripts/bench)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum BackendArg {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every measure on one backend; one JSON object per measure on stdout (and appended to --out).
    Suite {
        #[arg(long, value_enum)]
        backend: BackendArg,
        /// The paysync binary (a release build).
        #[arg(long)]
        bin: PathBuf,
        /// The repository root (for fixtures/plans.toml).
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Where databases and logs go.
        #[arg(long, default_value = "/tmp/paysync-bench")]
        work: PathBuf,
        /// Postgres server URL to create the bench databases with.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        pg: String,
        /// Smaller sizes and shorter runs (a smoke run of about half a minute per backend).
        #[arg(long)]
        quick: bool,
        /// Only these measures (comma-separated: reads,webhooks,backfill); default all.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        /// RUST_LOG of the server under test.
        #[arg(long, default_value = "info")]
        rust_log: String,
        /// The sizes of the webhook measure, in new customers signing up (10
        /// events each), comma-separated; the first is also the size of the
        /// compact stream. Default 2000,20000 (--quick: 200,2000).
        #[arg(long, value_delimiter = ',')]
        webhook_customers: Vec<usize>,
        /// The Stripe object fixtures the sign-up stream is made of (default:
        /// the newest API version under fixtures/stripe/).
        #[arg(long)]
        shapes: Option<PathBuf>,
    },
    /// Serve the Stripe stand-in until interrupted (for looking at it by hand).
    Standin {
        #[arg(long, default_value_t = 100)]
        customers: usize,
    },
}

#[derive(Clone)]
struct Sizes {
    buckets: usize,
    cards: usize,
    warmup: Duration,
    duration: Duration,
    webhook_customers: Vec<usize>,
    watch_every: usize,
    backfill_customers: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                buckets: 1_000,
                cards: 3,
                warmup: Duration::from_millis(300),
                duration: Duration::from_secs(2),
                webhook_customers: vec![200, 2_000],
                watch_every: 5,
                backfill_customers: 500,
            }
        } else {
            Sizes {
                buckets: 10_000,
                cards: 3,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(10),
                webhook_customers: vec![2_000, 20_000],
                watch_every: 20,
                backfill_customers: 10_000,
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Standin { customers } => {
            let url = standin::start(customers).await?;
            eprintln!("stand-in Stripe at {url}");
            std::future::pending::<()>().await;
            Ok(())
        }
        Cmd::Suite {
            backend,
            bin,
            root,
            work,
            pg,
            quick,
            only,
            out,
            rust_log,
            webhook_customers,
            shapes,
        } => {
            std::fs::create_dir_all(&work)?;
            let mut sizes = Sizes::new(quick);
            if !webhook_customers.is_empty() {
                sizes.webhook_customers = webhook_customers;
            }
            let root = std::fs::canonicalize(&root)?;
            let shapes = match shapes {
                Some(dir) => dir,
                None => newest_shapes(&root)?,
            };
            let ctx = Suite {
                backend,
                bin: std::fs::canonicalize(&bin).with_context(|| format!("{}", bin.display()))?,
                root,
                shapes,
                work,
                pg,
                quick,
                sizes,
                out,
                rust_log,
            };
            let want = |m: &str| only.is_empty() || only.iter().any(|o| o == m);
            if want("reads") || want("webhooks") {
                ctx.server_measures(want("reads"), want("webhooks")).await?;
            }
            if want("backfill") {
                ctx.backfill().await?;
            }
            Ok(())
        }
    }
}

struct Suite {
    backend: BackendArg,
    bin: PathBuf,
    root: PathBuf,
    /// The fixtures of the sign-up stream's Stripe objects.
    shapes: PathBuf,
    work: PathBuf,
    pg: String,
    quick: bool,
    sizes: Sizes,
    out: Option<PathBuf>,
    rust_log: String,
}

/// The fixtures of the newest API version: the last directory, by name, under `fixtures/stripe/`.
pub(crate) fn newest_shapes(root: &std::path::Path) -> anyhow::Result<PathBuf> {
    let dir = root.join("fixtures/stripe");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    versions.sort();
    versions
        .pop()
        .with_context(|| format!("no API version directory under {}", dir.display()))
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default()
}

impl Suite {
    fn backend_name(&self) -> &'static str {
        match self.backend {
            BackendArg::Sqlite => "sqlite",
            BackendArg::Postgres => "postgres",
        }
    }

    /// Print one measure and append it to the results file.
    fn emit(&self, measure: &str, params: Value, results: Value) -> anyhow::Result<()> {
        let obj = json!({
            "measure": measure,
            "backend": self.backend_name(),
            "cores": cores(),
            "cpu": cpu_model(),
            "quick": self.quick,
            "params": params,
            "results": results,
        });
        let line = obj.to_string();
        println!("{line}");
        if let Some(out) = &self.out {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out)?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }

    /// A new, empty database; returns its URL.
    async fn fresh_db(&self, name: &str) -> anyhow::Result<String> {
        match self.backend {
            BackendArg::Sqlite => {
                let path = self.work.join(format!("{name}.db"));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Ok(format!("sqlite://{}", path.display()))
            }
            BackendArg::Postgres => {
                use sqlx::Connection;
                sqlx::any::install_default_drivers();
                let db = format!("paysync_bench_{name}");
                let mut admin = sqlx::AnyConnection::connect(&self.pg).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                let mut url = url_of(&self.pg)?;
                url.set_path(&db);
                Ok(url.to_string())
            }
        }
    }

    /// Cold start, idle memory, reads, webhooks and peak memory on one server.
    async fn server_measures(&self, reads: bool, hooks: bool) -> anyhow::Result<()> {
        let s = &self.sizes;
        let compact_customers = s.webhook_customers.first().copied().unwrap_or(0);
        let standin = standin::start(s.buckets.max(compact_customers)).await?;
        let url = self.fresh_db("serve").await?;
        let mut app = Paysync::start(Start {
            bin: &self.bin,
            root: &self.root,
            database_url: &url,
            stripe_base: &standin,
            log: self
                .work
                .join(format!("paysync-{}.log", self.backend_name())),
            rust_log: &self.rust_log,
        })
        .await?;
        self.emit(
            "cold_start",
            json!({"database": "new (migrations run on start)"}),
            json!({"ready_ms": ms(app.ready_in)}),
        )?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (idle_rss, _) = app.memory();

        let db = Db::connect(&url).await?;
        let seeded = Instant::now();
        seed::seed(&db, s.buckets, s.cards).await?;
        let seed_secs = seeded.elapsed().as_secs_f64();
        let keys = JwtKeys::hs256(JWT_SECRET)?;
        let tokens: Arc<Vec<String>> = Arc::new(
            (0..s.buckets)
                .map(|i| keys.mint(&user_id(i), Duration::from_secs(7200)))
                .collect::<anyhow::Result<_>>()?,
        );
        // The cards read route once it exists; until then the bucket read route.
        let cards = "/api/bucket/{id}/payment/cards";
        let (st, _) = load::get(
            app.addr,
            &cards.replace("{id}", &bucket_id(0)),
            Some(&tokens[0]),
        )
        .await?;
        let (route, read_path) = if st == 200 {
            ("fetchCreditCards", cards)
        } else {
            eprintln!(
                "paysync-bench: {cards} answered {st}; measuring GET /api/bucket/{{id}} instead"
            );
            ("getBucket (cards route missing)", "/api/bucket/{id}")
        };

        let mut peak_reads = None;
        if reads {
            for conns in [64, 256] {
                let health = load::run(
                    app.addr,
                    Arc::new(Fixed("/healthz".into())),
                    conns,
                    s.warmup,
                    s.duration,
                    app.pid(),
                )
                .await?;
                let target = Arc::new(Random {
                    template: read_path.to_string(),
                    tokens: tokens.clone(),
                });
                let before = cache_counts(app.addr).await;
                let read =
                    load::run(app.addr, target, conns, s.warmup, s.duration, app.pid()).await?;
                let after = cache_counts(app.addr).await;
                let ratio = read.ok as f64 / health.ok.max(1) as f64;
                let cache = match (before, after) {
                    (Some(b), Some(a)) => {
                        let (hits, misses) = (a.hits - b.hits, a.misses - b.misses);
                        json!({"hits": hits, "misses": misses, "bytes_at_end": a.bytes,
                               "hit_ratio": ((hits / (hits + misses).max(1.0)) * 1000.0).round() / 1000.0})
                    }
                    _ => Value::Null,
                };
                self.emit(
                    "reads",
                    json!({"route": route, "path": read_path, "connections": conns,
                           "buckets": s.buckets, "cards_per_bucket": s.cards,
                           "seconds": s.duration.as_secs_f64(), "http": "1.1 keep-alive",
                           "server_rust_log": self.rust_log, "seed_seconds": seed_secs}),
                    json!({"read": read.json(), "healthz": health.json(), "cards_cache": cache,
                           "ratio_read_over_healthz": (ratio * 1000.0).round() / 1000.0}),
                )?;
            }
            peak_reads = Some(app.memory().1);
        }

        if hooks {
            self.webhooks(&app, &db, &keys, read_path == cards).await?;
        }
        let (rss, hwm) = app.memory();
        self.emit(
            "memory",
            json!({"pid_sampled": "paysync serve, /proc/PID/status", "measures_before": {"reads": reads, "webhooks": hooks}}),
            json!({"idle_rss_mib": idle_rss, "peak_rss_after_reads_mib": peak_reads,
                   "peak_rss_mib": hwm, "rss_at_end_mib": rss}),
        )?;
        app.stop();
        db.pool.close().await;
        Ok(())
    }

    /// The webhook measures on a running server: the compact stream of
    /// existing customers (`webhooks_compact`), then Stripe's sign-ups of new
    /// customers at each size (`webhooks`), each size linking buckets of its own.
    async fn webhooks(
        &self,
        app: &Paysync,
        db: &Db,
        keys: &JwtKeys,
        cards_route: bool,
    ) -> anyhow::Result<()> {
        let s = &self.sizes;
        let probe = Bytes::from_static(b"{}");
        let mut sender = load::connect::<http_body_util::Full<Bytes>>(app.addr).await?;
        let (st, _) = load::post(
            &mut sender,
            "/webhooks/stripe",
            &[("stripe-signature", "t=1,v1=00")],
            probe,
        )
        .await?;
        if st == 404 || st == 405 {
            return self.emit(
                "webhooks",
                json!({"customers": s.webhook_customers}),
                json!({"skipped": format!("POST /webhooks/stripe answered {st}: no webhook receiver in this build")}),
            );
        }
        let keys = keys.clone();
        let params = || webhooks::Params {
            addr: app.addr,
            secret: WEBHOOK_SECRET,
            concurrency: 64,
            server: app.pid(),
            cards_path: cards_route.then(|| "/api/bucket/{id}/payment/cards".to_string()),
            token: {
                let keys = keys.clone();
                Arc::new(move |i: usize| {
                    keys.mint(&user_id(i), Duration::from_secs(7200))
                        .unwrap_or_default()
                })
            },
        };
        let visible_via = if cards_route {
            "GET /api/bucket/{id}/payment/cards"
        } else {
            "cache table (cards route missing)"
        };

        let n = s.webhook_customers.first().copied().unwrap_or(0);
        let run = webhooks::run_id();
        let events = webhooks::compact(&run, n, s.watch_every);
        let total = events.len();
        let stream = webhooks::Stream {
            events: Box::new(events.into_iter()),
            total,
            run,
        };
        let results = webhooks::run(db, params(), stream).await?;
        self.emit(
            "webhooks_compact",
            json!({"stream": "compact: 2024-06-20 shapes, ~0.5 KB, customers that have a bucket, shuffled",
                   "customers": n, "events_per_customer": webhooks::PER_CUSTOMER,
                   "concurrency": 64, "watched_every_n_customers": s.watch_every, "visible_via": visible_via}),
            results,
        )?;

        let shapes = signup::Shapes::load(&self.shapes)?;
        // Buckets without a customer, past the reads measure's: each sign-up links one.
        let mut first_bucket = s.buckets;
        for &n in &s.webhook_customers {
            let seeded = Instant::now();
            seed::seed_unlinked(db, first_bucket, n).await?;
            let seed_seconds = seeded.elapsed().as_secs_f64();
            let run = webhooks::run_id();
            // Sign-ups of the last few days (the address updates come 3 days after).
            let base = paysync::store::now() - 5 * 86_400;
            let stream = webhooks::Stream {
                events: Box::new(signup::SignUps::new(&shapes)?.stream(
                    run.clone(),
                    n,
                    first_bucket,
                    base,
                    s.watch_every,
                )),
                total: n * signup::PER_CUSTOMER,
                run,
            };
            let results = webhooks::run(db, params(), stream).await?;
            self.emit(
                "webhooks",
                json!({"stream": "Stripe sign-ups: new customers linked to buckets by metadata, full objects, pretty-printed, in Stripe's order",
                       "shapes": self.shapes.strip_prefix(&self.root).unwrap_or(&self.shapes),
                       "customers": n, "events_per_customer": signup::PER_CUSTOMER,
                       "concurrency": 64, "watched_every_n_customers": s.watch_every,
                       "visible_via": visible_via, "seed_seconds": seed_seconds}),
                results,
            )?;
            first_bucket += n;
        }
        Ok(())
    }

    async fn backfill(&self) -> anyhow::Result<()> {
        let n = self.sizes.backfill_customers;
        let standin = standin::start(n).await?;
        let url = self.fresh_db("backfill").await?;
        let db = Db::open(&url).await?;
        seed::seed(&db, n, 0).await?;
        db.pool.close().await;
        let (first, drift) = backfill::reconcile(&self.bin, &self.root, &url, &standin)?;
        let (second, drift2) = backfill::reconcile(&self.bin, &self.root, &url, &standin)?;
        let (paging, requests) = backfill::page(&standin, n).await?;
        let per_customer =
            1 + standin::CARDS + standin::SUBSCRIPTIONS + standin::INVOICES + standin::CHARGES;
        self.emit(
            "backfill",
            json!({"customers": n, "objects_per_customer": per_customer,
                   "requests": requests, "stripe_rps": "0 (budget off)", "standin": "paysync-bench in-process stand-in"}),
            json!({"reconcile_full_seconds": first.as_secs_f64(), "drift_first": drift,
                   "bare_paging_seconds": paging.as_secs_f64(),
                   "ratio_reconcile_over_paging": ((first.as_secs_f64() / paging.as_secs_f64()) * 1000.0).round() / 1000.0,
                   "second_run_seconds": second.as_secs_f64(), "drift_second": drift2}),
        )?;
        Ok(())
    }
}

fn url_of(s: &str) -> anyhow::Result<reqwest::Url> {
    Ok(reqwest::Url::parse(s)?)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The cards cache counters of the server's `/metrics` (warm-up included).
struct CacheCounts {
    hits: f64,
    misses: f64,
    bytes: f64,
}

async fn cache_counts(addr: std::net::SocketAddr) -> Option<CacheCounts> {
    let (status, body) = load::get(addr, "/metrics", None).await.ok()?;
    if status != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Some(CacheCounts {
        hits: value("paysync_cards_cache_hits_total").unwrap_or(0.0),
        misses: value("paysync_cards_cache_misses_total").unwrap_or(0.0),
        bytes: value("paysync_cards_cache_bytes").unwrap_or(0.0),
    })
}

/// The same path every time (`/healthz`).
struct Fixed(String);

impl load::Target for Fixed {
    fn request(&self, _: &mut rand::rngs::SmallRng) -> hyper::Request<Empty<Bytes>> {
        hyper::Request::get(self.0.as_str())
            .header("host", "127.0.0.1")
            .body(Empty::new())
            .expect("request")
    }
}

/// A random bucket's path, with its owner's token.
struct Random {
    template: String,
    tokens: Arc<Vec<String>>,
}

impl load::Target for Random {
    fn request(&self, rng: &mut rand::rngs::SmallRng) -> hyper::Request<Empty<Bytes>> {
        let i = rng.random_range(0..self.tokens.len());
        hyper::Request::get(self.template.replace("{id}", &bucket_id(i)))
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {}", self.tokens[i]))
            .body(Empty::new())
            .expect("request")
    }
}
