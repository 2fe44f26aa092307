//! Trials: a local grant of a plan for some days, once per bucket ever.

use sqlx::Row;

use super::{Db, now};

#[derive(Debug, Clone)]
pub struct Trial {
    pub bucket_id: String,
    pub plan: String,
    pub started_at: i64,
    pub ends_at: i64,
    pub ended: bool,
}

impl Trial {
    /// Still running: not ended by the job and not past its end.
    pub fn running(&self) -> bool {
        !self.ended && self.ends_at > now()
    }
}

impl Db {
    pub async fn trial(&self, bucket_id: &str) -> sqlx::Result<Option<Trial>> {
        let row = sqlx::query(
            "SELECT bucket_id, plan, started_at, ends_at, ended FROM trials WHERE bucket_id = $1",
        )
        .bind(bucket_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Trial {
                bucket_id: r.try_get("bucket_id")?,
                plan: r.try_get("plan")?,
                started_at: r.try_get("started_at")?,
                ends_at: r.try_get("ends_at")?,
                ended: r.try_get::<i64, _>("ended")? != 0,
            })
        })
        .transpose()
    }

    /// Grant a trial unless the bucket ever had one. Returns false when it already had one
    /// (the primary key makes two concurrent claims grant one trial).
    pub async fn start_trial(
        &self,
        bucket_id: &str,
        plan: &str,
        days: u32,
    ) -> sqlx::Result<Option<Trial>> {
        let started_at = now();
        let ends_at = started_at + i64::from(days) * 86_400;
        let done = sqlx::query(
            "INSERT INTO trials (bucket_id, plan, started_at, ends_at, ended) VALUES ($1, $2, $3, $4, 0) \
             ON CONFLICT (bucket_id) DO NOTHING",
        )
        .bind(bucket_id)
        .bind(plan)
        .bind(started_at)
        .bind(ends_at)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() > 0).then(|| Trial {
            bucket_id: bucket_id.into(),
            plan: plan.into(),
            started_at,
            ends_at,
            ended: false,
        }))
    }

    /// Mark every trial past its end as ended; returns the buckets whose trial ended.
    pub async fn end_expired_trials(&self) -> sqlx::Result<Vec<String>> {
        let t = now();
        let rows = sqlx::query("SELECT bucket_id FROM trials WHERE ended = 0 AND ends_at <= $1")
            .bind(t)
            .fetch_all(&self.pool)
            .await?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("bucket_id"))
            .collect::<sqlx::Result<_>>()?;
        sqlx::query("UPDATE trials SET ended = 1 WHERE ended = 0 AND ends_at <= $1")
            .bind(t)
            .execute(&self.pool)
            .await?;
        Ok(ids)
    }

    /// End a running trial now (a paid subscription replaces it).
    pub async fn end_trial(&self, bucket_id: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE trials SET ended = 1, ends_at = CASE WHEN ends_at > $2 THEN $2 ELSE ends_at END WHERE bucket_id = $1 AND ended = 0")
            .bind(bucket_id)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
