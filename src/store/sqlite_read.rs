//! The hottest read on SQLite, without the hand-off to sqlx's worker thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and passes every
//! statement and every row across channels: for a read of a few index lookups
//! that hand-off (two thread wake-ups per query, more under load) costs far
//! more than the SQL. The cards list, paysync's hottest route, is read here
//! instead on a read-only SQLite connection owned by the calling runtime
//! thread, synchronously. In WAL mode a reader never waits for the writer, so
//! the statement blocks the thread for microseconds, like any CPU work.
//!
//! Same SQL and same rows as [`Db::bucket_cards_for_member`] on sqlx (it is
//! the one used on Postgres and for in-memory SQLite).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};

use super::reads::{BucketCards, CUSTOMER, SOURCE, SQL, SourceColumns, defaults, push_card};

thread_local! {
    /// This thread's read connections, one per database file (tests open several).
    static CONNECTIONS: RefCell<Vec<(PathBuf, Connection)>> = const { RefCell::new(Vec::new()) };
}

pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "cache_size", -512)?;
    Ok(conn)
}

/// Run `f` on this thread's read connection to `path`, opening it on first use.
fn with_connection<R>(
    path: &Path,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    CONNECTIONS.with(|cell| {
        let mut conns = cell.borrow_mut();
        let i = match conns.iter().position(|(p, _)| p == path) {
            Some(i) => i,
            None => {
                conns.push((path.to_path_buf(), open(path)?));
                conns.len() - 1
            }
        };
        f(&conns[i].1)
    })
}

fn sqlite_error(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("SQLite read: {e}"))
}

/// [`Db::bucket_cards_for_member`](super::Db::bucket_cards_for_member) on this thread's connection.
pub fn bucket_cards_for_member(
    path: &Path,
    bucket_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<BucketCards>> {
    with_connection(path, |conn| read(conn, bucket_id, user_id)).map_err(sqlite_error)
}

fn read(
    conn: &Connection,
    bucket_id: &str,
    user_id: &str,
) -> rusqlite::Result<Option<BucketCards>> {
    let mut stmt = conn.prepare_cached(SQL)?;
    let mut rows = stmt.query((bucket_id, user_id))?;
    let Some(first) = rows.next()? else {
        return Ok(None);
    };
    let defaults = defaults(first.get(CUSTOMER)?, first.get(CUSTOMER + 1)?).map_err(decode)?;
    let mut cards = Vec::with_capacity(4);
    push_card(&mut cards, source(first)?).map_err(decode)?;
    while let Some(row) = rows.next()? {
        push_card(&mut cards, source(row)?).map_err(decode)?;
    }
    Ok(Some(BucketCards { cards, defaults }))
}

fn source(row: &Row<'_>) -> rusqlite::Result<SourceColumns> {
    Ok((
        row.get(SOURCE)?,
        row.get(SOURCE + 1)?,
        row.get(SOURCE + 2)?,
        row.get(SOURCE + 3)?,
    ))
}

fn decode(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(SOURCE, rusqlite::types::Type::Text, Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions above name the columns of `reads::SQL`.
    #[test]
    fn column_positions_match_the_sql() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE members (bucket_id TEXT, user_id TEXT, role TEXT);
             CREATE TABLE buckets (id TEXT, name TEXT, stripe_customer_id TEXT, created_at INTEGER);
             CREATE TABLE stripe_sources (id TEXT, bucket_id TEXT, status TEXT, created INTEGER,
               data TEXT, deleted INTEGER, view TEXT);
             CREATE TABLE stripe_customers (id TEXT, data TEXT, deleted INTEGER, view TEXT);",
        )
        .unwrap();
        let stmt = conn.prepare(SQL).unwrap();
        let names = stmt.column_names();
        assert_eq!(
            &names[SOURCE..SOURCE + 4],
            ["s_id", "s_status", "s_view", "s_data"]
        );
        assert_eq!(&names[CUSTOMER..CUSTOMER + 2], ["c_view", "c_data"]);
    }
}
