//! Mirrored Stripe objects, one table per kind, all of the same shape (see
//! `migrations/0001_init.sql`). Every write goes through [`Db::write_object`],
//! which applies the watermark rule: a row changes only when the write is newer
//! than what the row already reflects, and a tombstone is final. Webhook
//! events, the reconciler and the write routes all store through here, so the
//! rule holds whoever writes.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Db, now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Customer,
    /// Cards, SEPA debit sources and card PaymentMethods.
    Source,
    Subscription,
    Invoice,
    Charge,
    PaymentIntent,
    /// The link of an invoice to the payment that paid it (Stripe API basil and later).
    InvoicePayment,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Customer,
        Kind::Source,
        Kind::Subscription,
        Kind::Invoice,
        Kind::Charge,
        Kind::PaymentIntent,
        Kind::InvoicePayment,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Kind::Customer => "stripe_customers",
            Kind::Source => "stripe_sources",
            Kind::Subscription => "stripe_subscriptions",
            Kind::Invoice => "stripe_invoices",
            Kind::Charge => "stripe_charges",
            Kind::PaymentIntent => "stripe_payment_intents",
            Kind::InvoicePayment => "stripe_invoice_payments",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Source => "source",
            Kind::Subscription => "subscription",
            Kind::Invoice => "invoice",
            Kind::Charge => "charge",
            Kind::PaymentIntent => "payment_intent",
            Kind::InvoicePayment => "invoice_payment",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What one write stores. `data` borrows the object where the caller keeps
/// it (an event being applied): a Stripe object is a tree of a few hundred
/// allocations, and copying it for every write was a tenth of the intake's CPU.
#[derive(Debug, Clone)]
pub struct Mirror<'a> {
    pub kind: Kind,
    pub id: String,
    pub customer_id: String,
    pub bucket_id: Option<String>,
    /// Kind-specific state: subscription/invoice/charge/intent status, or a source's type.
    pub status: Option<String>,
    /// Kind-specific link: a subscription's plan, an invoice's subscription, a
    /// charge's or an invoice payment's invoice.
    pub parent_id: Option<String>,
    pub created: i64,
    /// The whole Stripe object.
    pub data: std::borrow::Cow<'a, serde_json::Value>,
    /// `data` as compact JSON text when the caller has it (a webhook's
    /// object, see `sync::compact`): stored as is. None: `data` is serialized.
    pub text: Option<&'a str>,
    /// Stripe deleted or detached it: store a tombstone.
    pub deleted: bool,
}

impl Mirror<'_> {
    /// The row's `view` column (see [`super::views`]).
    pub fn view(&self) -> Option<String> {
        super::views::view_of(self.kind, self.status.as_deref(), &self.data)
    }

    /// `data` as the JSON text the row stores.
    pub fn data_text(&self) -> String {
        match (&self.data, self.text) {
            // Text given with the object borrowed: the object is that text parsed.
            (std::borrow::Cow::Borrowed(_), Some(text)) => text.to_string(),
            _ => self.data.to_string(),
        }
    }

    /// The same, owning its object (to be kept after the object is gone).
    pub fn into_owned(self) -> Mirror<'static> {
        Mirror {
            data: std::borrow::Cow::Owned(self.data.into_owned()),
            text: None,
            ..self
        }
    }
}

/// Which state of Stripe a write reflects: the `created` second of the event
/// (or of our own call), and the event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub created: i64,
    pub event: String,
}

