//! Full reconcile: for every bucket's Stripe customer, fetch the customer with
//! its sources, card PaymentMethods, subscriptions, invoices (with their
//! InvoicePayments, at API versions that have them) and charges, write
//! what differs from the cache (under the watermark rule: a listing never
//! overwrites a row an event made newer), tombstone what Stripe no longer has,
//! and count the drift per kind. Resumable: the last finished bucket is kept in
//! a cursor, so an interrupted run continues where it stopped.
//!
//! Stripe bounds a backfill, not the database: one task pages through Stripe,
//! one customer after another (the same requests, in the same order, under the
//! request budget), while the writer stores the customers fetched so far in
//! shared transactions — a commit (an fsync) per batch of customers rather
//! than per row — and moves the progress cursor in that same commit.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use stripe_billing::invoice::ListInvoice;
use stripe_billing::subscription::{ListSubscription, ListSubscriptionStatus};
use stripe_client_core::{RequestBuilder, StripeMethod, StripeRequest};
use stripe_core::charge::ListCharge;
use stripe_core::customer::RetrieveCustomer;
use stripe_payment::payment_method::{ListPaymentMethod, ListPaymentMethodType};
use tokio::sync::mpsc;

use sqlx::AnyConnection;

use crate::store::cursors::set_cursor_in;
use crate::store::objects::{
    Stored as Row, customer_objects_in, customer_texts_all_in, write_objects_in,
};
use crate::store::{Db, Kind, Mirror, Watermark, WriteOutcome, now};
use crate::stripe::pages::{PAGE, list_all};
use crate::stripe::shape::invoice as invoice_shape;
use crate::stripe::{Stripe, invoices, json};
use crate::sync::apply::{Stored, mirror_of, store_in_bucket};

/// Cursor: the last bucket a full run finished (cleared when a run completes).
pub const CURSOR_PROGRESS: &str = "reconcile:full:after";
/// Cursor: unix time of the last complete full run.
pub const CURSOR_LAST_SUCCESS: &str = "reconcile:full:last_success";
/// Cursor: the drift per kind the last complete full run fixed (a JSON object),
/// so every replica's sync-health page shows it, not only the leader's.
pub const CURSOR_LAST_DRIFT: &str = "reconcile:full:last_drift";

/// Rows written or tombstoned, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift(pub BTreeMap<&'static str, u64>);

impl Drift {
    pub fn add(&mut self, kind: Kind, n: u64) {
        if n > 0 {
            *self.0.entry(kind.name()).or_default() += n;
        }
    }
    pub fn merge(&mut self, other: &Drift) {
        for (k, v) in &other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn get(&self, kind: Kind) -> u64 {
        self.0.get(kind.name()).copied().unwrap_or(0)
    }
}

/// What a full run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub buckets: u64,
    /// Buckets skipped because an earlier, interrupted run had finished them.
    pub resumed_after: Option<String>,
    pub drift: Drift,
}

/// Progress callback: (buckets done, buckets in this run, bucket just finished).
pub type Progress<'a> = &'a (dyn Fn(u64, u64, &str) + Send + Sync);

/// Customers written per transaction at most (whatever has been fetched is
/// written together, so a slow commit makes the next batch bigger).
const MAX_BATCH: usize = 64;
/// How many fetched customers may wait for the writer.
const AHEAD: usize = 64;

