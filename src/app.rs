//! The running service: the context handed to every handler, the HTTP app,
//! and `serve` (server + background jobs + graceful shutdown).

use std::sync::Arc;

use poem::listener::TcpListener;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Route, Server, get, handler, post};
use tokio::sync::Notify;

use crate::api;
use crate::cfg::Settings;
use crate::store::Db;
use crate::stripe::Stripe;
use crate::sync::worker::{Applier, Worker};

/// What every handler gets: the cache, the settings, the Stripe gateway, and
/// the bell of the apply worker (rung when an event is stored, so it is
/// applied within milliseconds rather than at the next poll).
#[derive(Clone)]
pub struct ApiContext {
    pub db: Db,
    pub cfg: Arc<Settings>,
    pub stripe: Stripe,
    pub wake: Arc<Notify>,
    /// Webhook deliveries are stored through it, many per commit.
    pub inbox: crate::sync::ingest::InboxWriter,
}

impl ApiContext {
    pub fn new(db: Db, cfg: Settings) -> anyhow::Result<Self> {
        let stripe = Stripe::new(&cfg.stripe)?;
        Ok(ApiContext {
            db: db.with_cards_cache(cfg.cards_cache, cfg.cards_look_every),
            cfg: Arc::new(cfg),
            stripe,
            wake: Arc::new(Notify::new()),
            inbox: Default::default(),
        })
    }

    /// What the apply worker needs.
    pub fn applier(&self) -> Applier {
        Applier {
            db: self.db.clone(),
            stripe: self.stripe.clone(),
            sync: self.cfg.sync.clone(),
        }
    }

    /// What the webhook intake needs (its writer task starts on the first delivery).
    pub fn intake(&self) -> crate::sync::ingest::Intake {
        crate::sync::ingest::Intake {
            db: self.db.clone(),
            sync: self.cfg.sync.clone(),
            wake: self.wake.clone(),
        }
    }

    /// Start the apply worker of this process (woken by `wake`).
    pub fn start_worker(&self) -> Worker {
        Worker::spawn(self.applier(), self.wake.clone())
    }
}

/// The whole HTTP app: API routes, spec, docs, with JSON errors everywhere.
pub fn app(ctx: ApiContext) -> impl Endpoint {
    crate::metrics::handle();
    api::ops::mark_start();
    let service = api::service();
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let max_body = ctx.cfg.max_body;
    Route::new()
        .nest("/", service)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/metrics", metrics_text)
        .at(api::webhook::PATH, post(api::webhook::stripe_webhook))
        .at("/billing", get(crate::pages::billing))
        .at("/ops", get(crate::pages::ops))
        .at("/assets/:name", get(crate::pages::asset))
        .with(api::middleware::BodyLimit(max_body))
        .data(ctx)
        .catch_all_error(api::middleware::json_error)
        .with(api::observe::Observe)
}

/// `GET /metrics`: Prometheus text exposition.
#[handler]
async fn metrics_text(ctx: Data<&ApiContext>) -> poem::Response {
    poem::Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(&ctx.db).await)
}

/// Run the server until SIGINT/SIGTERM.
pub async fn serve(cfg: Settings) -> anyhow::Result<()> {
    let db = Db::open(&cfg.database_url).await?;
    let bind = cfg.bind;
    let ctx = ApiContext::new(db, cfg)?;
    crate::metrics::handle();
    let worker = ctx.start_worker();
    let views_db = ctx.db.clone();
    tokio::spawn(async move {
        match crate::store::views::fill_missing(&views_db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "stored the API views of rows written without one"),
            Err(e) => {
                tracing::warn!(error = %e, "filling in missing API views failed; reads use the rows' data")
            }
        }
    });
    let prune_db = ctx.db.clone();
    tokio::spawn(async move {
        // The SQLite change log of the cards cache keeps its recent rows only.
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Err(e) = crate::store::changes::prune(&prune_db).await {
                tracing::warn!(error = %e, "pruning the bucket change log failed");
            }
        }
    });
    let jobs = crate::sync::jobs::start(ctx.clone()).await?;
    tracing::info!(%bind, public_url = %ctx.cfg.public_url, backend = ?ctx.db.backend, stripe_api_version = %ctx.stripe.api_version(), "paysync listening");
    let result = Server::new(TcpListener::bind(bind))
        .run_with_graceful_shutdown(
            app(ctx.clone()),
            shutdown_signal(),
            Some(std::time::Duration::from_secs(10)),
        )
        .await;
    jobs.stop().await;
    worker.stop().await;
    ctx.db.pool.close().await;
    tracing::info!("paysync stopped");
    Ok(result?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
