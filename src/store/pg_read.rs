//! The hottest read on Postgres, on connections of its own, coalesced.
//!
//! sqlx's pool pings every connection it takes back (a Sync message and a
//! wait for ReadyForQuery: a second round trip to the server for each query,
//! which on a small machine costs the Postgres backend about as much as the
//! query itself), and the `Any` driver converts every row. The cards list,
//! paysync's most frequent request, runs instead on a few native
//! `PgConnection`s held by reader tasks here.
//!
//! Reads that arrive while every reader is busy wait in a queue, and the next
//! free reader answers all of them (up to [`BATCH`]) with one statement: the
//! one-bucket read of `reads`, run `LATERAL` for each (bucket, user) pair.
//! Under load a read's cost is mostly the round trip — waking a Postgres
//! backend, parsing, planning the execution, waking us again — not its few
//! index lookups, so a batch costs little more than one read and a burst of
//! cache misses no longer queues behind one round trip each.
//!
//! A connection that fails a query is dropped (every read of that batch gets
//! the error) and the reader opens a new one for its next batch.

use std::fmt;
use std::sync::{Arc, OnceLock};

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection, Executor, Row};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::reads::{BucketCards, cards_select, from_rows};

/// How many reader tasks (each with its connection) answer the queue.
const READERS: usize = 2;
/// The most reads answered by one statement.
const BATCH: usize = 64;

/// Every (bucket, user) pair of the arrays `$1`, `$2` with its position `i`
/// (from 1), and the rows the one-bucket read gives for it; a pair whose
/// user is not a member gives none. Column positions are those of
/// `reads::SQL`, `i` after them.
const SQL: &str = concat!(
    "SELECT x.s_id, x.s_status, x.s_view, x.s_data, x.c_view, x.c_data, x.s_created, q.i \
     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(bucket_id, user_id, i) \
     CROSS JOIN LATERAL (",
    cards_select!("q.bucket_id", "q.user_id"),
    ") x ORDER BY q.i, x.s_created DESC, x.s_id DESC"
);
/// Position of `i` in [`SQL`].
const POSITION: usize = 7;

/// What a read gets back (not the cache's `Answer`: the rows it is made of).
type Reply = sqlx::Result<Option<BucketCards>>;

struct Ask {
    bucket_id: String,
    user_id: String,
    reply: oneshot::Sender<Reply>,
}

pub struct PgReads {
    url: String,
    /// The queue of the reader tasks, started on first use (inside the runtime).
    queue: OnceLock<mpsc::Sender<Ask>>,
}

impl fmt::Debug for PgReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgReads")
            .field("readers", &READERS)
            .finish()
    }
}

impl PgReads {
    pub fn new(url: &str) -> PgReads {
        PgReads {
            url: url.to_string(),
            queue: OnceLock::new(),
        }
    }

    /// [`Db::bucket_cards_for_member`](super::Db::bucket_cards_for_member) by the reader tasks.
    pub async fn bucket_cards_for_member(&self, bucket_id: &str, user_id: &str) -> Reply {
        let queue = self.queue.get_or_init(|| start(&self.url));
        let (reply, replied) = oneshot::channel();
        let ask = Ask {
            bucket_id: bucket_id.to_string(),
            user_id: user_id.to_string(),
            reply,
        };
        let stopped = || sqlx::Error::Protocol("the Postgres card readers stopped".into());
        queue.send(ask).await.map_err(|_| stopped())?;
        replied.await.map_err(|_| stopped())?
    }
}

/// Start the readers; they end when the queue's sender (the `PgReads`) is dropped.
fn start(url: &str) -> mpsc::Sender<Ask> {
    let (tx, rx) = mpsc::channel::<Ask>(READERS * BATCH);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..READERS {
        let (rx, url) = (rx.clone(), url.to_string());
        tokio::spawn(async move {
            let mut conn: Option<PgConnection> = None;
            let mut asks = Vec::with_capacity(BATCH);
            // The lock is held only while waiting for asks: one reader waits,
            // the others are running their batch or waiting their turn.
            while rx.lock().await.recv_many(&mut asks, BATCH).await > 0 {
                match read(&mut conn, &url, &asks).await {
                    Ok(replies) => {
                        for (ask, reply) in asks.drain(..).zip(replies) {
                            let _ = ask.reply.send(reply);
                        }
                    }
                    Err(e) => {
                        conn = None; // a broken or confused connection is not reused
                        let msg = format!("Postgres cards read: {e}");
                        for ask in asks.drain(..) {
                            let _ = ask.reply.send(Err(sqlx::Error::Protocol(msg.clone())));
                        }
                    }
                }
            }
        });
    }
    tx
}

/// One statement for all `asks`: their replies, in order.
async fn read(
    conn: &mut Option<PgConnection>,
    url: &str,
    asks: &[Ask],
) -> sqlx::Result<Vec<Reply>> {
    let conn = match conn {
        Some(conn) => conn,
        None => {
            let mut new = PgConnection::connect(url).await?;
            new.execute(super::POSTGRES_SESSION).await?;
            conn.insert(new)
        }
    };
    let buckets: Vec<&str> = asks.iter().map(|a| a.bucket_id.as_str()).collect();
    let users: Vec<&str> = asks.iter().map(|a| a.user_id.as_str()).collect();
    let rows = sqlx::query(SQL)
        .bind(&buckets)
        .bind(&users)
        .fetch_all(&mut *conn)
        .await?;
    split(&rows, asks.len())
}

/// The rows of [`SQL`], ordered by position, as one reply per ask.
fn split(rows: &[PgRow], asks: usize) -> sqlx::Result<Vec<Reply>> {
    let mut out = Vec::with_capacity(asks);
    let mut rest = rows;
    for i in 1..=asks as i64 {
        let mut n = 0;
        while n < rest.len() && rest[n].try_get::<i64, _>(POSITION)? == i {
            n += 1;
        }
        let (mine, after) = rest.split_at(n);
        out.push(from_rows(mine));
        rest = after;
    }
    Ok(out)
}
