//! Postgres: the large JSON texts (event bodies, mirrored objects) are
//! compressed with lz4 instead of Postgres's default pglz.
//!
//! A Stripe event is 1-6 KB of pretty-printed JSON and a mirrored object
//! 1-4 KB, so nearly every inbox row and many object rows are over the size
//! at which Postgres compresses a row's largest values. With pglz that
//! compression was a fifth of the database's CPU during a burst of Stripe's
//! sign-up events; lz4 is several times faster for a similar size on JSON.
//! It applies to values written from then on. Postgres 14+ built with lz4
//! has it (Debian's and the official images do); elsewhere pglz stays.

use sqlx::AssertSqlSafe;

use super::{Backend, Db, Kind};

/// Set lz4 on the large JSON columns that do not have it yet (a catalog
/// look-up when they all do, so restarts take no table lock).
pub async fn use_lz4(db: &Db) -> sqlx::Result<()> {
    if db.backend != Backend::Postgres {
        return Ok(());
    }
    let columns = std::iter::once(("stripe_events", "body"))
        .chain(Kind::ALL.iter().map(|k| (k.table(), "data")));
    for (table, column) in columns {
        let current = sqlx::query_scalar::<_, String>(
            "SELECT attcompression::text FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_optional(&db.pool)
        .await;
        match current {
            Ok(Some(c)) if c == "l" => continue,
            Ok(_) => {}
            // Before Postgres 14 there is no per-column compression.
            Err(e) => {
                tracing::debug!(error = %e, "no per-column compression: keeping pglz");
                return Ok(());
            }
        }
        let alter = format!("ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4");
        if let Err(e) = sqlx::query(AssertSqlSafe(alter)).execute(&db.pool).await {
            tracing::info!(error = %e, "this Postgres cannot compress with lz4: keeping pglz");
            return Ok(());
        }
    }
    Ok(())
}
