//! Webhook intake: group commit of deliveries into the inbox, applying each
//! in the transaction that stores it.
//!
//! A delivery is acknowledged only once its event is committed, and a commit
//! costs a disk sync (SQLite has one writer at a time on top). Under a burst,
//! one commit per delivery caps intake at roughly one event per sync. Here
//! concurrent deliveries queue up and one task writes everything queued in a
//! single transaction, then answers each: the same durability, far fewer
//! syncs.
//!
//! In that same transaction each new event is applied to the cache when the
//! database alone can apply it (`events::apply_local_many`) and stored as
//! applied, so by the time Stripe gets its 200 the change is visible in the
//! read routes, and the cache and the inbox never disagree. Events that need
//! Stripe (a tie only a re-fetch can order, or a kind configured to be
//! re-fetched) are stored pending for the worker, which is woken after the
//! commit; so are the earlier events of a customer the batch linked to a
//! bucket.
//!
//! A failed transaction is tried once more storing the deliveries alone (the
//! worker applies them later); if that fails too, every delivery in it gets
//! its 503 and Stripe retries: nothing is half-written.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::cfg::SyncSettings;
use crate::store::inbox::{NewEvent, insert_events_in, mark_pending_in};
use crate::store::{CardsMark, Db, Held, now};
use crate::sync::apply::customer_of;
use crate::sync::events::{self, Applied, Event, Local};

/// The most deliveries written in one transaction.
const MAX_BATCH: usize = 256;

/// How long the writer keeps its connection with nothing to write.
const KEEP_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// A verified delivery (owned: it crosses into the writer task).
pub struct Delivery {
    /// The body, compact (`sync::compact::minify`): what the inbox stores.
    pub body: String,
    /// The same body parsed (it was parsed to verify it is an event).
    pub value: Value,
    /// Where its `data.object` is in `body` (`sync::compact::object_span`):
    /// that text is what the object's row stores.
    pub object: Option<std::ops::Range<usize>>,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Its id was already in the inbox: nothing stored or applied again.
    Duplicate,
    /// Stored and applied in the same transaction.
    Applied(Applied),
    /// Stored; the worker applies it (it needs Stripe, or applying failed).
    Pending,
}

struct Queued {
    delivery: Delivery,
    /// The outcome, with the delivery handed back: its parsed tree (hundreds
    /// of allocations) is freed, and its metrics recorded, by the request's
    /// task instead of the writer's, which every delivery waits on.
    reply: oneshot::Sender<(Delivery, Result<Received, String>)>,
}

/// Handle of the writer task, started on first use (inside the runtime).
#[derive(Clone, Default)]
pub struct InboxWriter {
    queue: Arc<OnceLock<mpsc::Sender<Queued>>>,
}

/// What the writer task needs: the cache, the sync settings (which kinds are
/// always re-fetched), and the worker's bell.
pub struct Intake {
    pub db: Db,
    pub sync: SyncSettings,
    pub wake: Arc<Notify>,
}

impl InboxWriter {
    /// Store a verified delivery; resolves once its transaction is committed.
    /// The delivery must parse as an [`Event`] (the receiver checked it).
    pub async fn insert(
        &self,
        intake: impl FnOnce() -> Intake,
        delivery: Delivery,
    ) -> Result<Received, String> {
        let queue = self.queue.get_or_init(|| spawn(intake()));
        let (reply, answer) = oneshot::channel();
        queue
            .send(Queued { delivery, reply })
            .await
            .map_err(|_| "inbox writer stopped".to_string())?;
        let (delivery, received) = answer
            .await
            .map_err(|_| "inbox writer stopped".to_string())?;
        if let Ok(r) = &received {
            record(&delivery, r);
        }
        received
    }
}

fn spawn(intake: Intake) -> mpsc::Sender<Queued> {
    let (tx, mut rx) = mpsc::channel::<Queued>(4 * MAX_BATCH);
    let task = async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut held = match intake.db.in_memory() {
            true => Held::default(),
            false => Held::own(),
        };
        loop {
            // The connection is kept while deliveries keep coming, and given
            // back after a quiet second.
            let next = rx.recv_many(&mut batch, MAX_BATCH);
            let n = match held.is_kept() {
                true => match tokio::time::timeout(KEEP_IDLE, next).await {
                    Ok(n) => n,
                    Err(_) => {
                        held.release().await;
                        rx.recv_many(&mut batch, MAX_BATCH).await
                    }
                },
                false => next.await,
            };
            if n == 0 {
                break;
            }
            let outcome = match write(&intake, &mut held, &batch, true).await {
                Ok(received) => Ok(received),
                Err(e) => {
                    held.drop_connection();
                    tracing::warn!(error = %e, deliveries = batch.len(), "applying deliveries in their transaction failed; storing them for the worker");
                    write(&intake, &mut held, &batch, false).await
                }
            };
            if outcome.is_err() {
                held.drop_connection();
            }
            match outcome {
                Ok(Written {
                    received,
                    requeued,
                    mark,
                }) => {
                    if requeued || received.contains(&Received::Pending) {
                        intake.wake.notify_one();
                    }
                    // Answered once the cards cache dropped what the batch
                    // changed (on Postgres: once the listener heard the
                    // batch's marker). The writer waits for it rather than
                    // start the next batch: meanwhile that batch grows, and
                    // on a busy machine larger batches were faster.
                    intake.db.cards_marked(mark).await;
                    for (q, r) in batch.drain(..).zip(received) {
                        let _ = q.reply.send((q.delivery, Ok(r)));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for q in batch.drain(..) {
                        let _ = q.reply.send((q.delivery, Err(msg.clone())));
                    }
                }
            }
        }
    };
    // Not on the runtime's workers: see `own_thread`.
    if let Err(task) = own_thread(task) {
        tokio::spawn(task);
    }
    tx
}

