//! Which buckets changed, told by the database itself, for the in-memory
//! cards answers (`store::cards_cache`).
//!
//! Triggers on the four tables a cards answer is made of (`buckets`,
//! `members`, `stripe_customers`, `stripe_sources`) name every bucket whose
//! rows change, in the writing transaction, whoever writes: the apply worker,
//! the reconciler, a write route, an admin call, a `paysync` command run
//! beside the server, or another replica.
//!
//! - SQLite: the triggers append the bucket id to `cards_changes` (a log with
//!   an increasing `seq`). A connection of the cache's own asks `PRAGMA
//!   data_version` (it moves when any other connection commits) every
//!   [`LOOK_EVERY`]; when it moved, the new log rows are read and their
//!   buckets evicted. The log is pruned (see [`prune`]); a reader that finds
//!   its place pruned drops everything.
//! - Postgres: the triggers `pg_notify` the bucket id on [`CHANNEL`]; a
//!   listener task evicts.
//!
//! Either way a write made in this process ([`Db::cards_written`] after its
//! commit) returns only once its buckets are evicted: on SQLite by looking at
//! the log at once, on Postgres by waiting until the listener has heard a
//! marker sent after the commit (the webhook intake's writer notifies its
//! marker inside its transaction instead, [`Db::cards_mark_in`], which
//! saves it a round trip per batch). So a process's reads see its own writes at
//! once, and another process's (a `paysync` command, another replica) a few
//! milliseconds later. Asking SQLite on every read instead cost a quarter of
//! the cards list's throughput (two lock system calls per read). While a
//! feed is down (a failed look, a lost Postgres connection) the cache serves
//! nothing.
//!
//! The triggers are installed by [`install`] after the migrations: their SQL
//! is not the same on the two backends, and the migrations are one portable
//! set.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::cards_cache::CardsCache;
use super::{Backend, Db};

/// The Postgres notification channel of bucket changes.
pub const CHANNEL: &str = "paysync_cards";

/// How often a SQLite server looks for changes made by other processes.
pub const LOOK_EVERY: Duration = Duration::from_millis(5);

/// Log rows kept by [`prune`]: far more than a reader falls behind between two reads.
const KEEP: i64 = 100_000;

/// The tables a cards answer is made of: (table, its bucket id column, the
/// columns whose change matters to the answer; none listed: any update).
const TABLES: [(&str, &str, &[&str]); 4] = [
    (
        "stripe_sources",
        "bucket_id",
        &["data", "view", "deleted", "bucket_id", "created", "status"],
    ),
    (
        "stripe_customers",
        "bucket_id",
        &["data", "view", "deleted", "bucket_id"],
    ),
    ("members", "bucket_id", &[]),
    ("buckets", "id", &[]),
];

/// An UPDATE trigger's condition: one of `columns` differs (`differ` is the
/// backend's null-safe "not equal"), or always.
fn changed(columns: &[&str], differ: &str) -> String {
    if columns.is_empty() {
        return "1 = 1".into();
    }
    columns
        .iter()
        .map(|c| format!("OLD.{c} {differ} NEW.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// SQLite: the log, and per table triggers that append the bucket ids of the
/// rows written (the old and the new one when an update moves a row).
fn sqlite_ddl() -> String {
    let mut sql = String::from(
        "CREATE TABLE IF NOT EXISTS cards_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            bucket_id TEXT NOT NULL
        );",
    );
    for (table, col, columns) in TABLES {
        let name = format!("cards_changes_{table}");
        let when = changed(columns, "IS NOT");
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS {name}_ins;
            DROP TRIGGER IF EXISTS {name}_upd;
            DROP TRIGGER IF EXISTS {name}_del;
            CREATE TRIGGER {name}_ins AFTER INSERT ON {table} WHEN NEW.{col} IS NOT NULL
              BEGIN INSERT INTO cards_changes (bucket_id) VALUES (NEW.{col}); END;
            CREATE TRIGGER {name}_upd AFTER UPDATE ON {table} WHEN {when}
              BEGIN INSERT INTO cards_changes (bucket_id)
                SELECT NEW.{col} WHERE NEW.{col} IS NOT NULL
                UNION SELECT OLD.{col} WHERE OLD.{col} IS NOT NULL; END;
            CREATE TRIGGER {name}_del AFTER DELETE ON {table} WHEN OLD.{col} IS NOT NULL
              BEGIN INSERT INTO cards_changes (bucket_id) VALUES (OLD.{col}); END;"
        ));
    }
    sql
}

