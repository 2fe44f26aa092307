//! One replica at a time runs the scheduled sync jobs. On Postgres the leader
//! holds a session advisory lock on a dedicated connection: if its process
//! dies, the connection closes, the lock is released, and another replica
//! takes it at its next scheduled run. On SQLite there is one process: it leads.

use sqlx::pool::PoolConnection;
use sqlx::{Any, Row};
use tokio::sync::Mutex;

use crate::store::{Backend, Db};

/// Advisory lock key of the sync jobs ("paysync" in ASCII, fits in i64).
const LOCK_KEY: i64 = 0x0070_6179_7379_6e63;

pub struct Leader {
    db: Db,
    held: Mutex<Option<PoolConnection<Any>>>,
}

impl Leader {
    pub fn new(db: Db) -> Self {
        Leader {
            db,
            held: Mutex::new(None),
        }
    }

    /// Are we the leader now? Takes the lock if free; checks a held lock's connection is alive.
    pub async fn acquire(&self) -> bool {
        if self.db.backend == Backend::Sqlite {
            return true;
        }
        let mut held = self.held.lock().await;
        if let Some(conn) = held.as_mut() {
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return true;
            }
            tracing::warn!("lost the sync leader connection");
            *held = None;
        }
        let Ok(mut conn) = self.db.pool.acquire().await else {
            return false;
        };
        let got = sqlx::query("SELECT pg_try_advisory_lock($1) AS ok")
            .bind(LOCK_KEY)
            .fetch_one(&mut *conn)
            .await
            .and_then(|r| r.try_get::<bool, _>("ok"))
            .unwrap_or(false);
        if got {
            tracing::info!("this replica now runs the sync jobs");
            // Keep the connection out of the pool: the lock lives as long as it does.
            *held = Some(conn);
        }
        got
    }

    /// Give the lock back (shutdown).
    pub async fn release(&self) {
        if let Some(mut conn) = self.held.lock().await.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *conn)
                .await;
        }
    }
}