/// Run the writer on a thread of its own (a runtime of one thread, with a
/// database connection of its own: see `Held::own`), or hand it back if that
/// thread cannot be started.
///
/// A batch is a dozen statements in turn, each a round trip: to the
/// connection's thread on SQLite (sqlx runs each SQLite connection on one),
/// to the server on Postgres. On the runtime's workers the writer's turn
/// after each one came only once a worker had finished the request it was
/// serving (hundreds of webhook deliveries are parsed there during a burst),
/// and on SQLite half the batch's time was spent waiting for it: the writer
/// is the one every delivery waits on. Its own thread is woken at once.
fn own_thread<F>(task: F) -> Result<(), F>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime for the webhook writer's thread; it runs on the main runtime");
            return Err(task);
        }
    };
    let (start, started) = std::sync::mpsc::channel::<F>();
    let thread = std::thread::Builder::new()
        .name("paysync-intake".into())
        .spawn(move || {
            if let Ok(task) = started.recv() {
                runtime.block_on(task);
            }
        });
    match thread {
        Ok(_) => {
            let _ = start.send(task);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the webhook writer's thread; it runs on the main runtime");
            Err(task)
        }
    }
}

/// What a batch's transaction did.
struct Written {
    /// What became of each delivery, in order.
    received: Vec<Received>,
    /// It linked customers to buckets (by their metadata) whose events
    /// applied before (ignored then) are back in line for the worker.
    requeued: bool,
    /// What to wait for before answering: the cards cache catching up.
    mark: CardsMark,
}

/// Store a batch in one transaction, applying each new event in it when
/// `apply` (else every new event is left pending for the worker).
///
/// The batch is inserted first, its rows already marked applied when
/// `apply`: the insert tells which ids are new (one already in the inbox is
/// never applied again), and each row is written once (rewriting a row to
/// mark it applied rewrote its whole body). The few events that need Stripe
/// are then set back to pending.
async fn write(
    intake: &Intake,
    held: &mut Held,
    batch: &[Queued],
    apply: bool,
) -> anyhow::Result<Written> {
    let events = batch
        .iter()
        .map(|q| {
            let d = &q.delivery;
            let text = d.object.clone().and_then(|span| d.body.get(span));
            Event::parse(&d.value).map(|e| e.with_object_text(text))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("a delivery that is not an event reached the inbox"))?;
    let mut tx = intake
        .db
        .begin_write_on(held.get(&intake.db).await?)
        .await?;
    let mut known = match apply {
        true => events::read_ahead(&mut tx, &events).await?,
        false => Default::default(),
    };
    // The same id twice in one batch (a retry racing the first delivery) is stored once.
    let mut once = HashSet::new();
    let rows: Vec<NewEvent> = batch
        .iter()
        .zip(&events)
        .filter(|(_, e)| once.insert(e.id))
        .map(|(q, e)| NewEvent {
            id: e.id,
            r#type: e.r#type,
            created: e.created,
            body: &q.delivery.body,
            source: "webhook",
            // Only an event of a customer without a bucket may have to be applied again.
            customer: customer_of(e.object).filter(|c| !known.contains(c)),
            applied: apply,
        })
        .collect();
    let mut new = insert_events_in(&mut tx, &rows, now()).await?;
    let is_new: Vec<bool> = events.iter().map(|e| new.remove(e.id)).collect();
    let fresh: Vec<Event> = events
        .iter()
        .zip(&is_new)
        .filter(|(_, n)| **n)
        .map(|(e, _)| e.clone())
        .collect();
    let (results, requeued) = if apply {
        known.applying = fresh.iter().map(|e| e.id.to_string()).collect();
        let results = events::apply_local_many(&mut tx, &intake.sync, &fresh, &mut known).await?;
        let pending: Vec<&str> = fresh
            .iter()
            .zip(&results)
            .filter(|(_, r)| **r == Local::NeedsStripe)
            .map(|(e, _)| e.id)
            .collect();
        mark_pending_in(&mut tx, &pending).await?;
        (results, known.requeued > 0)
    } else {
        (vec![Local::NeedsStripe; fresh.len()], false)
    };
    // The 200 means "visible in the read routes": the cards cache too.
    let mark = match results.iter().any(|r| matches!(r, Local::Done(_))) {
        true => intake.db.cards_mark_in(&mut tx).await?,
        false => CardsMark::Nothing,
    };
    tx.commit().await?;
    let mut results = results.into_iter();
    let received: Vec<Received> = is_new
        .into_iter()
        .map(|is_new| match is_new.then(|| results.next()).flatten() {
            None => Received::Duplicate,
            Some(Local::Done(result)) => Received::Applied(result),
            Some(Local::NeedsStripe) => Received::Pending,
        })
        .collect();
    Ok(Written {
        received,
        requeued,
        mark,
    })
}

/// The same metrics the worker records for what it applies.
fn record(d: &Delivery, r: &Received) {
    let Received::Applied(applied) = r else {
        return;
    };
    let Some(event) = Event::parse(&d.value) else {
        return;
    };
    metrics::counter!("paysync_events_applied_total", "type" => event.r#type.to_string(), "result" => applied.label())
        .increment(1);
    metrics::histogram!("paysync_event_apply_lag_seconds").record(0.0);
    tracing::debug!(
        event = event.id,
        r#type = event.r#type,
        result = applied.label(),
        "event applied on receipt"
    );
}
