//! Reads of the hottest route in one query. `GET …/payment/cards` needs the
//! caller's membership, the bucket's live sources and its customer (for the
//! default card); asked one by one that is four round trips to the database
//! (on SQLite, four hand-offs to its worker thread), which cost far more than
//! the SQL itself. Here they are one statement, and the same access rule.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use super::buckets::{Bucket, Role};
use super::objects::Stored;

/// What the cards list route reads.
pub struct BucketSources {
    pub bucket: Bucket,
    pub role: Role,
    /// Live sources (cards, SEPA, PaymentMethods), newest first.
    pub sources: Vec<Stored>,
    /// The bucket's live customer row, if cached.
    pub customer: Option<Stored>,
}

/// Shared with `sqlite_read`, which runs it without sqlx on SQLite files.
pub(super) const SQL: &str = "SELECT b.id AS b_id, b.name AS b_name, b.stripe_customer_id AS b_customer, \
       b.created_at AS b_created_at, m.role AS m_role, \
       s.id AS s_id, s.bucket_id AS s_bucket_id, s.customer_id AS s_customer_id, s.status AS s_status, \
       s.parent_id AS s_parent_id, s.created AS s_created, s.data AS s_data, s.deleted AS s_deleted, \
       s.wm_created AS s_wm_created, s.wm_event AS s_wm_event, \
       c.id AS c_id, c.bucket_id AS c_bucket_id, c.customer_id AS c_customer_id, c.status AS c_status, \
       c.parent_id AS c_parent_id, c.created AS c_created, c.data AS c_data, c.deleted AS c_deleted, \
       c.wm_created AS c_wm_created, c.wm_event AS c_wm_event \
     FROM members m \
     JOIN buckets b ON b.id = m.bucket_id \
     LEFT JOIN stripe_sources s ON s.bucket_id = b.id AND s.deleted = 0 \
     LEFT JOIN stripe_customers c ON c.id = b.stripe_customer_id AND c.deleted = 0 \
     WHERE m.bucket_id = $1 AND m.user_id = $2 \
     ORDER BY s.created DESC, s.id DESC \
     LIMIT 1000";

/// A `Stored` from the columns prefixed `p` (None when the LEFT JOIN found nothing).
fn stored(row: &AnyRow, p: &str) -> sqlx::Result<Option<Stored>> {
    let col = |name: &str| format!("{p}{name}");
    let Some(id) = row.try_get::<Option<String>, _>(col("id").as_str())? else {
        return Ok(None);
    };
    let data: String = row.try_get(col("data").as_str())?;
    Ok(Some(Stored {
        id,
        bucket_id: row.try_get(col("bucket_id").as_str())?,
        customer_id: row.try_get(col("customer_id").as_str())?,
        status: row.try_get(col("status").as_str())?,
        parent_id: row.try_get(col("parent_id").as_str())?,
        created: row.try_get(col("created").as_str())?,
        data: serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        deleted: row.try_get::<i64, _>(col("deleted").as_str())? != 0,
        wm_created: row.try_get(col("wm_created").as_str())?,
        wm_event: row.try_get(col("wm_event").as_str())?,
    }))
}

impl Db {
    /// The bucket, the caller's role, its live sources and its customer, in
    /// one query; None when the bucket does not exist or the user is not a member.
    pub async fn bucket_sources_for_member(
        &self,
        bucket_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<BucketSources>> {
        if let Some(path) = &self.sqlite_path {
            return super::sqlite_read::bucket_sources_for_member(path, bucket_id, user_id);
        }
        let rows = sqlx::query(SQL)
            .bind(bucket_id)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let role: String = first.try_get("m_role")?;
        let bucket = Bucket {
            id: first.try_get("b_id")?,
            name: first.try_get("b_name")?,
            stripe_customer_id: first.try_get("b_customer")?,
            created_at: first.try_get("b_created_at")?,
        };
        let customer = stored(first, "c_")?;
        let mut sources = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(s) = stored(row, "s_")? {
                sources.push(s);
            }
        }
        Ok(Some(BucketSources {
            bucket,
            role: Role::parse(&role).unwrap_or(Role::Member),
            sources,
            customer,
        }))
    }
}
