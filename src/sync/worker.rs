//! The apply worker: takes events out of the inbox and applies them.
//!
//! It is woken at once when a delivery is stored (a `Notify` in the
//! `ApiContext`), and also polls slowly, for retries that fall due, for events
//! stored by another replica, and for events left unapplied by a process that
//! died. Everything it needs to know is in the database, never in memory:
//! - an event is *claimed* (token + lease end in its row) before it is
//!   applied, so replicas sharing one database never apply it at the same
//!   time; a claim whose holder died runs out after the lease;
//! - an event is marked applied only after its object is stored, so an event
//!   whose apply failed or was interrupted is picked up again after a restart;
//! - a failed apply is retried with exponential backoff, and parked as `dead`
//!   after `PAYSYNC_EVENT_MAX_ATTEMPTS` (replayable with `paysync events replay`).
//!
//! A claimed batch is applied in one transaction, each event marked applied
//! in that same transaction, so the cache and the inbox never disagree and a
//! batch costs one commit. Events only Stripe can order (re-fetches) are taken
//! out of the batch and applied one by one after it, outside any transaction;
//! if the batch transaction fails, every event of it is applied one by one.
//!
//! Re-applying an event whose object was stored just before a crash is
//! harmless: the row's watermark already names that event, so it is `Stale`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::cfg::SyncSettings;
use crate::store::inbox::{InboxEvent, mark_applied_in};
use crate::store::{Db, now};
use crate::stripe::Stripe;
use crate::sync::events::{self, Applied, Event, Local};

/// Events claimed at once.
const BATCH: i64 = 32;
/// Longest wait before a retry.
const MAX_BACKOFF_SECS: u64 = 3600;

/// What the worker needs: the cache, the Stripe gateway (re-fetches), its settings.
#[derive(Clone)]
pub struct Applier {
    pub db: Db,
    pub stripe: Stripe,
    pub sync: SyncSettings,
}

/// What one drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub applied: u64,
    pub failed: u64,
    pub dead: u64,
}