/// Postgres: a trigger function per bucket id column (`paysync_cards_changed_{col}`)
/// that notifies the bucket ids of the rows written. The column is named in
/// the function, not passed to one shared function: reading a column by a
/// name given at run time needs `to_jsonb(NEW)`, which turned every written
/// customer and card row, its whole Stripe object included, into JSON.
fn postgres_function(col: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION paysync_cards_changed_{col}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  new_bucket TEXT;
  old_bucket TEXT;
BEGIN
  IF TG_OP <> 'DELETE' THEN new_bucket := NEW.{col}; END IF;
  IF TG_OP <> 'INSERT' THEN old_bucket := OLD.{col}; END IF;
  IF new_bucket IS NOT NULL THEN PERFORM pg_notify('paysync_cards', new_bucket); END IF;
  IF old_bucket IS NOT NULL AND old_bucket IS DISTINCT FROM new_bucket THEN
    PERFORM pg_notify('paysync_cards', old_bucket);
  END IF;
  RETURN NULL;
END $$"
    )
}

/// Install (or bring up to date) the change triggers. Idempotent; several
/// processes starting at once take turns.
pub async fn install(db: &Db) -> sqlx::Result<()> {
    let mut tx = db.begin_write().await?;
    match db.backend {
        Backend::Sqlite => {
            tx.execute(sqlx::AssertSqlSafe(sqlite_ddl())).await?;
        }
        Backend::Postgres => {
            // Replicas starting together would race on the catalog rows.
            tx.execute("SELECT pg_advisory_xact_lock(7023548211)")
                .await?;
            let mut cols: Vec<&str> = TABLES.iter().map(|(_, col, _)| *col).collect();
            cols.sort_unstable();
            cols.dedup();
            for col in cols {
                tx.execute(sqlx::AssertSqlSafe(postgres_function(col)))
                    .await?;
            }
            for (table, col, columns) in TABLES {
                let name = format!("paysync_cards_{table}");
                let when = changed(columns, "IS DISTINCT FROM");
                tx.execute(sqlx::AssertSqlSafe(format!(
                    "DROP TRIGGER IF EXISTS {name}_write ON {table}; \
                     DROP TRIGGER IF EXISTS {name}_update ON {table}; \
                     CREATE TRIGGER {name}_write AFTER INSERT OR DELETE ON {table} \
                       FOR EACH ROW EXECUTE FUNCTION paysync_cards_changed_{col}(); \
                     CREATE TRIGGER {name}_update AFTER UPDATE ON {table} \
                       FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION paysync_cards_changed_{col}();"
                )))
                .await?;
            }
            // The shared function of earlier versions; no trigger uses it now.
            tx.execute("DROP FUNCTION IF EXISTS paysync_cards_changed()")
                .await?;
        }
    }
    tx.commit().await
}

/// SQLite: evict the buckets logged after `last`. `read_log` returns the log
/// rows after a seq, in order, at most `limit`; `newest` the highest seq.
fn catch_up<E>(
    last: &mut Option<i64>,
    cache: &CardsCache,
    read_log: impl FnOnce(i64, i64) -> Result<Vec<(i64, String)>, E>,
    newest: impl FnOnce() -> Result<i64, E>,
) -> Result<(), E> {
    let Some(after) = *last else {
        // First look: start at the end of the log, with nothing kept.
        *last = Some(newest()?);
        cache.clear();
        return Ok(());
    };
    let limit = 10_000;
    let rows = read_log(after, limit)?;
    let contiguous = rows.first().is_none_or(|(seq, _)| *seq == after + 1);
    if !contiguous || rows.len() as i64 >= limit {
        // Pruned past our place, or far behind: start afresh.
        cache.clear();
        *last = Some(newest()?);
        return Ok(());
    }
    for (_, bucket) in &rows {
        cache.evict(bucket);
    }
    if let Some((seq, _)) = rows.last() {
        *last = Some(*seq);
    }
    Ok(())
}

