//! Buckets (the teams that pay) and their members.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Db, now};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, poem_openapi::Enum,
)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
    /// Owners and admins may change billing; members may only look.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub id: String,
    pub name: String,
    pub stripe_customer_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: String,
    pub role: Role,
}

fn bucket_from_row(row: &AnyRow) -> sqlx::Result<Bucket> {
    Ok(Bucket {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        stripe_customer_id: row.try_get("stripe_customer_id")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Is this a bucket id (24 lowercase hex characters)?
pub fn valid_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh random bucket id.
pub fn new_id() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode(bytes)
}

impl Db {
    /// Create the bucket, or replace its name and members. Returns true when it was created.
    pub async fn put_bucket(&self, id: &str, name: &str, members: &[Member]) -> sqlx::Result<bool> {
        let mut tx = self.begin_write().await?;
        let existed = sqlx::query("SELECT id FROM buckets WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if existed {
            sqlx::query("UPDATE buckets SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM members WHERE bucket_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("INSERT INTO buckets (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        for m in members {
            sqlx::query(
                "INSERT INTO members (bucket_id, user_id, role) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket_id, user_id) DO UPDATE SET role = excluded.role",
            )
            .bind(id)
            .bind(&m.user_id)
            .bind(m.role.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.cards_written().await;
        Ok(!existed)
    }

    /// Add a member, or change the role of an existing one. False if the bucket does not exist.
    pub async fn set_member(
        &self,
        bucket_id: &str,
        user_id: &str,
        role: Role,
    ) -> sqlx::Result<bool> {
        if self.bucket(bucket_id).await?.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO members (bucket_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (bucket_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(bucket_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&self.pool)
        .await?;
        self.cards_written().await;
        Ok(true)
    }

    /// Delete a bucket and its members and trial. The mirrored Stripe rows stay
    /// (they belong to Stripe's customer) but no longer resolve to a bucket.
    pub async fn delete_bucket(&self, id: &str) -> sqlx::Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM members WHERE bucket_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM trials WHERE bucket_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for table in super::objects::Kind::ALL.iter().map(|k| k.table()) {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET bucket_id = NULL WHERE bucket_id = $1"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM buckets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.cards_written().await;
        Ok(done.rows_affected() > 0)
    }

    pub async fn bucket(&self, id: &str) -> sqlx::Result<Option<Bucket>> {
        sqlx::query("SELECT id, name, stripe_customer_id, created_at FROM buckets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| bucket_from_row(&r))
            .transpose()
    }

    pub async fn members(&self, bucket_id: &str) -> sqlx::Result<Vec<Member>> {
        let rows =
            sqlx::query("SELECT user_id, role FROM members WHERE bucket_id = $1 ORDER BY user_id")
                .bind(bucket_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(Member {
                    user_id: r.try_get("user_id")?,
                    role: Role::parse(&role).unwrap_or(Role::Member),
                })
            })
            .collect()
    }

    /// The bucket and the caller's role in it, in one indexed lookup; None when
    /// the bucket does not exist or the user is not a member.
    pub async fn bucket_for_member(
        &self,
        bucket_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<(Bucket, Role)>> {
        let row = sqlx::query(
            "SELECT b.id, b.name, b.stripe_customer_id, b.created_at, m.role \
             FROM members m JOIN buckets b ON b.id = m.bucket_id \
             WHERE m.bucket_id = $1 AND m.user_id = $2",
        )
        .bind(bucket_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: String = r.try_get("role")?;
            Ok((
                bucket_from_row(&r)?,
                Role::parse(&role).unwrap_or(Role::Member),
            ))
        })
        .transpose()
    }

    /// Every bucket the user is a member of, with the user's role.
    pub async fn buckets_of(&self, user_id: &str) -> sqlx::Result<Vec<(Bucket, Role)>> {
        let rows = sqlx::query(
            "SELECT b.id, b.name, b.stripe_customer_id, b.created_at, m.role \
             FROM members m JOIN buckets b ON b.id = m.bucket_id \
             WHERE m.user_id = $1 ORDER BY b.created_at, b.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok((
                    bucket_from_row(r)?,
                    Role::parse(&role).unwrap_or(Role::Member),
                ))
            })
            .collect()
    }

    /// Link the bucket to its Stripe customer (first writer wins; returns the linked id).
    pub async fn link_customer(
        &self,
        bucket_id: &str,
        customer_id: &str,
    ) -> sqlx::Result<Option<String>> {
        let linked = {
            let mut conn = self.pool.acquire().await?;
            link_customer_in(&mut conn, bucket_id, customer_id).await?
        };
        self.cards_written().await;
        Ok(linked)
    }

    /// The bucket a Stripe customer belongs to.
    pub async fn bucket_of_customer(&self, customer_id: &str) -> sqlx::Result<Option<String>> {
        let mut conn = self.pool.acquire().await?;
        bucket_of_customer_in(&mut conn, customer_id).await
    }

    /// Every bucket that has a Stripe customer, in id order (the full reconcile walks this).
    pub async fn buckets_with_customer(&self) -> sqlx::Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT id, stripe_customer_id FROM buckets WHERE stripe_customer_id IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("stripe_customer_id")?)))
            .collect()
    }
}

// The same lookups on one connection or open transaction (the apply path runs
// a batch of events in one transaction).

/// Link a customer to a bucket that has none; the bucket's customer afterwards
/// (first link wins; None when the bucket does not exist).
pub async fn link_customer_in(
    conn: &mut AnyConnection,
    bucket_id: &str,
    customer_id: &str,
) -> sqlx::Result<Option<String>> {
    let done = sqlx::query(
        "UPDATE buckets SET stripe_customer_id = $1 WHERE id = $2 AND stripe_customer_id IS NULL",
    )
    .bind(customer_id)
    .bind(bucket_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        return Ok(Some(customer_id.to_string()));
    }
    sqlx::query("SELECT stripe_customer_id FROM buckets WHERE id = $1")
        .bind(bucket_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<Option<String>, _>("stripe_customer_id"))
        .transpose()
        .map(Option::flatten)
}

/// The bucket a Stripe customer belongs to.
pub async fn bucket_of_customer_in(
    conn: &mut AnyConnection,
    customer_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query("SELECT id FROM buckets WHERE stripe_customer_id = $1")
        .bind(customer_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()
}

/// The buckets of many customers in one query (customer id → bucket id);
/// customers of no bucket are absent.
pub async fn buckets_of_customers_in(
    conn: &mut AnyConnection,
    customer_ids: &[&str],
) -> sqlx::Result<std::collections::HashMap<String, String>> {
    let rows = super::fetch_in(conn, customer_ids, |list| {
        format!("SELECT id, stripe_customer_id FROM buckets WHERE stripe_customer_id IN {list}")
    })
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("stripe_customer_id")?, row.try_get("id")?)))
        .collect()
}