impl Watermark {
    /// A write of an object Stripe just answered us with.
    pub fn api(what: &str) -> Self {
        Watermark {
            created: now(),
            event: format!("api:{what}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The row now holds this object.
    Written,
    /// The row already reflects a newer state (or is a tombstone): nothing changed.
    Stale,
    /// Same second as the row's watermark but different content: the caller
    /// should re-fetch the object from Stripe and `force` that.
    Tie,
}

/// A row as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: String,
    pub bucket_id: Option<String>,
    pub customer_id: String,
    pub status: Option<String>,
    pub parent_id: Option<String>,
    pub created: i64,
    pub data: serde_json::Value,
    pub deleted: bool,
    pub wm_created: i64,
    pub wm_event: String,
}

const COLUMNS: &str =
    "id, bucket_id, customer_id, status, parent_id, created, data, deleted, wm_created, wm_event";

fn stored_from_row(row: &AnyRow) -> sqlx::Result<Stored> {
    let data: String = row.try_get("data")?;
    Ok(Stored {
        id: row.try_get("id")?,
        bucket_id: row.try_get("bucket_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        parent_id: row.try_get("parent_id")?,
        created: row.try_get("created")?,
        data: serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        deleted: row.try_get::<i64, _>("deleted")? != 0,
        wm_created: row.try_get("wm_created")?,
        wm_event: row.try_get("wm_event")?,
    })
}

/// Paging of list reads: newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: Option<i64>,
    /// Only rows older than this object (by `created`, then id).
    pub starting_after: Option<String>,
}

impl Db {
    /// Store an object under the watermark rule.
    ///
    /// `force` is for an object just re-fetched from Stripe after a tie: it wins
    /// over a row of the same second (but still never over a newer one, nor a tombstone).
    pub async fn write_object(
        &self,
        m: &Mirror<'_>,
        wm: &Watermark,
        force: bool,
    ) -> sqlx::Result<WriteOutcome> {
        let outcome = {
            let mut conn = self.pool.acquire().await?;
            write_object_in(&mut conn, m, wm, force).await?
        };
        self.cards_written().await;
        Ok(outcome)
    }

    /// One object by id, tombstones included.
    pub async fn object(&self, kind: Kind, id: &str) -> sqlx::Result<Option<Stored>> {
        let mut conn = self.pool.acquire().await?;
        object_in(&mut conn, kind, id).await
    }

    /// One live object of this bucket (None for another bucket's id or a tombstone).
    pub async fn bucket_object(
        &self,
        kind: Kind,
        bucket_id: &str,
        id: &str,
    ) -> sqlx::Result<Option<Stored>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE id = $1 AND bucket_id = $2 AND deleted = 0",
            kind.table()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(bucket_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| stored_from_row(&r))
            .transpose()
    }

    /// The bucket's live objects of a kind, newest first.
    pub async fn bucket_objects(
        &self,
        kind: Kind,
        bucket_id: &str,
        page: &Page,
    ) -> sqlx::Result<Vec<Stored>> {
        self.bucket_objects_where(kind, bucket_id, "", page).await
    }

    /// Like [`Db::bucket_objects`], with an extra SQL condition on `status` (a
    /// constant written by the caller, never user input).
    pub async fn bucket_objects_where(
        &self,
        kind: Kind,
        bucket_id: &str,
        status_condition: &str,
        page: &Page,
    ) -> sqlx::Result<Vec<Stored>> {
        let table = kind.table();
        let extra = if status_condition.is_empty() {
            String::new()
        } else {
            format!(" AND {status_condition}")
        };
        let limit = page.limit.unwrap_or(1000).clamp(1, 1000);
        let rows = if let Some(after) = &page.starting_after {
            let Some(anchor) = self.bucket_object(kind, bucket_id, after).await? else {
                return Ok(vec![]);
            };
            let sql = format!(
                "SELECT {COLUMNS} FROM {table} WHERE bucket_id = $1 AND deleted = 0{extra} \
                 AND (created < $2 OR (created = $2 AND id < $3)) ORDER BY created DESC, id DESC LIMIT $4"
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(bucket_id)
                .bind(anchor.created)
                .bind(&anchor.id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
        } else {
            let sql = format!(
                "SELECT {COLUMNS} FROM {table} WHERE bucket_id = $1 AND deleted = 0{extra} \
                 ORDER BY created DESC, id DESC LIMIT $2"
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(bucket_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
        };
        rows.iter().map(stored_from_row).collect()
    }

    /// Every object (tombstones too) of a Stripe customer: what the full reconcile compares against.
    pub async fn customer_objects(
        &self,
        kind: Kind,
        customer_id: &str,
    ) -> sqlx::Result<Vec<Stored>> {
        let mut conn = self.pool.acquire().await?;
        customer_objects_in(&mut conn, kind, customer_id).await
    }

    /// Attach rows stored before their customer was linked to a bucket.
    pub async fn adopt_customer_objects(
        &self,
        customer_id: &str,
        bucket_id: &str,
    ) -> sqlx::Result<()> {
        {
            let mut conn = self.pool.acquire().await?;
            adopt_customer_objects_in(&mut conn, customer_id, bucket_id).await?;
        }
        self.cards_written().await;
        Ok(())
    }
}

// The same operations on one connection (or an open transaction: `&mut *tx`).
// The statements are built once per table and reused, so a batch of writes
// costs no formatting per row.

/// The `DO UPDATE SET` of an upsert into `table`: a write never unlinks a
/// row from its bucket.
fn update_set(table: &str) -> String {
    format!(
        "bucket_id = COALESCE(excluded.bucket_id, {table}.bucket_id), customer_id = excluded.customer_id, \
         status = excluded.status, parent_id = excluded.parent_id, created = excluded.created, \
         data = excluded.data, deleted = excluded.deleted, wm_created = excluded.wm_created, \
         wm_event = excluded.wm_event, synced_at = excluded.synced_at, view = excluded.view"
    )
}

fn upsert_sql(kind: Kind, force: bool) -> &'static str {
    use std::sync::OnceLock;
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            let table = kind.table();
            for cmp in [">", ">="] {
                out.push(format!(
                    "INSERT INTO {table} ({COLUMNS}, synced_at, view) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (id) DO UPDATE SET {UPDATE_SET} \
                     WHERE {table}.deleted = 0 AND excluded.wm_created {cmp} {table}.wm_created",
                    UPDATE_SET = update_set(table)
                ));
            }
        }
        out
    });
    let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    &all[i * 2 + usize::from(force)]
}

fn select_by_id_sql(kind: Kind) -> &'static str {
    use std::sync::OnceLock;
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        Kind::ALL
            .iter()
            .map(|k| format!("SELECT {COLUMNS} FROM {} WHERE id = $1", k.table()))
            .collect()
    });
    &all[Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)]
}

