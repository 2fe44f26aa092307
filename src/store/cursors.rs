//! Named positions of the sync jobs.

use sqlx::Row;

use super::{Db, now};

impl Db {
    pub async fn cursor(&self, name: &str) -> sqlx::Result<Option<(String, i64)>> {
        sqlx::query("SELECT value, updated_at FROM sync_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| Ok((r.try_get("value")?, r.try_get("updated_at")?)))
            .transpose()
    }

    pub async fn set_cursor(&self, name: &str, value: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO sync_cursors (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn clear_cursor(&self, name: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM sync_cursors WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// [`Db::set_cursor`] inside an open transaction (the full reconcile moves its
/// progress cursor in the same commit as the rows it wrote).
pub async fn set_cursor_in(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    value: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sync_cursors (name, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
