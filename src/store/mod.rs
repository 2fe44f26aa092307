//! The local cache: buckets and members, trials, mirrored Stripe objects, the
//! webhook inbox and sync cursors, on SQLite (default, embedded) or Postgres.
//!
//! One code path serves both backends through sqlx's `Any` driver: the SQL is
//! portable (`$1` placeholders, `ON CONFLICT … DO UPDATE`), numbers are BIGINT
//! and JSON is TEXT, so a behaviour tested on one backend is the same code on
//! the other.

pub mod buckets;
pub mod cards_cache;
pub mod changes;
pub mod compression;
pub mod cursors;
pub mod inbox;
pub mod objects;
pub mod ops;
pub mod pg_read;
pub mod reads;
pub mod sqlite_read;
pub mod trials;
pub mod views;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

pub use changes::Mark as CardsMark;
pub use objects::{Kind, Mirror, Stored, Watermark, WriteOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the cache database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// The SQLite file, to tell a deleted database from a live one.
    sqlite_path: Option<PathBuf>,
    /// Postgres: the connections of the hottest read (see `pg_read`).
    pg_reads: Option<std::sync::Arc<pg_read::PgReads>>,
    /// The in-memory cards answers, once a server turned them on (`with_cards_cache`).
    pub(crate) cards: Option<std::sync::Arc<changes::CachedCards>>,
    url: std::sync::Arc<str>,
}

