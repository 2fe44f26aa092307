//! The hottest read on Postgres, on connections of its own.
//!
//! sqlx's pool pings every connection it takes back (a Sync message and a
//! wait for ReadyForQuery: a second round trip to the server for each query,
//! which on a small machine costs the Postgres backend about as much as the
//! query itself), and the `Any` driver converts every row. The cards list,
//! paysync's most frequent request, runs instead on a few native
//! `PgConnection`s held here: one round trip per read, rows read natively.
//!
//! Same SQL and same rows as [`Db::bucket_cards_for_member`](super::Db::bucket_cards_for_member)
//! on SQLite. A connection that fails a query is dropped and the next read
//! on that slot opens a new one.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};
use tokio::sync::Mutex;

use super::reads::{BucketCards, SQL, from_rows};

/// How many connections the hot read keeps (reads wait for one when all are busy).
const CONNECTIONS: usize = 4;

pub struct PgReads {
    url: String,
    slots: Vec<Mutex<Option<PgConnection>>>,
    next: AtomicUsize,
}

impl fmt::Debug for PgReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgReads")
            .field("connections", &self.slots.len())
            .finish()
    }
}

impl PgReads {
    pub fn new(url: &str) -> PgReads {
        PgReads {
            url: url.to_string(),
            slots: (0..CONNECTIONS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// [`Db::bucket_cards_for_member`](super::Db::bucket_cards_for_member) on one of these connections.
    pub async fn bucket_cards_for_member(
        &self,
        bucket_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<BucketCards>> {
        // A free slot if there is one, else wait for the next one round the ring.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let free = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => self.slots[start % n].lock().await,
        };
        if slot.is_none() {
            let mut conn = PgConnection::connect(&self.url).await?;
            conn.execute("SET max_parallel_workers_per_gather = 0")
                .await?;
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_mut() else {
            return Ok(None);
        };
        let rows = match sqlx::query(SQL)
            .bind(bucket_id)
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                *slot = None; // a broken or confused connection is not reused
                return Err(e);
            }
        };
        drop(slot);
        from_rows(&rows)
    }
}
