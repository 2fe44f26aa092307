//! Full reconcile: for every bucket's Stripe customer, fetch the customer with
//! its sources, card PaymentMethods, subscriptions, invoices and charges, write
//! what differs from the cache (under the watermark rule: a listing never
//! overwrites a row an event made newer), tombstone what Stripe no longer has,
//! and count the drift per kind. Resumable: the last finished bucket is kept in
//! a cursor, so an interrupted run continues where it stopped.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use stripe_billing::invoice::ListInvoice;
use stripe_billing::subscription::{ListSubscription, ListSubscriptionStatus};
use stripe_client_core::{RequestBuilder, StripeMethod, StripeRequest};
use stripe_core::charge::ListCharge;
use stripe_core::customer::RetrieveCustomer;
use stripe_payment::payment_method::{ListPaymentMethod, ListPaymentMethodType};

use crate::store::objects::Stored as Row;
use crate::store::{Db, Kind, Watermark, WriteOutcome, now};
use crate::stripe::pages::{PAGE, list_all};
use crate::stripe::{Stripe, json};
use crate::sync::apply::{self, Stored};

/// Cursor: the last bucket a full run finished (cleared when a run completes).
pub const CURSOR_PROGRESS: &str = "reconcile:full:after";
/// Cursor: unix time of the last complete full run.
pub const CURSOR_LAST_SUCCESS: &str = "reconcile:full:last_success";

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
    for (bucket, customer) in todo {
        let drift = customer_once(db, stripe, &customer).await?;
        report.drift.merge(&drift);
        report.buckets += 1;
        db.set_cursor(CURSOR_PROGRESS, &bucket).await?;
        progress(report.buckets, total, &bucket);
    }
    db.clear_cursor(CURSOR_PROGRESS).await?;
    db.set_cursor(CURSOR_LAST_SUCCESS, &now().to_string())
        .await?;
    for (kind, n) in &report.drift.0 {
        metrics::gauge!("paysync_reconcile_drift", "kind" => *kind).set(*n as f64);
    }
    metrics::gauge!("paysync_reconcile_last_success_seconds").set(now() as f64);
    Ok(report)
}

/// Reconcile one bucket's customer (`paysync reconcile --full --bucket ID`).
pub async fn bucket(db: &Db, stripe: &Stripe, bucket_id: &str) -> anyhow::Result<Drift> {
    let bucket = db
        .bucket(bucket_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no bucket {bucket_id}"))?;
    match bucket.stripe_customer_id {
        Some(customer) => customer_once(db, stripe, &customer).await,
        None => Ok(Drift::default()),
    }
}

/// Bring one customer's rows in line with Stripe.
pub async fn customer_once(db: &Db, stripe: &Stripe, customer_id: &str) -> anyhow::Result<Drift> {
    let wm = Watermark {
        created: now(),
        event: "reconcile".into(),
    };
    let mut drift = Drift::default();

    let customer = match stripe
        .send(
            &RetrieveCustomer::new(customer_id).expand(vec!["sources".to_string()]),
            None,
        )
        .await
    {
        Ok(c) => c,
        Err(e) if e.is_not_found() => {
            // The customer is gone from Stripe: tombstone it and everything of it.
            let gone =
                serde_json::json!({"object": "customer", "id": customer_id, "deleted": true});
            drift.add(Kind::Customer, write(db, &gone, &wm, true).await?);
            for kind in [
                Kind::Source,
                Kind::Subscription,
                Kind::Invoice,
                Kind::Charge,
            ] {
                for row in db
                    .customer_objects(kind, customer_id)
                    .await?
                    .into_iter()
                    .filter(|r| !r.deleted)
                {
                    drift.add(kind, write(db, &row.data, &wm, true).await?);
                }
            }
            return Ok(drift);
        }
        Err(e) => return Err(e.into()),
    };
    let deleted = json::bool(&customer, "deleted").unwrap_or(false);
    drift.add(
        Kind::Customer,
        write_if_changed(db, &customer, &wm, deleted).await?,
    );

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
    let mut listed_sources: Vec<Value> = sources;
    listed_sources.extend(pms);
    drift.add(
        Kind::Source,
        sync_kind(db, stripe, Kind::Source, customer_id, &listed_sources, &wm).await?,
    );

    let subs = list_all(stripe, |after| {
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
    drift.add(
        Kind::Subscription,
        sync_kind(db, stripe, Kind::Subscription, customer_id, &subs, &wm).await?,
    );

    let invoices = list_all(stripe, |after| {
        let mut req = ListInvoice::new().customer(customer_id).limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await?;
    drift.add(
        Kind::Invoice,
        sync_kind(db, stripe, Kind::Invoice, customer_id, &invoices, &wm).await?,
    );

    let charges = list_all(stripe, |after| {
        let mut req = ListCharge::new().customer(customer_id).limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await?;
    drift.add(
        Kind::Charge,
        sync_kind(db, stripe, Kind::Charge, customer_id, &charges, &wm).await?,
    );
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

/// Write the listed objects of a kind that differ from the cache; for cached
/// rows Stripe did not list, ask Stripe for the object itself: gone (404) or
/// detached means a tombstone, anything else is stored as Stripe shows it.
/// Returns how many rows changed.
async fn sync_kind(
    db: &Db,
    stripe: &Stripe,
    kind: Kind,
    customer_id: &str,
    listed: &[Value],
    wm: &Watermark,
) -> anyhow::Result<u64> {
    let mut changed = 0;
    let mut seen = HashSet::new();
    for obj in listed {
        if let Some(id) = json::str(obj, "id") {
            seen.insert(id.to_string());
        }
        changed += write_if_changed(db, obj, wm, false).await?;
    }
    let cached: Vec<Row> = db.customer_objects(kind, customer_id).await?;
    for row in cached
        .into_iter()
        .filter(|r| !r.deleted && !seen.contains(&r.id))
    {
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
        changed += match fresh {
            // Still there and still this customer's (a canceled subscription, a paid invoice).
            Some(obj)
                if json::id(&obj, "customer") == Some(customer_id)
                    && !json::bool(&obj, "deleted").unwrap_or(false) =>
            {
                write_if_changed(db, &obj, wm, false).await?
            }
            _ => write(db, &row.data, wm, true).await?,
        };
    }
    Ok(changed)
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
        Kind::Customer | Kind::PaymentIntent => None,
    }
}

/// Store when the cache differs from Stripe's object; 1 if a row changed.
async fn write_if_changed(
    db: &Db,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
) -> anyhow::Result<u64> {
    let (Some(kind), Some(id)) = (apply::kind_of(obj), json::str(obj, "id")) else {
        return Ok(0);
    };
    if let Some(row) = db.object(kind, id).await?
        && row.data == *obj
        && row.deleted == deleted
    {
        return Ok(0);
    }
    write(db, obj, wm, deleted).await
}

/// Forced within the same second: the listing was fetched at or after its
/// watermark second, so it is at least as new as an event of that second; a row
/// an event made strictly newer is still kept.
async fn write(db: &Db, obj: &Value, wm: &Watermark, deleted: bool) -> anyhow::Result<u64> {
    Ok(match apply::store(db, obj, wm, deleted, true).await? {
        Stored::Outcome(WriteOutcome::Written) => 1,
        _ => 0,
    })
}