/// SQLite connections of the pool (one writer at a time; readers in parallel).
const SQLITE_POOL: u32 = 8;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Check a database URL without connecting (start-up validation).
pub fn check_url(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url::Url::parse(url).with_context(|| "DATABASE_URL: not a valid postgres:// URL")?;
        Ok(Backend::Postgres)
    } else {
        bail!(
            "DATABASE_URL: must start with sqlite:// or postgres:// (got {:?})",
            redact(url)
        )
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Run on every Postgres connection (the pool's and `pg_read`'s). Every query
/// here is a few index lookups. Postgres may still plan a parallel scan for a
/// prepared statement's generic plan once its statistics guess many rows per
/// customer, and starting the workers costs milliseconds a query (it made the
/// full reconcile 3× slower).
pub(super) const POSTGRES_SESSION: &str = "SET max_parallel_workers_per_gather = 0";

/// A connection kept by a writer that writes all the time (the webhook
/// intake), instead of one taken from the pool per transaction.
///
/// The pool hands its idle connections out in turn, and on SQLite each
/// connection has its own page cache, which a transaction must drop when
/// another connection wrote since: under a webhook burst every batch started
/// on a cold cache and read its B-tree pages back from the file. A writer
/// that keeps its connection through a burst finds its own last writes
/// cached.
#[derive(Default)]
pub struct Held {
    conn: Option<Kept>,
    /// Open a connection of its own instead of taking one from the pool.
    own: bool,
}

enum Kept {
    Pooled(sqlx::pool::PoolConnection<sqlx::Any>),
    Own(sqlx::AnyConnection),
}

impl Held {
    /// A holder that opens its connection itself, outside the pool: for a
    /// writer on a runtime of its own (`sync::ingest`). A Postgres
    /// connection's socket is served by the runtime that opened it, and a
    /// pool connection opened by the main runtime would wake the writer only
    /// when that runtime's busy workers next look at their sockets.
    pub fn own() -> Held {
        Held {
            conn: None,
            own: true,
        }
    }

    /// The kept connection, taken (or opened) the first time.
    pub async fn get(&mut self, db: &Db) -> sqlx::Result<&mut sqlx::AnyConnection> {
        if self.conn.is_none() {
            self.conn = Some(match self.own {
                true => Kept::Own(db.connect_one().await?),
                false => Kept::Pooled(db.pool.acquire().await?),
            });
        }
        match self.conn.as_mut() {
            Some(Kept::Pooled(conn)) => Ok(&mut **conn),
            Some(Kept::Own(conn)) => Ok(conn),
            None => Err(sqlx::Error::PoolClosed),
        }
    }

    /// Is a connection kept?
    pub fn is_kept(&self) -> bool {
        self.conn.is_some()
    }

    /// Give the connection back to the pool, or close it (when the writer
    /// has nothing to do: the pool's idle timeout and lifetime apply to it
    /// again).
    pub async fn release(&mut self) {
        if let Some(Kept::Own(conn)) = self.conn.take() {
            use sqlx::Connection;
            let _ = conn.close().await;
        }
    }

    /// After an error: the connection may be broken, so it is closed, not
    /// returned to the pool (whose connections are not tested on the way
    /// out); the next [`Held::get`] takes another.
    pub fn drop_connection(&mut self) {
        if let Some(Kept::Pooled(conn)) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// What every new connection runs first (the pool's and [`Db::connect_one`]'s).
async fn set_up(conn: &mut sqlx::AnyConnection, backend: Backend) -> sqlx::Result<()> {
    if backend == Backend::Sqlite {
        // WAL: readers never wait for the writer. synchronous=FULL: a commit
        // is on disk before we answer (webhooks are acknowledged only then).
        // temp_store=MEMORY: a multi-row upsert inside a transaction keeps a
        // statement journal (the pages it changes, as they were, to undo that
        // statement alone); in a temporary file that was a third of the bytes
        // the webhook intake wrote, and writing it 5 % of the server's CPU
        // during a burst. In memory it is a few hundred KB for one statement.
        conn.execute(
            "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; \
             PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL; \
             PRAGMA cache_size=-512; PRAGMA temp_store=MEMORY;",
        )
        .await?;
    } else {
        conn.execute(POSTGRES_SESSION).await?;
    }
    Ok(())
}

impl Db {
    /// Connect (creating a SQLite file if missing). Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        install_default_drivers();
        let backend = check_url(url)?;
        let (url, max) = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                (format!("{url}{sep}mode=rwc"), SQLITE_POOL)
            }
            Backend::Sqlite => (url.to_string(), SQLITE_POOL),
            Backend::Postgres => (url.to_string(), 16),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            // No ping before each use: it was a second round trip for every query
            // (a sixth of the server's CPU on the Postgres read path). A connection
            // that broke fails its query once and is closed; the next is new.
            .test_before_acquire(false)
            .after_connect(move |conn, _| Box::pin(set_up(conn, backend)))
            .connect(&url)
            .await
            .with_context(|| format!("DATABASE_URL: cannot connect to {}", redact(&url)))?;
        Ok(Db {
            pool,
            backend,
            sqlite_path: sqlite_file(&url),
            pg_reads: (backend == Backend::Postgres)
                .then(|| std::sync::Arc::new(pg_read::PgReads::new(&url))),
            cards: None,
            url: url.into(),
        })
    }

    /// An in-memory SQLite database: each connection opened has one of its
    /// own, so nothing but the pool's may be used.
    pub fn in_memory(&self) -> bool {
        self.backend == Backend::Sqlite && self.sqlite_path.is_none()
    }

    /// A connection outside the pool, set up as the pool's are.
    pub async fn connect_one(&self) -> sqlx::Result<sqlx::AnyConnection> {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
        set_up(&mut conn, self.backend).await?;
        Ok(conn)
    }

    /// Connect and bring the schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Db> {
        let db = Self::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("running database migrations")?;
        let filled = inbox::fill_customers(self)
            .await
            .context("filling in the customer of stored events")?;
        if filled > 0 {
            tracing::info!(
                events = filled,
                "stored the customer of inbox events stored before it had one"
            );
        }
        changes::install(self)
            .await
            .context("installing the bucket change triggers")?;
        compression::use_lz4(self)
            .await
            .context("setting the compression of large columns")?;
        Ok(())
    }

    /// Keep cards answers in memory, up to `budget` bytes (0: not at all).
    /// Only where every change is heard: a SQLite file (whose change log is
    /// looked at every `look_every` for other processes' writes), or Postgres
    /// (whose listener this starts). Call inside the runtime. An in-memory
    /// SQLite database is read as before.
    pub fn with_cards_cache(mut self, budget: usize, look_every: Duration) -> Db {
        let heard = self.sqlite_path.is_some() || self.backend == Backend::Postgres;
        if budget > 0 && heard {
            self.cards = Some(changes::CachedCards::start(
                &self,
                &self.url,
                self.sqlite_path.as_deref(),
                budget,
                look_every,
            ));
        }
        self
    }

    /// Bytes of cards answers held in memory now (0 without the cache).
    pub fn cards_cached_bytes(&self) -> usize {
        self.cards.as_ref().map_or(0, |c| c.cache.bytes())
    }

    /// In a write's transaction, just before its commit: what to pass to
    /// [`Db::cards_marked`] after it (see `changes::Feed::mark_in`; for the
    /// webhook intake's writer only).
    pub async fn cards_mark_in(&self, conn: &mut sqlx::AnyConnection) -> sqlx::Result<CardsMark> {
        match &self.cards {
            Some(cards) => cards.feed.mark_in(conn, &cards.cache).await,
            None => Ok(CardsMark::Nothing),
        }
    }

    /// After the commit of a transaction [`Db::cards_mark_in`] marked: returns
    /// once the cards cache has dropped what it changed.
    pub async fn cards_marked(&self, mark: CardsMark) {
        if let Some(cards) = &self.cards {
            cards.feed.marked(mark, &cards.cache).await;
        }
    }

    /// Call after a write of this process committed: on Postgres, returns once
    /// the cards cache has dropped what the write changed (see `changes`).
    pub async fn cards_written(&self) {
        if let Some(cards) = &self.cards {
            cards.feed.written(self, &cards.cache).await;
        }
    }

    /// A transaction that will write. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`): a deferred transaction that reads first and
    /// writes later fails with "database is locked" when another writer got
    /// in between, instead of waiting its turn (busy_timeout does not apply).
    pub async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.pool.begin_with(self.begin_statement()).await
    }

    /// [`Db::begin_write`] on a connection the caller keeps (see [`Held`]).
    pub async fn begin_write_on<'c>(
        &self,
        conn: &'c mut sqlx::AnyConnection,
    ) -> sqlx::Result<sqlx::Transaction<'c, sqlx::Any>> {
        use sqlx::Connection;
        conn.begin_with(self.begin_statement()).await
    }

    fn begin_statement(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Is the database usable right now? (`/readyz`)
    pub async fn ping(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.sqlite_path
            && !path.exists()
        {
            bail!("database file {} is gone", path.display());
        }
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .context("database did not answer within 2s")??;
        Ok(())
    }
}