/// Drop SQLite log rows no reader needs any more (readers further behind
/// than [`KEEP`] rows start afresh). Nothing to do on Postgres.
pub async fn prune(db: &Db) -> sqlx::Result<u64> {
    if db.backend != Backend::Sqlite {
        return Ok(0);
    }
    let done = sqlx::query(
        "DELETE FROM cards_changes WHERE seq <= (SELECT max(seq) FROM cards_changes) - $1",
    )
    .bind(KEEP)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// How this process learns of changes, beside the cache it keeps right.
pub enum Feed {
    /// SQLite: a read connection of its own and where it is in the log.
    Sqlite(Mutex<SqliteFeed>),
    /// Postgres: markers of this process's writes, and the last one the
    /// listener saw; `in_tx_*` for the markers notified inside a transaction
    /// ([`Feed::mark_in`]), numbered apart.
    Postgres {
        token: u64,
        sent: AtomicU64,
        seen: watch::Sender<u64>,
        in_tx_sent: AtomicU64,
        in_tx_seen: watch::Sender<u64>,
    },
}

/// The SQLite side of [`Feed`].
pub struct SqliteFeed {
    path: PathBuf,
    /// Opened on first use (and again after an error).
    conn: Option<rusqlite::Connection>,
    /// `PRAGMA data_version` when last looked (None: not yet).
    data_version: Option<i64>,
    /// The last log row whose bucket was evicted (None: not read yet).
    last: Option<i64>,
}

impl Feed {
    fn new(backend: Backend, sqlite_path: Option<&Path>) -> Feed {
        match (backend, sqlite_path) {
            (Backend::Sqlite, Some(path)) => Feed::Sqlite(Mutex::new(SqliteFeed {
                path: path.to_path_buf(),
                conn: None,
                data_version: None,
                last: None,
            })),
            _ => Feed::Postgres {
                token: rand::random(),
                sent: AtomicU64::new(0),
                seen: watch::Sender::new(0),
                in_tx_sent: AtomicU64::new(0),
                in_tx_seen: watch::Sender::new(0),
            },
        }
    }

    /// SQLite: if anything was committed since the last look, evict the
    /// buckets logged since. A look is one `PRAGMA data_version`; one at a time.
    fn look(&self, cache: &CardsCache) -> rusqlite::Result<()> {
        let Feed::Sqlite(feed) = self else {
            return Ok(());
        };
        let mut feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        let feed = &mut *feed;
        let conn = match &mut feed.conn {
            Some(conn) => conn,
            slot => slot.insert(super::sqlite_read::open(&feed.path)?),
        };
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        if feed.data_version == Some(version) {
            return Ok(());
        }
        catch_up(
            &mut feed.last,
            cache,
            |after, limit| {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq, bucket_id FROM cards_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = stmt.query_map((after, limit), |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            },
            || {
                conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM cards_changes")?
                    .query_row([], |row| row.get(0))
            },
        )?;
        feed.data_version = Some(version);
        Ok(())
    }

    /// SQLite: [`Feed::look`], and on failure stop serving from memory until
    /// a look succeeds (changes may have gone unseen).
    fn look_or_stop(&self, cache: &CardsCache) {
        match self.look(cache) {
            Ok(()) if !cache.is_live() => cache.set_live(true),
            Ok(()) => {}
            Err(e) => {
                if cache.is_live() {
                    tracing::warn!(error = %e, "cannot read the bucket change log; cards are read from the database until it works");
                }
                if let Feed::Sqlite(feed) = self {
                    feed.lock().unwrap_or_else(|p| p.into_inner()).conn = None;
                }
                cache.set_live(false);
            }
        }
    }

    /// After a write of this process committed: return once the cache has
    /// dropped what it changed, so this process's next read sees it. SQLite:
    /// look at the log now. Postgres: wait until the listener has heard a
    /// marker sent after the commit (bounded: past a second, everything is
    /// dropped instead).
    pub async fn written(&self, db: &Db, cache: &CardsCache) {
        let Feed::Postgres {
            token, sent, seen, ..
        } = self
        else {
            self.look_or_stop(cache);
            return;
        };
        if !cache.is_live() {
            return; // nothing is served; it is all dropped when the listener is back
        }
        let n = sent.fetch_add(1, Ordering::Relaxed) + 1;
        let marker = format!("#{token:x}:{n}");
        let sent_ok = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&marker)
            .execute(&db.pool)
            .await
            .is_ok();
        if !(sent_ok && hears(seen, n).await) {
            tracing::warn!("the change listener did not confirm a write; dropping the cards cache");
            cache.clear();
        }
    }

    /// Inside a write's transaction, before its commit: what [`Feed::marked`]
    /// needs to return, after the commit, once the cache has dropped what the
    /// write changed. On Postgres the marker is notified in the transaction
    /// itself, so it reaches the listener with the commit, after the
    /// notifications of its triggers, and costs no round trip of its own
    /// after it; and the writer need not wait for it before starting its next
    /// transaction (see `sync::ingest`).
    ///
    /// For one writer of the process only (the webhook intake): its markers
    /// are numbered apart from [`Feed::written`]'s, in the order of its
    /// commits (a marker of a transaction rolled back is never heard, and
    /// nobody waits for it), so hearing one means every earlier one was heard.
    pub async fn mark_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        cache: &CardsCache,
    ) -> sqlx::Result<Mark> {
        let Feed::Postgres {
            token, in_tx_sent, ..
        } = self
        else {
            return Ok(Mark::Look);
        };
        if !cache.is_live() {
            return Ok(Mark::Nothing); // nothing is served; it is all dropped when the listener is back
        }
        let n = in_tx_sent.fetch_add(1, Ordering::Relaxed) + 1;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("#{token:x}:t{n}"))
            .execute(&mut *conn)
            .await?;
        Ok(Mark::Heard(n))
    }

    /// After the commit of a transaction [`Feed::mark_in`] marked: return
    /// once the cache has dropped what it changed (bounded, as [`Feed::written`]).
    pub async fn marked(&self, mark: Mark, cache: &CardsCache) {
        match (mark, self) {
            (Mark::Nothing, _) => {}
            (Mark::Look, _) => self.look_or_stop(cache),
            (Mark::Heard(n), Feed::Postgres { in_tx_seen, .. }) => {
                if !hears(in_tx_seen, n).await {
                    tracing::warn!(
                        "the change listener did not confirm a write; dropping the cards cache"
                    );
                    cache.clear();
                }
            }
            (Mark::Heard(_), Feed::Sqlite(_)) => {}
        }
    }
}

