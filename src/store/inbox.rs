//! The event inbox: every verified Stripe event, stored before it is
//! acknowledged, then applied by the sync worker. The event id is the primary
//! key, so a redelivered event is a no-op whichever replica receives it.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Db, now};
use crate::stripe::json;

#[derive(Debug, Clone)]
pub struct InboxEvent {
    pub id: String,
    pub r#type: String,
    pub created: i64,
    pub body: String,
    pub source: String,
    pub received_at: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// A new event to store.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub r#type: &'a str,
    pub created: i64,
    pub body: &'a str,
    pub source: &'a str,
    /// The customer its object belongs to (`json::customer_of`) when that
    /// customer may have no bucket (none yet, or not known: the event is left
    /// for the worker): linked to a bucket later, it gets its events requeued
    /// by this. None when it names no customer or the customer has a bucket
    /// (its events are applied for real): the index holds the few events that
    /// may need it, not one random key per event.
    pub customer: Option<&'a str>,
    /// Already applied by the transaction that stores it (else pending, for the worker).
    pub applied: bool,
}

impl NewEvent<'_> {
    fn state(&self) -> &'static str {
        if self.applied { "applied" } else { "pending" }
    }
}

/// The condition of the index of events by state (migration 0008): only
/// events not applied are in it. Every query by a state other than
/// `applied` repeats it, so SQLite, which uses a partial index only when the
/// query's WHERE contains its condition, keeps using the index instead of
/// scanning the whole inbox.
pub const UNAPPLIED: &str = "state <> 'applied'";

const COLUMNS: &str =
    "id, type, created, body, source, received_at, state, attempts, next_attempt_at, last_error";

fn event_from_row(r: &AnyRow) -> sqlx::Result<InboxEvent> {
    Ok(InboxEvent {
        id: r.try_get("id")?,
        r#type: r.try_get("type")?,
        created: r.try_get("created")?,
        body: r.try_get("body")?,
        source: r.try_get("source")?,
        received_at: r.try_get("received_at")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
    })
}

impl Db {
    /// Store an event; false when its id is already in the inbox.
    pub async fn insert_event(&self, e: &NewEvent<'_>) -> sqlx::Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let new = insert_events_in(&mut conn, std::slice::from_ref(e), now()).await?;
        Ok(!new.is_empty())
    }

    pub async fn event(&self, id: &str) -> sqlx::Result<Option<InboxEvent>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM stripe_events WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| event_from_row(&r))
        .transpose()
    }

    /// Events waiting to be applied (pending, or failed and due again), oldest first.
    pub async fn due_events(&self, limit: i64) -> sqlx::Result<Vec<InboxEvent>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM stripe_events WHERE state IN ('pending', 'failed') AND next_attempt_at <= $1 \
             AND {UNAPPLIED} ORDER BY created, id LIMIT $2"
        )))
        .bind(now())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Events in a state other than applied (`pending`, `failed`, `dead`),
    /// oldest first; none for `applied` (nearly the whole inbox: not indexed).
    pub async fn events_in_state(&self, state: &str, limit: i64) -> sqlx::Result<Vec<InboxEvent>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM stripe_events WHERE state = $1 AND {UNAPPLIED} \
             ORDER BY created, id LIMIT $2"
        )))
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// How many events are in a state other than applied (0 for `applied`).
    pub async fn count_events(&self, state: &str) -> sqlx::Result<i64> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM stripe_events WHERE state = $1 AND {UNAPPLIED}"
        )))
        .bind(state)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")
    }

    /// Claim up to `limit` due events (pending, or failed and due again) for
    /// `token` for `lease_secs`; the claimed events, oldest first. An event
    /// claimed by another worker whose lease has not run out is skipped, so
    /// replicas sharing the database never work on the same event at once.
    pub async fn claim_events(
        &self,
        token: &str,
        lease_secs: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<InboxEvent>> {
        let t = now();
        // Postgres: concurrent claimers skip each other's rows instead of queueing behind them.
        // SQLite: one writer at a time, so the update is already exclusive.
        let skip_locked = if self.backend == super::Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE stripe_events SET claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT id FROM stripe_events \
                          WHERE state IN ('pending', 'failed') AND next_attempt_at <= $3 AND claimed_until < $3 \
                          AND {UNAPPLIED} ORDER BY created, id LIMIT $4{skip_locked}) \
               AND state IN ('pending', 'failed') AND claimed_until < $3 \
             RETURNING {COLUMNS}"
        )))
        .bind(token)
        .bind(t + lease_secs)
        .bind(t)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<sqlx::Result<Vec<_>>>()?;
        events.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(events)
    }

    /// Mark applied under this claim; false when the claim was lost (lease ran
    /// out and another worker took the event over) or the event was already applied.
    pub async fn mark_applied(&self, id: &str, token: &str) -> sqlx::Result<bool> {
        let mut conn = self.pool.acquire().await?;
        mark_applied_in(&mut conn, id, token).await
    }

    /// Record a failed attempt under this claim: retried at `next_attempt_at`, or parked as dead.
    pub async fn mark_failed(
        &self,
        id: &str,
        token: &str,
        error: &str,
        next_attempt_at: i64,
        dead: bool,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE stripe_events SET state = $3, attempts = attempts + 1, next_attempt_at = $4, last_error = $5, \
             claimed_by = NULL, claimed_until = 0 \
             WHERE id = $1 AND claimed_by = $2 AND state <> 'applied'",
        )
        .bind(id)
        .bind(token)
        .bind(if dead { "dead" } else { "failed" })
        .bind(next_attempt_at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Put a failed or dead event back in line (`paysync events replay`).
    pub async fn requeue_event(&self, id: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE stripe_events SET state = 'pending', attempts = 0, next_attempt_at = 0, \
             claimed_by = NULL, claimed_until = 0 \
             WHERE id = $1 AND state IN ('failed', 'dead')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl Db {
    /// Events not applied yet (pending or failed), and the receive time of the oldest.
    pub async fn inbox_backlog(&self) -> sqlx::Result<(i64, Option<i64>)> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM stripe_events \
             WHERE state IN ('pending', 'failed') AND {UNAPPLIED}"
        )))
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("oldest")?))
    }
}