/// Rows one multi-row statement writes, at most `most`. On SQLite a prepared
/// statement over many rows is tens of KB, and a pool connection caches one
/// per row count it has run: with up to 64 rows a statement, the connections
/// of a burst of Stripe's sign-ups held megabytes of them (SQLite's heap grew
/// from 3 to 14 MB). So 16 rows there; on Postgres each statement is a
/// round trip, so as many as allowed.
pub(crate) fn rows_per_statement(conn: &sqlx::AnyConnection, most: usize) -> usize {
    if conn.backend_name() == "SQLite" {
        most.min(16)
    } else {
        most
    }
}

/// Placeholders of a statement over many rows: `rows` groups of `cols`
/// parameters, `(…), (…)`, bound in the order they appear; `first` is the
/// number of the first on Postgres (`$first`). `(conn, 1, n, k)` is the list
/// of an `IN (…)` (parenthesised). Each placeholder stands for one bound
/// value: a list used twice in a statement takes [`numbered`] instead.
///
/// On SQLite they are anonymous (`?`): SQLite's parser looks a numbered one
/// (`$7`) up among the statement's parameters by a linear scan, and so does
/// sqlx each time it binds one, so a statement of n numbered parameters cost
/// n² to prepare and again to bind (an eighth of the intake writer's CPU).
pub(crate) fn placeholders(
    conn: &sqlx::AnyConnection,
    rows: usize,
    cols: usize,
    first: usize,
) -> String {
    if conn.backend_name() == "SQLite" {
        let group = format!("({})", vec!["?"; cols].join(", "));
        vec![group; rows].join(", ")
    } else {
        numbered(rows, cols, first)
    }
}

/// The rows of a query over a list of ids, in statements of at most a
/// thousand: `sql` makes the statement from the list's placeholders (an
/// `IN` list, parenthesised), one per id, bound in order.
pub(crate) async fn fetch_in(
    conn: &mut sqlx::AnyConnection,
    ids: &[&str],
    sql: impl Fn(&str) -> String,
) -> sqlx::Result<Vec<sqlx::any::AnyRow>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(1000) {
        let list = placeholders(conn, 1, chunk.len(), 1);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql(&list)));
        for id in chunk {
            q = q.bind(*id);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// [`placeholders`] numbered on every backend (`$first`, …), for a list a
/// statement uses more than once.
pub(crate) fn numbered(rows: usize, cols: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * (cols * 6 + 4));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + r * cols + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Unix seconds now.
pub fn now() -> i64 {
    crate::auth::now_secs() as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_on() {
        assert_eq!(super::numbered(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::numbered(1, 2, 2), "($2, $3)");
    }
}