impl Applier {
    /// Apply every due event until none is left (events claimed by another
    /// worker, or failed and not due yet, are left alone).
    pub async fn drain(&self) -> anyhow::Result<Drained> {
        let mut done = Drained::default();
        loop {
            let token = uuid::Uuid::new_v4().to_string();
            let lease = self.sync.lease.as_secs().max(1) as i64;
            let batch = self.db.claim_events(&token, lease, BATCH).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            let one_by_one = match self.apply_batch(&token, &batch, &mut done).await {
                Ok(needs_stripe) => needs_stripe,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), events = batch.len(), "apply worker: batch transaction failed; applying its events one by one");
                    batch.iter().collect()
                }
            };
            for ev in one_by_one {
                self.process(&token, ev, &mut done).await?;
            }
        }
    }

    /// Apply what the database alone can apply of a claimed batch, and mark
    /// it applied, in one transaction. Answers the events left for
    /// [`Applier::process`]: those that need Stripe, and bodies that are not
    /// events (they fail there, with their error recorded).
    async fn apply_batch<'a>(
        &self,
        token: &str,
        batch: &'a [InboxEvent],
        done: &mut Drained,
    ) -> anyhow::Result<Vec<&'a InboxEvent>> {
        // Bodies that are not events are left for `process`, which records their error.
        let mut left = Vec::new();
        let mut values = Vec::with_capacity(batch.len());
        for ev in batch {
            match serde_json::from_str::<serde_json::Value>(&ev.body) {
                Ok(v) => values.push((ev, v)),
                Err(_) => left.push(ev),
            }
        }
        // The inbox rows and their events, side by side (`read_ahead` takes the events).
        let (mut owners, mut events) = (Vec::new(), Vec::new());
        for (ev, v) in &values {
            match Event::parse(v) {
                Some(e) => {
                    owners.push(*ev);
                    events.push(e);
                }
                None => left.push(*ev),
            }
        }
        let mut tx = self.db.begin_write().await?;
        let mut known = events::read_ahead(&mut tx, &events).await?;
        let mut applied = Vec::with_capacity(batch.len());
        let started = Instant::now();
        let results = events::apply_local_many(&mut tx, &self.sync, &events, &mut known).await?;
        // Applied together: each event's share of the batch's time.
        let each = started.elapsed().as_secs_f64() / events.len().max(1) as f64;
        for (&ev, result) in owners.iter().zip(results) {
            match result {
                Local::NeedsStripe => left.push(ev),
                Local::Done(result) => {
                    metrics::histogram!("paysync_event_apply_seconds").record(each);
                    if mark_applied_in(&mut tx, &ev.id, token).await? {
                        applied.push((ev, result));
                    } else {
                        tracing::warn!(event = %ev.id, "claim on the event ran out while applying it; another worker has it");
                    }
                }
            }
        }
        tx.commit().await?;
        self.db.cards_written().await;
        for (ev, result) in applied {
            done.applied += 1;
            record_applied(ev, &result);
        }
        Ok(left)
    }

    async fn process(
        &self,
        token: &str,
        ev: &InboxEvent,
        done: &mut Drained,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = events::apply_body(&self.db, &self.stripe, &self.sync, &ev.body).await;
        metrics::histogram!("paysync_event_apply_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(applied) => {
                if self.db.mark_applied(&ev.id, token).await? {
                    done.applied += 1;
                    record_applied(ev, &applied);
                } else {
                    tracing::warn!(event = %ev.id, "claim on the event ran out while applying it; another worker has it");
                }
            }
            Err(e) => {
                let attempt = ev.attempts + 1;
                let dead = attempt >= i64::from(self.sync.max_attempts);
                let next = now() + backoff_secs(self.sync.backoff, attempt) as i64;
                let error = format!("{e:#}");
                self.db
                    .mark_failed(&ev.id, token, &error, next, dead)
                    .await?;
                if dead {
                    done.dead += 1;
                    metrics::counter!("paysync_events_dead_total", "type" => ev.r#type.clone())
                        .increment(1);
                    tracing::error!(event = %ev.id, r#type = %ev.r#type, attempt, %error, "event parked as dead");
                } else {
                    done.failed += 1;
                    metrics::counter!("paysync_events_failed_total", "type" => ev.r#type.clone())
                        .increment(1);
                    tracing::warn!(event = %ev.id, r#type = %ev.r#type, attempt, %error, retry_at = next, "event apply failed; will retry");
                }
            }
        }
        Ok(())
    }
}

/// Count an applied event, with the time from its receipt (webhook or
/// catch-up) in whole seconds (received_at is stored in seconds).
fn record_applied(ev: &InboxEvent, applied: &Applied) {
    metrics::counter!("paysync_events_applied_total", "type" => ev.r#type.clone(), "result" => applied.label())
        .increment(1);
    metrics::histogram!("paysync_event_apply_lag_seconds")
        .record((now() - ev.received_at).max(0) as f64);
    tracing::debug!(event = %ev.id, r#type = %ev.r#type, result = applied.label(), "event applied");
}

/// Wait before attempt `attempt + 1`: `base`, doubling each failure, capped at an hour.
pub fn backoff_secs(base: Duration, attempt: i64) -> u64 {
    let base = base.as_secs_f64().max(1.0);
    let factor = 2f64.powi((attempt - 1).clamp(0, 30) as i32);
    ((base * factor).ceil() as u64).min(MAX_BACKOFF_SECS)
}

/// A running worker; `stop` lets it finish the event in hand.
pub struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Run until stopped: drain, then wait for a wake-up or the poll interval.
    pub fn spawn(applier: Applier, wake: Arc<Notify>) -> Worker {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = applier.drain().await {
                    tracing::warn!(error = %format!("{e:#}"), "apply worker: inbox unreachable; retrying at the next poll");
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(applier.sync.poll) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Worker { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(5);
        assert_eq!([1, 2, 3].map(|a| backoff_secs(b, a)), [5, 10, 20]);
        assert_eq!(backoff_secs(b, 40), MAX_BACKOFF_SECS);
        assert_eq!(backoff_secs(Duration::from_millis(100), 1), 1);
    }
}
