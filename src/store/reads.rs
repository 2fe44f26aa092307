//! Reads of the hottest route in one query. `GET …/payment/cards` needs the
//! caller's membership, the bucket's live cards and its customer's default
//! card; asked one by one that is four round trips to the database (on
//! SQLite, four hand-offs to its worker thread), which cost far more than the
//! SQL itself. Here they are one statement, and the same access rule. The
//! cards come out as the JSON text the API answers with (their stored
//! `view`, see `store::views`), so the read parses and serializes nothing.

use std::sync::LazyLock;

use metrics::Counter;
use sqlx::Row;

use super::Db;
use super::cards_cache::{Answer, Lookup};
use super::views;

/// What the cards list answer is made of (the caller being a member).
pub struct BucketCards {
    /// The bucket's live cards, newest first.
    pub cards: Vec<CardText>,
    /// The customer's default card candidates: (default PaymentMethod, default source).
    pub defaults: (Option<String>, Option<String>),
}

/// A card as the API shows it, as JSON text.
pub struct CardText {
    pub id: String,
    pub json: String,
}

/// The columns and joins of the cards read, for one bucket and member
/// (`$1`, `$2`), newest card first. A macro so that [`SQL`] and the batched
/// read of `pg_read` are one text (`concat!` takes only literals).
macro_rules! cards_select {
    ($bucket:literal, $user:literal) => {
        concat!(
            "SELECT s.id AS s_id, s.status AS s_status, \
               CASE WHEN s.view = '' THEN s.data ELSE s.view END AS s_view, \
               CASE WHEN s.view IS NULL THEN s.data END AS s_data, \
               c.view AS c_view, CASE WHEN c.view IS NULL THEN c.data END AS c_data, \
               s.created AS s_created \
             FROM members m \
             JOIN buckets b ON b.id = m.bucket_id \
             LEFT JOIN stripe_sources s ON s.bucket_id = b.id AND s.deleted = 0 \
               AND (s.view IS NULL OR s.view <> 'null') \
             LEFT JOIN stripe_customers c ON c.id = b.stripe_customer_id AND c.deleted = 0 \
             WHERE m.bucket_id = ",
            $bucket,
            " AND m.user_id = ",
            $user,
            " ORDER BY s.created DESC, s.id DESC \
             LIMIT 1000"
        )
    };
}
pub(super) use cards_select;

/// Shared with `sqlite_read`, which runs it without sqlx on SQLite files.
/// `data` is read only for rows stored without a view (see `store::views`).
pub(super) const SQL: &str = cards_select!("$1", "$2");

/// Position in [`SQL`] of the first source column (`s_id`) and of the first
/// customer column (`c_view`): columns are read by position (looking names up
/// costs more than reading them).
pub(super) const SOURCE: usize = 0;
pub(super) const CUSTOMER: usize = 4;

/// The source columns of one row: id, status, view, data.
pub(super) type SourceColumns = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Add a row's card to `cards` (a source that is not a card adds nothing).
pub(super) fn push_card(
    cards: &mut Vec<CardText>,
    (id, status, view, data): SourceColumns,
) -> serde_json::Result<()> {
    let Some(id) = id else {
        return Ok(()); // the LEFT JOIN found no source
    };
    let json = match (view, data) {
        (Some(view), _) => view,
        (None, Some(data)) => {
            let data: serde_json::Value = serde_json::from_str(&data)?;
            views::source_view(status.as_deref(), &data).to_string()
        }
        (None, None) => return Ok(()),
    };
    if json != "null" {
        cards.push(CardText { id, json });
    }
    Ok(())
}

/// The customer's default card candidates from its view, else from its data.
pub(super) fn defaults(
    view: Option<String>,
    data: Option<String>,
) -> serde_json::Result<(Option<String>, Option<String>)> {
    Ok(match (view, data) {
        (Some(view), _) => views::parse_default_ids(&view),
        (None, Some(data)) => {
            let data: serde_json::Value = serde_json::from_str(&data)?;
            let (pm, source) = views::default_ids(&data);
            (pm.map(str::to_string), source.map(str::to_string))
        }
        (None, None) => (None, None),
    })
}

/// Cards answers served from memory, and read from the database instead
/// (`paysync_cards_cache_{hits,misses}_total`). Handles kept: this is the
/// hottest path, and a lookup by name costs more than the count.
static CACHE_HITS: LazyLock<Counter> = LazyLock::new(|| {
    crate::metrics::handle();
    metrics::counter!("paysync_cards_cache_hits_total")
});
static CACHE_MISSES: LazyLock<Counter> = LazyLock::new(|| {
    crate::metrics::handle();
    metrics::counter!("paysync_cards_cache_misses_total")
});

impl Db {
    /// The cards list answer for a member of the bucket (None: no such bucket,
    /// or not a member), from memory when the cards cache holds it.
    pub async fn cards_answer(
        &self,
        bucket_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<Answer>> {
        let Some(cards) = &self.cards else {
            return Ok(self
                .bucket_cards_for_member(bucket_id, user_id)
                .await?
                .map(views::cards_answer));
        };
        let ticket = match cards.cache.get(bucket_id, user_id) {
            Lookup::Hit(answer) => {
                CACHE_HITS.increment(1);
                return Ok(Some(answer));
            }
            Lookup::Miss(ticket) => ticket,
        };
        CACHE_MISSES.increment(1);
        let Some(found) = self.bucket_cards_for_member(bucket_id, user_id).await? else {
            return Ok(None);
        };
        let answer = views::cards_answer(found);
        cards.cache.put(ticket, bucket_id, user_id, &answer);
        Ok(Some(answer))
    }

    /// The bucket, the caller's role, its live cards and its customer's default
    /// card ids, in one query; None when the bucket does not exist or the user
    /// is not a member.
    pub async fn bucket_cards_for_member(
        &self,
        bucket_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<BucketCards>> {
        if let Some(path) = &self.sqlite_path {
            return super::sqlite_read::bucket_cards_for_member(path, bucket_id, user_id);
        }
        if let Some(pg) = &self.pg_reads {
            return pg.bucket_cards_for_member(bucket_id, user_id).await;
        }
        let rows = sqlx::query(SQL)
            .bind(bucket_id)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        from_rows(&rows)
    }
}

/// The answer from the rows of [`SQL`] as sqlx returns them (the `Any` driver
/// here, the native Postgres one in `pg_read`); columns by position.
pub(super) fn from_rows<R>(rows: &[R]) -> sqlx::Result<Option<BucketCards>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    let defaults =
        defaults(first.try_get(CUSTOMER)?, first.try_get(CUSTOMER + 1)?).map_err(decode)?;
    let mut cards = Vec::with_capacity(rows.len());
    for row in rows {
        let columns = (
            row.try_get(SOURCE)?,
            row.try_get(SOURCE + 1)?,
            row.try_get(SOURCE + 2)?,
            row.try_get(SOURCE + 3)?,
        );
        push_card(&mut cards, columns).map_err(decode)?;
    }
    Ok(Some(BucketCards { cards, defaults }))
}