/// The 12 parameters of one row of an upsert, in the order of
/// `({COLUMNS}, synced_at, view)`.
fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    m: &'q Mirror<'_>,
    wm: &'q Watermark,
    synced: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&m.id)
        .bind(m.bucket_id.as_deref())
        .bind(&m.customer_id)
        .bind(m.status.as_deref())
        .bind(m.parent_id.as_deref())
        .bind(m.created)
        .bind(m.data_text())
        .bind(m.deleted as i64)
        .bind(wm.created)
        .bind(&wm.event)
        .bind(synced)
        .bind(m.view())
}

/// [`Db::write_object`] on a given connection or transaction.
pub async fn write_object_in(
    conn: &mut AnyConnection,
    m: &Mirror<'_>,
    wm: &Watermark,
    force: bool,
) -> sqlx::Result<WriteOutcome> {
    let done = bind_row(sqlx::query(upsert_sql(m.kind, force)), m, wm, now())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() > 0 {
        return Ok(WriteOutcome::Written);
    }
    unwritten_outcome(conn, m, wm, force).await
}

/// Why an upsert under the watermark rule left its row alone: the row is
/// newer or a tombstone (`Stale`), or of the same second with other content
/// (`Tie`: only Stripe can order the two).
pub async fn unwritten_outcome(
    conn: &mut AnyConnection,
    m: &Mirror<'_>,
    wm: &Watermark,
    force: bool,
) -> sqlx::Result<WriteOutcome> {
    let row = object_in(conn, m.kind, &m.id).await?;
    Ok(outcome_against(row.as_ref(), m, wm, force))
}

/// [`unwritten_outcome`] given the row as it is now (None: there is none).
pub fn outcome_against(
    row: Option<&Stored>,
    m: &Mirror<'_>,
    wm: &Watermark,
    force: bool,
) -> WriteOutcome {
    let Some(row) = row else {
        return WriteOutcome::Stale;
    };
    let same_second = row.wm_created == wm.created;
    // A delete is a change even when the object's copy in it is the same as the row's.
    let differs = row.data != *m.data || m.deleted;
    if !row.deleted && same_second && !force && differs && row.wm_event != wm.event {
        WriteOutcome::Tie
    } else {
        WriteOutcome::Stale
    }
}

/// Rows of one kind by id (see `fetch_in`); ids without a row are absent.
pub async fn objects_in(
    conn: &mut AnyConnection,
    kind: Kind,
    ids: &[&str],
) -> sqlx::Result<std::collections::HashMap<String, Stored>> {
    let rows = super::fetch_in(conn, ids, |list| {
        format!("SELECT {COLUMNS} FROM {} WHERE id IN {list}", kind.table())
    })
    .await?;
    rows.iter()
        .map(|row| stored_from_row(row).map(|stored| (stored.id.clone(), stored)))
        .collect()
}

/// [`Db::object`] on a given connection or transaction.
pub async fn object_in(
    conn: &mut AnyConnection,
    kind: Kind,
    id: &str,
) -> sqlx::Result<Option<Stored>> {
    sqlx::query(select_by_id_sql(kind))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| stored_from_row(&r))
        .transpose()
}

/// [`Db::customer_objects`] on a given connection or transaction.
pub async fn customer_objects_in(
    conn: &mut AnyConnection,
    kind: Kind,
    customer_id: &str,
) -> sqlx::Result<Vec<Stored>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {} WHERE customer_id = $1 ORDER BY created, id",
        kind.table()
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(customer_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(stored_from_row).collect()
}

