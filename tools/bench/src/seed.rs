//! The seeder: buckets (owner `user{i}`) linked to Stripe customers, and
//! optionally each customer's object and cards in the cache, written through
//! paysync's own store functions in batches (one commit per batch).

use paysync::store::{Db, Watermark};
use paysync::sync::apply::store_in_bucket;

use crate::standin::{card, customer_object};

/// The bucket id of bucket `i` (24 lowercase hex).
pub fn bucket_id(i: usize) -> String {
    format!("be{i:022x}")
}

/// The Stripe customer of bucket `i`.
pub fn customer_id(i: usize) -> String {
    format!("cus_bench{i:06}")
}

/// The owner of bucket `i`.
pub fn user_id(i: usize) -> String {
    format!("user{i}")
}

/// Create `n` buckets linked to their customers; with `cards > 0` also store
/// each customer and `cards` cards (Stripe's shapes) in the cache.
pub async fn seed(db: &Db, n: usize, cards: usize) -> anyhow::Result<()> {
    let now = paysync::store::now();
    let wm = Watermark {
        created: now - 60,
        event: "seed".into(),
    };
    let mut i = 0;
    while i < n {
        let end = (i + 500).min(n);
        let mut tx = db.begin_write().await?;
        for b in i..end {
            let bucket = bucket_id(b);
            let customer = customer_id(b);
            sqlx::query(
                "INSERT INTO buckets (id, name, stripe_customer_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&bucket)
            .bind(format!("bench bucket {b}"))
            .bind(&customer)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO members (bucket_id, user_id, role) VALUES ($1, $2, 'owner')")
                .bind(&bucket)
                .bind(user_id(b))
                .execute(&mut *tx)
                .await?;
            if cards > 0 {
                let objs: Vec<_> = (0..cards)
                    .map(|k| card(b, k, &customer, now - 60))
                    .collect();
                let cust = customer_object(b, now - 60, None);
                for obj in std::iter::once(&cust).chain(objs.iter()) {
                    store_in_bucket(&mut tx, obj, &wm, false, false, &bucket, &customer).await?;
                }
            }
        }
        tx.commit().await?;
        i = end;
    }
    Ok(())
}

/// Create buckets `first..first + n` (owner `user{i}`) with no Stripe
/// customer yet: a customer whose `metadata.bucket_id` names one links it.
pub async fn seed_unlinked(db: &Db, first: usize, n: usize) -> anyhow::Result<()> {
    let now = paysync::store::now();
    for start in (first..first + n).step_by(500) {
        let end = (start + 500).min(first + n);
        let mut tx = db.begin_write().await?;
        for b in start..end {
            sqlx::query("INSERT INTO buckets (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(bucket_id(b))
                .bind(format!("bench bucket {b}"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO members (bucket_id, user_id, role) VALUES ($1, $2, 'owner')")
                .bind(bucket_id(b))
                .bind(user_id(b))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