/// Reconcile every bucket that has a Stripe customer, resuming an interrupted run.
pub async fn full(db: &Db, stripe: &Stripe, progress: Progress<'_>) -> anyhow::Result<Report> {
    let resumed_after = db.cursor(CURSOR_PROGRESS).await?.map(|(v, _)| v);
    let todo: Vec<(String, String)> = db
        .buckets_with_customer()
        .await?
        .into_iter()
        .filter(|(bucket, _)| {
            resumed_after
                .as_deref()
                .is_none_or(|after| bucket.as_str() > after)
        })
        .collect();
    let total = todo.len() as u64;
    let mut report = Report {
        resumed_after,
        ..Default::default()
    };
    // The fetcher stops at the first failure (and when the writer goes away).
    let (tx, mut rx) = mpsc::channel::<(String, String, anyhow::Result<Fetched>)>(AHEAD);
    let fetcher = {
        let stripe = stripe.clone();
        tokio::spawn(async move {
            for (bucket, customer) in todo {
                let fetched = fetch(&stripe, &customer).await;
                let failed = fetched.is_err();
                if tx.send((bucket, customer, fetched)).await.is_err() || failed {
                    break;
                }
            }
        })
    };
    let written = write_all(db, stripe, &mut rx, &mut report, total, progress).await;
    drop(rx);
    let _ = fetcher.await;
    written?;
    db.clear_cursor(CURSOR_PROGRESS).await?;
    db.set_cursor(CURSOR_LAST_SUCCESS, &now().to_string())
        .await?;
    db.set_cursor(CURSOR_LAST_DRIFT, &serde_json::to_string(&report.drift.0)?)
        .await?;
    for (kind, n) in &report.drift.0 {
        metrics::gauge!("paysync_reconcile_drift", "kind" => *kind).set(*n as f64);
    }
    metrics::gauge!("paysync_reconcile_last_success_seconds").set(now() as f64);
    Ok(report)
}

