//! Group commit of webhook deliveries into the inbox.
//!
//! A delivery is acknowledged only once its event is committed, and a commit
//! costs a disk sync (SQLite has one writer at a time on top). Under a burst,
//! one commit per delivery caps intake at roughly one event per sync. Here
//! concurrent deliveries queue up and one task writes everything queued in a
//! single transaction, then answers each: the same durability, far fewer
//! syncs. A failed transaction fails every delivery in it (each gets its 503
//! and Stripe retries), so nothing is half-written.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::store::{Db, now};

/// The most deliveries written in one transaction.
const MAX_BATCH: usize = 256;

/// An event to store (owned: it crosses into the writer task).
pub struct Delivery {
    pub id: String,
    pub r#type: String,
    pub created: i64,
    pub body: String,
}

struct Pending {
    delivery: Delivery,
    /// true when stored, false when its id was already in the inbox.
    reply: oneshot::Sender<Result<bool, String>>,
}

/// Handle of the writer task, started on first use (inside the runtime).
#[derive(Clone, Default)]
pub struct InboxWriter {
    queue: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

impl InboxWriter {
    /// Store a webhook delivery; resolves once its transaction is committed.
    pub async fn insert(&self, db: &Db, delivery: Delivery) -> Result<bool, String> {
        let queue = self.queue.get_or_init(|| spawn(db.clone()));
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| "inbox writer stopped".to_string())?;
        answer
            .await
            .map_err(|_| "inbox writer stopped".to_string())?
    }
}

fn spawn(db: Db) -> mpsc::Sender<Pending> {
    let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            match write(&db, &batch).await {
                Ok(inserted) => {
                    for (p, ok) in batch.drain(..).zip(inserted) {
                        let _ = p.reply.send(Ok(ok));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for p in batch.drain(..) {
                        let _ = p.reply.send(Err(msg.clone()));
                    }
                }
            }
        }
    });
    tx
}

async fn write(db: &Db, batch: &[Pending]) -> sqlx::Result<Vec<bool>> {
    let mut tx = db.begin_write().await?;
    let received = now();
    let mut inserted = Vec::with_capacity(batch.len());
    for p in batch {
        let d = &p.delivery;
        let done = sqlx::query(
            "INSERT INTO stripe_events (id, type, created, body, source, received_at, state) \
             VALUES ($1, $2, $3, $4, 'webhook', $5, 'pending') ON CONFLICT (id) DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.r#type)
        .bind(d.created)
        .bind(&d.body)
        .bind(received)
        .execute(&mut *tx)
        .await?;
        inserted.push(done.rows_affected() > 0);
    }
    tx.commit().await?;
    Ok(inserted)
}