/// Every cached row of a Stripe customer — the customer row and its sources,
/// subscriptions, invoices, invoice payments and charges — as (kind, id,
/// stored JSON text, tombstone), unparsed and in one round trip: the full
/// reconcile compares Stripe's listings with these in memory.
pub async fn customer_texts_all_in(
    conn: &mut AnyConnection,
    customer_id: &str,
) -> sqlx::Result<Vec<(Kind, String, String, bool)>> {
    const SQL: &str = "SELECT 'customer' AS kind, id, data, deleted FROM stripe_customers WHERE id = $1 \
        UNION ALL SELECT 'source' AS kind, id, data, deleted FROM stripe_sources WHERE customer_id = $2 \
        UNION ALL SELECT 'subscription' AS kind, id, data, deleted FROM stripe_subscriptions WHERE customer_id = $3 \
        UNION ALL SELECT 'invoice' AS kind, id, data, deleted FROM stripe_invoices WHERE customer_id = $4 \
        UNION ALL SELECT 'charge' AS kind, id, data, deleted FROM stripe_charges WHERE customer_id = $5 \
        UNION ALL SELECT 'invoice_payment' AS kind, id, data, deleted FROM stripe_invoice_payments WHERE customer_id = $6";
    let mut query = sqlx::query(SQL);
    for _ in 0..6 {
        query = query.bind(customer_id);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.try_get("kind")?;
        if let Some(kind) = Kind::parse(&kind) {
            out.push((
                kind,
                r.try_get("id")?,
                r.try_get("data")?,
                r.try_get::<i64, _>("deleted")? != 0,
            ));
        }
    }
    Ok(out)
}

/// [`Db::adopt_customer_objects`] on a given connection or transaction.
pub async fn adopt_customer_objects_in(
    conn: &mut AnyConnection,
    customer_id: &str,
    bucket_id: &str,
) -> sqlx::Result<()> {
    adopt_customers_objects_in(conn, &[(customer_id.to_string(), bucket_id.to_string())]).await
}

/// Attach the rows stored without a bucket of several customers (customer
/// id, bucket id) to their buckets. Such rows are rare (the customer's bucket
/// was deleted), and a new customer has none: one statement looks for them
/// first, for all the customers at once.
pub async fn adopt_customers_objects_in(
    conn: &mut AnyConnection,
    links: &[(String, String)],
) -> sqlx::Result<()> {
    for chunk in links.chunks(100) {
        let list = super::numbered(1, chunk.len(), 1);
        let probe = Kind::ALL
            .iter()
            .map(|k| {
                // A customer row's id is its customer (the primary key finds it).
                // `COALESCE`: no planner walks the rows without a bucket instead.
                let key = if *k == Kind::Customer {
                    "id"
                } else {
                    "customer_id"
                };
                format!(
                    "SELECT {key} AS customer FROM {} WHERE {key} IN {list} AND COALESCE(bucket_id, '') = ''",
                    k.table()
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ");
        let mut q = sqlx::query(AssertSqlSafe(probe));
        for (customer, _) in chunk {
            q = q.bind(customer);
        }
        let unlinked: Vec<String> = q
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get("customer"))
            .collect::<sqlx::Result<_>>()?;
        for (customer, bucket) in chunk.iter().filter(|(c, _)| unlinked.contains(c)) {
            for kind in Kind::ALL {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE {} SET bucket_id = $1 WHERE customer_id = $2 AND bucket_id IS NULL",
                    kind.table()
                )))
                .bind(bucket)
                .bind(customer)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// Writes of many objects in one statement per kind (what
/// [`write_object_in`] does, for a batch): the ids written. An object whose
/// row is newer (with `force`: newer than its second) or a tombstone is left
/// alone and not returned. One id appears once per call (a row cannot be
/// upserted twice in one statement).
pub async fn write_objects_in(
    conn: &mut AnyConnection,
    rows: &[(Mirror<'_>, Watermark)],
    force: bool,
) -> sqlx::Result<Vec<(Kind, String)>> {
    let mut written = Vec::new();
    let synced = now();
    let cmp = if force { ">=" } else { ">" };
    for kind in Kind::ALL {
        let of_kind: Vec<&(Mirror<'_>, Watermark)> =
            rows.iter().filter(|(m, _)| m.kind == kind).collect();
        // 12 parameters a row, 50 rows a statement (16 on SQLite, see
        // `rows_per_statement`; at 250 rows, with numbered parameters that
        // SQLite and sqlx look up by a linear scan, binding was a fifth of
        // a full reconcile's CPU: see `placeholders`).
        for chunk in of_kind.chunks(super::rows_per_statement(conn, 50)) {
            let table = kind.table();
            let mut sql = format!("INSERT INTO {table} ({COLUMNS}, synced_at, view) VALUES ");
            sql.push_str(&super::placeholders(conn, chunk.len(), 12, 1));
            sql.push_str(&format!(
                " ON CONFLICT (id) DO UPDATE SET {} \
                 WHERE {table}.deleted = 0 AND excluded.wm_created {cmp} {table}.wm_created \
                 RETURNING id",
                update_set(table)
            ));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (m, wm) in chunk {
                q = bind_row(q, m, wm, synced);
            }
            for row in q.fetch_all(&mut *conn).await? {
                written.push((kind, row.try_get("id")?));
            }
        }
    }
    Ok(written)
}
