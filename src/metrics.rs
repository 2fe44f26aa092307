//! Prometheus metrics (the `metrics` crate with its Prometheus exporter).
//! Counters and histograms are recorded where things happen (HTTP middleware,
//! Stripe gateway, webhook receiver, apply worker, reconciler); gauges that
//! describe the database (inbox depth, oldest unapplied event, cursor age) are
//! read when `/metrics` is scraped, so every replica reports the shared truth.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::{Db, now};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder (once) and return its handle.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => {
                start_upkeep(h.clone());
                Some(h)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// Histograms keep every sample until upkeep folds them into their summary:
/// without it, memory grows by 8 bytes a request between two scrapes (a
/// third of the server's memory after a few million requests, or forever
/// when nothing scrapes). Runs on the runtime that first asked for the
/// handle; a command with no runtime lives too short to need it.
fn start_upkeep(handle: PrometheusHandle) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// The text exposition, with the database gauges refreshed first.
pub async fn render(db: &Db) -> String {
    if let Err(e) = refresh_db_gauges(db).await {
        tracing::warn!(error = %e, "could not read database gauges");
    }
    handle().map(|h| h.render()).unwrap_or_default()
}

async fn refresh_db_gauges(db: &Db) -> sqlx::Result<()> {
    let t = now();
    let (depth, oldest) = db.inbox_backlog().await?;
    metrics::gauge!("paysync_inbox_depth").set(depth as f64);
    metrics::gauge!("paysync_cards_cache_bytes").set(db.cards_cached_bytes() as f64);
    metrics::gauge!("paysync_inbox_oldest_unapplied_seconds")
        .set(oldest.map(|o| (t - o).max(0)).unwrap_or(0) as f64);
    for state in ["failed", "dead"] {
        metrics::gauge!("paysync_inbox_events", "state" => state)
            .set(db.count_events(state).await? as f64);
    }
    if let Some((cursor, _)) = db.cursor(crate::sync::catchup::CURSOR).await?
        && let Ok(c) = cursor.parse::<i64>()
    {
        metrics::gauge!("paysync_catchup_cursor_age_seconds").set((t - c).max(0) as f64);
    }
    if let Some((last, _)) = db
        .cursor(crate::sync::reconcile::CURSOR_LAST_SUCCESS)
        .await?
        && let Ok(l) = last.parse::<i64>()
    {
        metrics::gauge!("paysync_reconcile_last_success_seconds").set(l as f64);
    }
    Ok(())
}
