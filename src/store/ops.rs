//! What the sync-health page reads from the inbox: shared by every replica,
//! so any replica's `/ops` shows the same numbers.

use sqlx::{AssertSqlSafe, Row};

use super::Db;
use super::inbox::UNAPPLIED;

/// An event that failed to apply (being retried) or was parked as dead.
#[derive(Debug, Clone)]
pub struct Problem {
    pub id: String,
    pub r#type: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub next_attempt_at: i64,
}

/// Apply lag of the events received since some time and applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    pub applied: i64,
    pub total_seconds: i64,
    pub max_seconds: i64,
}

impl Db {
    /// Events stored from webhook deliveries since `since`, per minute:
    /// (minute start, count), minutes without deliveries left out.
    pub async fn webhook_minutes(&self, since: i64) -> sqlx::Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT received_at / 60 AS m, COUNT(*) AS n FROM stripe_events \
             WHERE received_at >= $1 AND source = 'webhook' GROUP BY received_at / 60",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("m")? * 60, r.try_get("n")?)))
            .collect()
    }

    /// From receipt to applied, over the events received since `since` and applied.
    pub async fn apply_lag(&self, since: i64) -> sqlx::Result<Lag> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(SUM(applied_at - received_at) AS BIGINT) AS total, \
                    MAX(applied_at - received_at) AS worst \
             FROM stripe_events WHERE received_at >= $1 AND state = 'applied'",
        )
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(Lag {
            applied: row.try_get("n")?,
            total_seconds: row.try_get::<Option<i64>, _>("total")?.unwrap_or(0),
            max_seconds: row.try_get::<Option<i64>, _>("worst")?.unwrap_or(0),
        })
    }

    /// Failed and dead events, dead first, most recently received first; at most `limit`.
    pub async fn problem_events(&self, limit: i64) -> sqlx::Result<Vec<Problem>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, type, state, attempts, last_error, received_at, next_attempt_at \
             FROM stripe_events WHERE state IN ('dead', 'failed') AND {UNAPPLIED} \
             ORDER BY state, received_at DESC, id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Problem {
                    id: r.try_get("id")?,
                    r#type: r.try_get("type")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    received_at: r.try_get("received_at")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                })
            })
            .collect()
    }
}
