//! Scheduled jobs of a running server (tokio-cron-scheduler).

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::ApiContext;

/// The running schedulers; `stop` on shutdown.
pub struct Jobs {
    scheduler: JobScheduler,
}

impl Jobs {
    pub async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "scheduler shutdown");
        }
    }
}

pub async fn start(ctx: ApiContext) -> anyhow::Result<Jobs> {
    let scheduler = JobScheduler::new().await?;
    let trial_ctx = ctx.clone();
    scheduler
        .add(Job::new_async(ctx.cfg.trial_cron.as_str(), move |_, _| {
            let ctx = trial_ctx.clone();
            Box::pin(async move {
                if let Err(e) = end_expired_trials(&ctx).await {
                    tracing::warn!(error = %e, "ending expired trials failed");
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(Jobs { scheduler })
}

/// End every trial past its end date (the bucket falls back to its subscription's plan or the free plan).
pub async fn end_expired_trials(ctx: &ApiContext) -> anyhow::Result<usize> {
    let ended = ctx.db.end_expired_trials().await?;
    for bucket in &ended {
        tracing::info!(%bucket, "trial ended");
    }
    Ok(ended.len())
}
