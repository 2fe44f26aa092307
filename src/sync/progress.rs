//! `paysync reconcile`: runs catch-up or a full reconcile from the command
//! line, with a progress bar on a terminal and plain progress lines otherwise,
//! and ends with the drift summary. Fails (non-zero exit) if it could not finish.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ReconcileArgs;
use crate::store::Db;
use crate::stripe::Stripe;
use crate::sync::reconcile::{self, Drift};

pub async fn reconcile_command(args: ReconcileArgs) -> anyhow::Result<()> {
    let db = Db::open(&args.db.database_url).await?;
    let stripe = Stripe::new(&args.stripe.settings()?)?;
    let started = Instant::now();
    if !args.full {
        let applied = crate::sync::catchup::run(&db, &stripe).await?;
        eprintln!(
            "catch-up: {} events listed, {} new; cursor at {}",
            applied.listed, applied.stored, applied.cursor
        );
        // Apply what was stored now, rather than leaving it to a running server.
        let applier = crate::sync::worker::Applier {
            db: db.clone(),
            stripe: stripe.clone(),
            sync: args.sync.settings()?,
        };
        let drained = applier.drain().await?;
        eprintln!(
            "applied {} events ({} failed, {} dead)",
            drained.applied, drained.failed, drained.dead
        );
        if applied.needs_full {
            eprintln!(
                "the cursor was older than Stripe's 30-day window: run `paysync reconcile --full`"
            );
        }
        return Ok(());
    }
    let drift = if let Some(bucket) = &args.bucket {
        reconcile::bucket(&db, &stripe, bucket).await?
    } else {
        let total = db.buckets_with_customer().await?.len() as u64;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} buckets {elapsed} eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        let last_line = Mutex::new(Instant::now());
        let progress = |done: u64, of: u64, bucket: &str| match &bar {
            Some(bar) => {
                bar.set_length(of);
                bar.set_position(done);
                bar.set_message(bucket.to_string());
            }
            None => {
                let mut last = last_line.lock().unwrap_or_else(|p| p.into_inner());
                if done == of || last.elapsed().as_secs() >= 2 {
                    eprintln!("reconcile: {done}/{of} buckets");
                    *last = Instant::now();
                }
            }
        };
        let report = reconcile::full(&db, &stripe, &progress).await?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if let Some(after) = &report.resumed_after {
            eprintln!("resumed an interrupted run after bucket {after}");
        }
        eprintln!(
            "reconciled {} buckets in {:.1}s",
            report.buckets,
            started.elapsed().as_secs_f64()
        );
        report.drift
    };
    println!("{}", summary(&drift));
    Ok(())
}

/// `drift: customer=0 source=2 subscription=1 invoice=0 charge=0 (total 3)`
pub fn summary(drift: &Drift) -> String {
    use crate::store::Kind;
    let parts: Vec<String> = [
        Kind::Customer,
        Kind::Source,
        Kind::Subscription,
        Kind::Invoice,
        Kind::Charge,
    ]
    .iter()
    .map(|k| format!("{}={}", k.name(), drift.get(*k)))
    .collect();
    format!("drift: {} (total {})", parts.join(" "), drift.total())
}