// The same updates on one connection or open transaction: a batch of events is
// applied and marked applied in one transaction.

/// [`Db::mark_applied`] on a given connection or transaction.
pub async fn mark_applied_in(
    conn: &mut AnyConnection,
    id: &str,
    token: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE stripe_events SET state = 'applied', applied_at = $3, last_error = NULL, \
         claimed_by = NULL, claimed_until = 0 \
         WHERE id = $1 AND claimed_by = $2 AND state <> 'applied'",
    )
    .bind(id)
    .bind(token)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Put customers' applied events back in line, but for `except` (events
/// the calling transaction stored and applies itself). Used when the
/// customers get linked to buckets: their events applied before the link
/// were ignored (customer of no bucket), and must now be applied for real.
/// Re-applying one that was not ignored is harmless (the watermark makes it
/// stale). An index lookup: the events name their customer in a column of
/// their own.
pub async fn requeue_customers_events_in(
    conn: &mut AnyConnection,
    customer_ids: &[String],
    except: &[String],
) -> sqlx::Result<u64> {
    let mut requeued = 0;
    for chunk in customer_ids.chunks(1000) {
        let mut sql = format!(
            "UPDATE stripe_events SET state = 'pending', next_attempt_at = 0 \
             WHERE customer_id IN {} AND state = 'applied'",
            super::placeholders(conn, 1, chunk.len(), 1)
        );
        if !except.is_empty() {
            sql.push_str(" AND id NOT IN ");
            sql.push_str(&super::placeholders(conn, 1, except.len(), chunk.len() + 1));
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk.iter().chain(except) {
            q = q.bind(id);
        }
        requeued += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(requeued)
}

/// Set events stored as applied back to pending (the transaction that
/// stored them found they need Stripe: the worker applies them).
pub async fn mark_pending_in(conn: &mut AnyConnection, ids: &[&str]) -> sqlx::Result<()> {
    for chunk in ids.chunks(1000) {
        let sql = format!(
            "UPDATE stripe_events SET state = 'pending', applied_at = NULL WHERE id IN {}",
            super::placeholders(conn, 1, chunk.len(), 1)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Insert many events in one statement (each new id stored, known ids left
/// alone); the ids that were new. One round trip for a whole batch of
/// webhook deliveries instead of one per delivery.
pub async fn insert_events_in(
    conn: &mut AnyConnection,
    events: &[NewEvent<'_>],
    received_at: i64,
) -> sqlx::Result<std::collections::HashSet<String>> {
    let mut new = std::collections::HashSet::with_capacity(events.len());
    // 9 parameters a row; SQLite allows 32,766 in a statement.
    for chunk in events.chunks(super::rows_per_statement(conn, 1000)) {
        let mut sql = String::from(
            "INSERT INTO stripe_events \
             (id, type, created, body, source, received_at, state, applied_at, customer_id) VALUES ",
        );
        sql.push_str(&super::placeholders(conn, chunk.len(), 9, 1));
        sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(e.id)
                .bind(e.r#type)
                .bind(e.created)
                .bind(e.body)
                .bind(e.source)
                .bind(received_at)
                .bind(e.state())
                .bind(e.applied.then_some(received_at))
                .bind(e.customer.unwrap_or(""));
        }
        for row in q.fetch_all(&mut *conn).await? {
            new.insert(row.try_get::<String, _>("id")?);
        }
    }
    Ok(new)
}

/// Fill in the customer of events stored before the inbox had the column
/// (migration 0006), so the requeue of a newly linked customer finds them
/// too. Runs when the database is migrated: once, then a lookup that finds
/// nothing. Returns how many events it filled in.
pub async fn fill_customers(db: &Db) -> sqlx::Result<u64> {
    let mut filled = 0;
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, body FROM stripe_events WHERE customer_id IS NULL LIMIT 500",
        )
        .fetch_all(&db.pool)
        .await?;
        if rows.is_empty() {
            return Ok(filled);
        }
        let mut tx = db.begin_write().await?;
        for (id, body) in &rows {
            let body: Option<serde_json::Value> = serde_json::from_str(body).ok();
            let customer = body
                .as_ref()
                .and_then(|b| b.pointer("/data/object"))
                .and_then(json::customer_of);
            sqlx::query("UPDATE stripe_events SET customer_id = $1 WHERE id = $2")
                .bind(customer.unwrap_or(""))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        filled += rows.len() as u64;
    }
}
