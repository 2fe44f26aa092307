//! Scheduled jobs of a running server (tokio-cron-scheduler): ending expired
//! trials, the Events-API catch-up and the full reconcile. The sync jobs run
//! on one replica at a time (`leader`).

use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::ApiContext;
use crate::sync::leader::Leader;
use crate::sync::{catchup, reconcile};

/// The running schedulers; `stop` on shutdown.
pub struct Jobs {
    scheduler: JobScheduler,
    leader: Arc<Leader>,
}

impl Jobs {
    pub async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "scheduler shutdown");
        }
        self.leader.release().await;
    }
}

/// Add a job running `f(ctx)` on a cron schedule.
async fn every<F, Fut>(
    scheduler: &JobScheduler,
    cron: &str,
    ctx: &ApiContext,
    f: F,
) -> anyhow::Result<()>
where
    F: Fn(ApiContext) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let ctx = ctx.clone();
    scheduler
        .add(Job::new_async(cron, move |_, _| {
            let (ctx, f) = (ctx.clone(), f.clone());
            Box::pin(async move { f(ctx).await })
        })?)
        .await?;
    Ok(())
}

pub async fn start(ctx: ApiContext) -> anyhow::Result<Jobs> {
    let scheduler = JobScheduler::new().await?;
    let leader = Arc::new(Leader::new(ctx.db.clone()));

    every(&scheduler, &ctx.cfg.trial_cron, &ctx, |ctx| async move {
        if let Err(e) = end_expired_trials(&ctx).await {
            tracing::warn!(error = %e, "ending expired trials failed");
        }
    })
    .await?;

    let lead = leader.clone();
    every(&scheduler, &ctx.cfg.catchup_cron, &ctx, move |ctx| {
        let lead = lead.clone();
        async move {
            if lead.acquire().await {
                run_catchup(&ctx).await;
            }
        }
    })
    .await?;

    let lead = leader.clone();
    every(&scheduler, &ctx.cfg.reconcile_cron, &ctx, move |ctx| {
        let lead = lead.clone();
        async move {
            if lead.acquire().await {
                run_full(&ctx).await;
            }
        }
    })
    .await?;

    scheduler.start().await?;
    Ok(Jobs { scheduler, leader })
}

/// Catch up from the Events API; a cursor older than Stripe's window triggers a full reconcile.
pub async fn run_catchup(ctx: &ApiContext) {
    match catchup::run(&ctx.db, &ctx.stripe).await {
        Ok(done) => {
            tracing::info!(listed = done.listed, stored = done.stored, "catch-up done");
            if done.stored > 0 {
                ctx.wake.notify_one();
            }
            if done.needs_full {
                run_full(ctx).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "catch-up failed; it runs again at the next schedule"),
    }
}

pub async fn run_full(ctx: &ApiContext) {
    match reconcile::full(&ctx.db, &ctx.stripe, &|_, _, _| {}).await {
        Ok(report) => tracing::info!(
            buckets = report.buckets,
            drift = report.drift.total(),
            "full reconcile done"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "full reconcile failed; the next run resumes where it stopped")
        }
    }
}

/// End every trial past its end date (the bucket falls back to its subscription's plan or the free plan).
pub async fn end_expired_trials(ctx: &ApiContext) -> anyhow::Result<usize> {
    let ended = ctx.db.end_expired_trials().await?;
    for bucket in &ended {
        tracing::info!(%bucket, "trial ended");
    }
    Ok(ended.len())
}