/// Store fetched customers in batches until the fetcher is done or failed.
async fn write_all(
    db: &Db,
    stripe: &Stripe,
    rx: &mut mpsc::Receiver<(String, String, anyhow::Result<Fetched>)>,
    report: &mut Report,
    total: u64,
    progress: Progress<'_>,
) -> anyhow::Result<()> {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut txn = db.begin_write().await?;
        let mut writes = Writes::default();
        // Buckets done in the open transaction: reported once it is committed.
        let mut done: Vec<(String, Drift)> = Vec::new();
        let mut failure = None;
        for (bucket, customer, fetched) in batch {
            let fetched = match fetched {
                Ok(f) => f,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let (drift, missing) =
                write_listed(&mut txn, &mut writes, &bucket, &customer, &fetched).await?;
            if missing.is_empty() {
                set_cursor_in(&mut txn, CURSOR_PROGRESS, &bucket).await?;
                done.push((bucket, drift));
                continue;
            }
            // Rows Stripe did not list need a call to Stripe each: not inside a transaction.
            let mut drift = drift;
            done.push((bucket.clone(), Drift::default()));
            writes.flush(&mut txn, &mut done).await?;
            if let Some((_, written)) = done.pop() {
                drift.merge(&written);
            }
            txn.commit().await?;
            db.cards_written().await;
            finish(report, std::mem::take(&mut done), total, progress);
            drift.merge(
                &settle_missing(db, stripe, &bucket, &customer, missing, &fetched.wm).await?,
            );
            db.set_cursor(CURSOR_PROGRESS, &bucket).await?;
            finish(report, vec![(bucket, drift)], total, progress);
            txn = db.begin_write().await?;
        }
        writes.flush(&mut txn, &mut done).await?;
        txn.commit().await?;
        db.cards_written().await;
        finish(report, done, total, progress);
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(())
}

fn finish(report: &mut Report, done: Vec<(String, Drift)>, total: u64, progress: Progress<'_>) {
    for (bucket, drift) in done {
        report.drift.merge(&drift);
        report.buckets += 1;
        progress(report.buckets, total, &bucket);
    }
}

/// Reconcile one bucket's customer (`paysync reconcile --full --bucket ID`).
pub async fn bucket(db: &Db, stripe: &Stripe, bucket_id: &str) -> anyhow::Result<Drift> {
    let bucket = db
        .bucket(bucket_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no bucket {bucket_id}"))?;
    match bucket.stripe_customer_id {
        Some(customer) => customer_once(db, stripe, bucket_id, &customer).await,
        None => Ok(Drift::default()),
    }
}

/// Bring one bucket's customer's rows in line with Stripe.
pub async fn customer_once(
    db: &Db,
    stripe: &Stripe,
    bucket_id: &str,
    customer_id: &str,
) -> anyhow::Result<Drift> {
    let fetched = fetch(stripe, customer_id).await?;
    let mut txn = db.begin_write().await?;
    let mut writes = Writes::default();
    let (drift, missing) =
        write_listed(&mut txn, &mut writes, bucket_id, customer_id, &fetched).await?;
    let mut done = [(bucket_id.to_string(), drift)];
    writes.flush(&mut txn, &mut done).await?;
    txn.commit().await?;
    db.cards_written().await;
    let [(_, mut drift)] = done;
    drift.merge(&settle_missing(db, stripe, bucket_id, customer_id, missing, &fetched.wm).await?);
    Ok(drift)
}

/// What Stripe shows of one customer.
struct Fetched {
    /// Taken before the first request: the listings are at least this new.
    wm: Watermark,
    /// None: Stripe does not know the customer any more.
    live: Option<Live>,
}

struct Live {
    customer: Value,
    deleted: bool,
    /// Sources (cards, SEPA) and card PaymentMethods.
    sources: Vec<Value>,
    subscriptions: Vec<Value>,
    /// As webhooks show them (without the includable fields the listing expanded).
    invoices: Vec<Value>,
    /// None: the pinned API version has no InvoicePayments to list.
    invoice_payments: Option<Vec<Value>>,
    charges: Vec<Value>,
}

/// The customer with its sources, card PaymentMethods, subscriptions,
/// invoices, invoice payments and charges.
async fn fetch(stripe: &Stripe, customer_id: &str) -> anyhow::Result<Fetched> {
    let wm = Watermark {
        created: now(),
        event: "reconcile".into(),
    };
    let customer = match stripe
        .send(
            &RetrieveCustomer::new(customer_id).expand(vec!["sources".to_string()]),
            None,
        )
        .await
    {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(Fetched { wm, live: None }),
        Err(e) => return Err(e.into()),
    };
    let deleted = json::bool(&customer, "deleted").unwrap_or(false);

    // Sources (cards, SEPA): embedded in the customer; page on if Stripe says there are more.
    let mut sources: Vec<Value> = customer
        .pointer("/sources/data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if customer
        .pointer("/sources/has_more")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let path = format!("/customers/{customer_id}/sources");
        sources = list_all(stripe, |after| page_req(&path, &[], after)).await?;
    }
    let pms = list_all(stripe, |after| {
        let mut req = ListPaymentMethod::new()
            .customer(customer_id)
            .type_(ListPaymentMethodType::Card)
            .limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await?;
    sources.extend(pms);

    let subscriptions = list_all(stripe, |after| {
        let mut req = ListSubscription::new()
            .customer(customer_id)
            .status(ListSubscriptionStatus::All)
            .limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await?;
    let with_payments = stripe.invoice_payments();
    let mut invoices = list_all(stripe, |after| {
        let mut req = ListInvoice::new().customer(customer_id).limit(PAGE);
        if with_payments {
            // Includable: the InvoicePayments come with each invoice, no request of their own.
            req = req.expand(vec!["data.payments".to_string()]);
        }
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await?;
    let mut invoice_payments = Vec::new();
    for invoice in &mut invoices {
        let taken = invoice_shape::take_includables(invoice);
        if taken.more_payments
            && let Some(id) = json::str(invoice, "id")
        {
            invoice_payments.extend(invoices::payments_of_invoice(stripe, id).await?);
        } else {
            invoice_payments.extend(taken.payments);
        }
    }
    let charges = list_all(stripe, |after| {
        let mut req = ListCharge::new().customer(customer_id).limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await?;
    Ok(Fetched {
        wm,
        live: Some(Live {
            customer,
            deleted,
            sources,
            subscriptions,
            invoices,
            invoice_payments: with_payments.then_some(invoice_payments),
            charges,
        }),
    })
}

/// The kinds listed per customer, in the order they are compared.
const LISTED: [Kind; 5] = [
    Kind::Source,
    Kind::Subscription,
    Kind::Invoice,
    Kind::InvoicePayment,
    Kind::Charge,
];

/// Write what Stripe listed (where it differs from the cache) in the open
/// transaction. Returns the drift and the live cached rows Stripe did not list.
async fn write_listed(
    conn: &mut AnyConnection,
    writes: &mut Writes,
    bucket_id: &str,
    customer_id: &str,
    fetched: &Fetched,
) -> anyhow::Result<(Drift, Vec<(Kind, Row)>)> {
    let wm = &fetched.wm;
    let mut drift = Drift::default();
    let Some(live) = &fetched.live else {
        // The customer is gone from Stripe: tombstone it and everything of it.
        let gone = serde_json::json!({"object": "customer", "id": customer_id, "deleted": true});
        drift.add(
            Kind::Customer,
            write(conn, &gone, wm, true, bucket_id, customer_id).await?,
        );
        for kind in LISTED {
            for row in customer_objects_in(conn, kind, customer_id)
                .await?
                .into_iter()
                .filter(|r| !r.deleted)
            {
                drift.add(
                    kind,
                    write(conn, &row.data, wm, true, bucket_id, customer_id).await?,
                );
            }
        }
        return Ok((drift, vec![]));
    };
    // Every cached row of this customer, unparsed, in one query.
    let mut by_kind: HashMap<Kind, Cached> = HashMap::new();
    for (kind, id, data, deleted) in customer_texts_all_in(conn, customer_id).await? {
        by_kind.entry(kind).or_default().insert(id, (data, deleted));
    }
    let cached_customer = by_kind.remove(&Kind::Customer).unwrap_or_default();
    if !unchanged(&cached_customer, &live.customer, live.deleted) {
        writes.push(&live.customer, wm, live.deleted, bucket_id, customer_id);
    }
    let mut missing = Vec::new();
    for (kind, listed) in [
        (Kind::Source, Some(&live.sources)),
        (Kind::Subscription, Some(&live.subscriptions)),
        (Kind::Invoice, Some(&live.invoices)),
        (Kind::InvoicePayment, live.invoice_payments.as_ref()),
        (Kind::Charge, Some(&live.charges)),
    ] {
        // Not listed at this API version: the cached rows stay as they are.
        let Some(listed) = listed else { continue };
        let rows = by_kind.remove(&kind).unwrap_or_default();
        let mut seen = HashSet::new();
        for obj in listed {
            if let Some(id) = json::str(obj, "id") {
                seen.insert(id);
            }
            if !unchanged(&rows, obj, false) {
                writes.push(obj, wm, false, bucket_id, customer_id);
            }
        }
        for (id, (_, deleted)) in &rows {
            if !deleted && !seen.contains(id.as_str()) {
                // Rare (drift): the whole row, for the Stripe call and the tombstone.
                if let Some(row) = crate::store::objects::object_in(conn, kind, id).await? {
                    missing.push((kind, row));
                }
            }
        }
    }
    Ok((drift, missing))
}

/// For cached rows Stripe did not list, ask Stripe for the object itself:
/// gone (404) or detached means a tombstone, anything else is stored as
/// Stripe shows it. Outside any transaction (one Stripe call per row).
async fn settle_missing(
    db: &Db,
    stripe: &Stripe,
    bucket_id: &str,
    customer_id: &str,
    missing: Vec<(Kind, Row)>,
    wm: &Watermark,
) -> anyhow::Result<Drift> {
    let mut drift = Drift::default();
    for (kind, row) in missing {
        let fresh = match retrieve_path(kind, customer_id, &row) {
            Some(path) => match stripe
                .execute(RequestBuilder::new(StripeMethod::Get, path), None)
                .await
            {
                Ok(obj) => Some(obj),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let mut conn = db.pool.acquire().await?;
        let changed = match fresh {
            // Still there and still this customer's (a canceled subscription, a paid invoice).
            Some(obj)
                if json::id(&obj, "customer") == Some(customer_id)
                    && !json::bool(&obj, "deleted").unwrap_or(false) =>
            {
                write(&mut conn, &obj, wm, false, bucket_id, customer_id).await?
            }
            _ => write(&mut conn, &row.data, wm, true, bucket_id, customer_id).await?,
        };
        drift.add(kind, changed);
    }
    db.cards_written().await;
    Ok(drift)
}

fn page_req(path: &str, params: &[(&str, &str)], after: Option<String>) -> RequestBuilder {
    let mut q: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    q.push(("limit".into(), PAGE.to_string()));
    if let Some(a) = after {
        q.push(("starting_after".into(), a));
    }
    RequestBuilder::new(StripeMethod::Get, path.to_string()).query(&q)
}

/// Where to fetch one object Stripe no longer listed; None when its absence from the list is final.
fn retrieve_path(kind: Kind, _customer_id: &str, row: &Row) -> Option<String> {
    match kind {
        // A source missing from the customer's list is detached; a PaymentMethod missing
        // from the customer's list is detached too.
        Kind::Source => None,
        Kind::Subscription => Some(format!("/subscriptions/{}", row.id)),
        Kind::Invoice => Some(format!("/invoices/{}", row.id)),
        Kind::Charge => Some(format!("/charges/{}", row.id)),
        // Every payment of every listed invoice was listed: one missing is gone.
        Kind::Customer | Kind::PaymentIntent | Kind::InvoicePayment => None,
    }
}

/// The cached rows of a customer of one kind: id → (stored JSON text, tombstone).
type Cached = HashMap<String, (String, bool)>;

/// Whether the cache already holds Stripe's object as it is. The stored text
/// is compared first (serde_json writes keys in one order, so an unchanged
/// object is the same text); only a different text is parsed. An object not
/// among the customer's cached rows is new to the cache (the backfill), or
/// kept under another customer, which writing it corrects.
fn unchanged(cached: &Cached, obj: &Value, deleted: bool) -> bool {
    let Some((text, was_deleted)) = json::str(obj, "id").and_then(|id| cached.get(id)) else {
        return false;
    };
    #[allow(clippy::cmp_owned)] // `text == *obj` would compare the text as a JSON string value
    let same_text = *text == obj.to_string();
    *was_deleted == deleted
        && (same_text || serde_json::from_str::<Value>(text).is_ok_and(|stored| stored == *obj))
}

/// Changed objects of the customers in the open transaction, written together
/// just before it commits: one statement per kind rather than one per object
/// (on Postgres each statement is a round trip). Forced, like [`write`].
#[derive(Default)]
struct Writes {
    rows: Vec<(Mirror<'static>, Watermark)>,
    /// The bucket of each queued object, to count the drift per bucket.
    buckets: HashMap<(Kind, String), String>,
}

impl Writes {
    fn push(
        &mut self,
        obj: &Value,
        wm: &Watermark,
        deleted: bool,
        bucket_id: &str,
        customer_id: &str,
    ) {
        let Some(mut m) = mirror_of(obj, deleted).map(Mirror::into_owned) else {
            return;
        };
        if m.customer_id.is_empty() {
            m.customer_id = customer_id.to_string();
        }
        m.bucket_id = Some(bucket_id.to_string());
        if self
            .buckets
            .insert((m.kind, m.id.clone()), bucket_id.to_string())
            .is_some()
        {
            // Listed twice in one transaction: the later listing replaces the earlier.
            self.rows
                .retain(|(r, _)| !(r.kind == m.kind && r.id == m.id));
        }
        self.rows.push((m, wm.clone()));
    }

    /// Write what is queued; add what was written to the drift of its bucket in `done`.
    async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        done: &mut [(String, Drift)],
    ) -> sqlx::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        for (kind, id) in write_objects_in(conn, &self.rows, true).await? {
            let Some(bucket) = self.buckets.get(&(kind, id)) else {
                continue;
            };
            if let Some((_, drift)) = done.iter_mut().rev().find(|(b, _)| b == bucket) {
                drift.add(kind, 1);
            }
        }
        self.rows.clear();
        self.buckets.clear();
        Ok(())
    }
}

/// Forced within the same second: the listing was fetched at or after its
/// watermark second, so it is at least as new as an event of that second; a row
/// an event made strictly newer is still kept.
async fn write(
    conn: &mut AnyConnection,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
    bucket_id: &str,
    customer_id: &str,
) -> anyhow::Result<u64> {
    Ok(
        match store_in_bucket(conn, obj, wm, deleted, true, bucket_id, customer_id).await? {
            Stored::Outcome(WriteOutcome::Written) => 1,
            _ => 0,
        },
    )
}