/// What [`Feed::marked`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Nothing to wait for (no cache, or it serves nothing now).
    Nothing,
    /// SQLite: look at the change log.
    Look,
    /// Postgres: the listener has heard this in-transaction marker.
    Heard(u64),
}

/// Whether the listener hears marker `n` (or a later one) within a second.
async fn hears(seen: &watch::Sender<u64>, n: u64) -> bool {
    let mut seen = seen.subscribe();
    tokio::time::timeout(Duration::from_secs(1), seen.wait_for(|s| *s >= n))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// The cards cache of a `Db`, and how it hears of changes.
pub struct CachedCards {
    pub cache: CardsCache,
    pub feed: Feed,
    /// Dropped with this: stops the Postgres listener.
    alive: watch::Sender<()>,
}

impl std::fmt::Debug for CachedCards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCards")
            .field("live", &self.cache.is_live())
            .field("bytes", &self.cache.bytes())
            .finish()
    }
}

impl CachedCards {
    /// A cache of `budget` bytes for `db`, and the task that keeps it right:
    /// on SQLite it looks at the change log every `look_every`, on Postgres
    /// it listens. The cache serves once the task has started.
    pub fn start(
        db: &Db,
        url: &str,
        sqlite_path: Option<&Path>,
        budget: usize,
        look_every: Duration,
    ) -> std::sync::Arc<CachedCards> {
        let cards = std::sync::Arc::new(CachedCards {
            cache: CardsCache::new(budget, false),
            feed: Feed::new(db.backend, sqlite_path),
            alive: watch::Sender::new(()),
        });
        let weak = std::sync::Arc::downgrade(&cards);
        match cards.feed {
            Feed::Sqlite(_) => {
                cards.feed.look_or_stop(&cards.cache);
                tokio::spawn(look_often(weak, look_every));
            }
            Feed::Postgres { .. } => {
                tokio::spawn(listen(url.to_string(), weak));
            }
        }
        cards
    }
}

