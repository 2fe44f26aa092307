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
//! Same SQL and same rows as [`Db::bucket_sources_for_member`] on sqlx (it is
//! the one used on Postgres and for in-memory SQLite).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};

use super::buckets::{Bucket, Role};
use super::objects::Stored;
use super::reads::{BucketSources, SQL};

thread_local! {
    /// This thread's read connections, one per database file (tests open several).
    static CONNECTIONS: RefCell<Vec<(PathBuf, Connection)>> = const { RefCell::new(Vec::new()) };
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
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

/// [`Db::bucket_sources_for_member`](super::Db::bucket_sources_for_member) on this thread's connection.
pub fn bucket_sources_for_member(
    path: &Path,
    bucket_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<BucketSources>> {
    with_connection(path, |conn| {
        let mut stmt = conn.prepare_cached(SQL)?;
        let mut rows = stmt.query((bucket_id, user_id))?;
        let Some(first) = rows.next()? else {
            return Ok(None);
        };
        // Columns by position (looking names up costs more than reading them): see `reads::SQL`.
        let role: String = first.get(4)?;
        let bucket = Bucket {
            id: first.get(0)?,
            name: first.get(1)?,
            stripe_customer_id: first.get(2)?,
            created_at: first.get(3)?,
        };
        let customer = stored(first, CUSTOMER)?;
        let mut sources: Vec<Stored> = stored(first, SOURCE)?.into_iter().collect();
        while let Some(row) = rows.next()? {
            sources.extend(stored(row, SOURCE)?);
        }
        Ok(Some(BucketSources {
            bucket,
            role: Role::parse(&role).unwrap_or(Role::Member),
            sources,
            customer,
        }))
    })
    .map_err(|e| sqlx::Error::Protocol(format!("SQLite read: {e}")))
}

/// Position of the first source column (`s_id`) and of the first customer column (`c_id`).
const SOURCE: usize = 5;
const CUSTOMER: usize = 15;

/// A `Stored` from the ten columns starting at `at` (None when the LEFT JOIN found nothing).
fn stored(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<Stored>> {
    let Some(id) = row.get::<_, Option<String>>(at)? else {
        return Ok(None);
    };
    let data: String = row.get(at + 6)?;
    Ok(Some(Stored {
        id,
        bucket_id: row.get(at + 1)?,
        customer_id: row.get(at + 2)?,
        status: row.get(at + 3)?,
        parent_id: row.get(at + 4)?,
        created: row.get(at + 5)?,
        data: serde_json::from_str(&data).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                at + 6,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })?,
        deleted: row.get::<_, i64>(at + 7)? != 0,
        wm_created: row.get(at + 8)?,
        wm_event: row.get(at + 9)?,
    }))
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
             CREATE TABLE stripe_sources (id TEXT, bucket_id TEXT, customer_id TEXT, status TEXT, parent_id TEXT,
               created INTEGER, data TEXT, deleted INTEGER, wm_created INTEGER, wm_event TEXT);
             CREATE TABLE stripe_customers (id TEXT, bucket_id TEXT, customer_id TEXT, status TEXT, parent_id TEXT,
               created INTEGER, data TEXT, deleted INTEGER, wm_created INTEGER, wm_event TEXT);",
        )
        .unwrap();
        let stmt = conn.prepare(SQL).unwrap();
        let names = stmt.column_names();
        assert_eq!(
            &names[..5],
            ["b_id", "b_name", "b_customer", "b_created_at", "m_role"]
        );
        assert_eq!((names[SOURCE], names[SOURCE + 6]), ("s_id", "s_data"));
        assert_eq!(
            (names[CUSTOMER], names[CUSTOMER + 9]),
            ("c_id", "c_wm_event")
        );
    }
}