/// SQLite: look at the change log every `period` as long as `cards` exists.
async fn look_often(cards: std::sync::Weak<CachedCards>, period: Duration) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(c) = cards.upgrade() else {
            return;
        };
        c.feed.look_or_stop(&c.cache);
    }
}

/// Postgres: listen for changes as long as `cards` exists, keeping its cache
/// live only while listening.
async fn listen(url: String, cards: std::sync::Weak<CachedCards>) {
    let Some((mine, mut alive)) = cards.upgrade().and_then(|c| match &c.feed {
        Feed::Postgres { token, .. } => Some((format!("#{token:x}:"), c.alive.subscribe())),
        Feed::Sqlite(_) => None,
    }) else {
        return;
    };
    loop {
        let heard = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            // Everything committed from now on is heard; what came before is dropped.
            match cards.upgrade() {
                Some(c) => c.cache.set_live(true),
                None => return Ok(()),
            }
            while let Some(n) = listener.try_recv().await? {
                let Some(c) = cards.upgrade() else {
                    return Ok(());
                };
                heard(&c, &mine, n.payload());
            }
            Ok::<(), sqlx::Error>(()) // connection lost
        };
        tokio::select! {
            result = heard => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "the bucket change listener failed; retrying");
                }
            }
            _ = alive.changed() => return, // the Db is gone
        }
        match cards.upgrade() {
            Some(c) => c.cache.set_live(false),
            None => return,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One notification: a bucket to evict, or a write marker of this process.
fn heard(cards: &CachedCards, mine: &str, payload: &str) {
    if let Some(marker) = payload.strip_prefix(mine) {
        let Feed::Postgres {
            seen, in_tx_seen, ..
        } = &cards.feed
        else {
            return;
        };
        let (seen, marker) = match marker.strip_prefix('t') {
            Some(n) => (in_tx_seen, n),
            None => (seen, marker),
        };
        if let Ok(m) = marker.parse::<u64>() {
            seen.send_if_modified(|s| {
                let newer = m > *s;
                *s = (*s).max(m);
                newer
            });
        }
    } else if !payload.starts_with('#') {
        cards.cache.evict(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cards_cache::Lookup;

    fn cached(cache: &CardsCache, bucket: &str) {
        if let Lookup::Miss(t) = cache.get(bucket, "u") {
            cache.put(t, bucket, "u", &None);
        }
    }

    fn is_cached(cache: &CardsCache, bucket: &str) -> bool {
        matches!(cache.get(bucket, "u"), Lookup::Hit(_))
    }

    type Log = Vec<(i64, String)>;

    fn catch_up(last: &mut Option<i64>, cache: &CardsCache, log: &Log) {
        let newest = log.last().map_or(0, |(s, _)| *s);
        super::catch_up::<()>(
            last,
            cache,
            |after, limit| {
                Ok(log
                    .iter()
                    .filter(|(s, _)| *s > after)
                    .take(limit as usize)
                    .cloned()
                    .collect())
            },
            || Ok(newest),
        )
        .unwrap();
    }

    #[test]
    fn the_sqlite_log_evicts_what_changed_and_a_gap_drops_everything() {
        let cache = CardsCache::new(1 << 20, true);
        let feed = &mut None;
        let mut log: Log = vec![(1, "a".into()), (2, "b".into())];
        catch_up(feed, &cache, &log); // starts at the end of the log
        for b in ["a", "b", "c"] {
            cached(&cache, b);
        }
        log.push((3, "a".into()));
        catch_up(feed, &cache, &log);
        assert!(!is_cached(&cache, "a"), "a changed");
        assert!(is_cached(&cache, "b") && is_cached(&cache, "c"));
        // Rows 4..=5 were pruned before this reader saw them: start afresh.
        cached(&cache, "a");
        log = vec![(6, "z".into())];
        catch_up(feed, &cache, &log);
        for b in ["a", "b", "c"] {
            assert!(!is_cached(&cache, b), "{b} dropped after the gap");
        }
        cached(&cache, "b");
        log.push((7, "c".into()));
        catch_up(feed, &cache, &log);
        assert!(is_cached(&cache, "b"), "in step again after the gap");
    }
}
