//! Storing Stripe objects into the cache: one function per object kind reads
//! the columns the cache needs from the raw object, and `store` writes it
//! under the watermark rule. Write routes (with Stripe's answer), webhook
//! events and the reconciler all store through here.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::AnyConnection;

use crate::store::buckets::{bucket_of_customer_in, link_customer_in};
use crate::store::inbox::requeue_customers_events_in;
use crate::store::objects::{adopt_customers_objects_in, object_in, write_object_in};
use crate::store::{Db, Kind, Mirror, Watermark, WriteOutcome};
use crate::stripe::json;
use crate::stripe::shape::{charge, invoice, invoice_payment, payment_intent, subscription};

pub use crate::stripe::json::customer_of;

/// The kind of a Stripe object, from its `object` field; None for objects paysync does not mirror.
pub fn kind_of(obj: &Value) -> Option<Kind> {
    match json::str(obj, "object")? {
        "customer" => Some(Kind::Customer),
        "card" | "source" | "payment_method" | "bank_account" => Some(Kind::Source),
        "subscription" => Some(Kind::Subscription),
        "invoice" => Some(Kind::Invoice),
        "charge" => Some(Kind::Charge),
        "payment_intent" => Some(Kind::PaymentIntent),
        "invoice_payment" => Some(Kind::InvoicePayment),
        _ => None,
    }
}

/// The cache row of a Stripe object (bucket not resolved yet).
/// `deleted` forces a tombstone (a `*.deleted` or `*.detached` event).
pub fn mirror_of(obj: &Value, deleted: bool) -> Option<Mirror<'_>> {
    let kind = kind_of(obj)?;
    let id = json::str(obj, "id")?.to_string();
    let deleted = deleted || json::bool(obj, "deleted").unwrap_or(false);
    let customer = json::id(obj, "customer").map(str::to_string);
    let (customer_id, status) = match kind {
        Kind::Customer => (Some(id.clone()), None),
        Kind::Source => {
            let ty = match json::str(obj, "object") {
                Some("source") => json::str(obj, "type").unwrap_or("source").to_string(),
                Some(other) => other.to_string(),
                None => "card".into(),
            };
            (customer, Some(ty))
        }
        _ => (customer, json::str(obj, "status").map(str::to_string)),
    };
    let parent_id = match kind {
        Kind::Customer | Kind::Source => None,
        Kind::Subscription => subscription::plan_id(obj),
        Kind::Invoice => invoice::subscription(obj).map(str::to_string),
        // Since basil a charge or an intent no longer names its invoice: the
        // invoice payments link them (see `api::invoices`).
        Kind::Charge => charge::invoice(obj).map(str::to_string),
        Kind::PaymentIntent => payment_intent::invoice(obj).map(str::to_string),
        // No customer of its own: `store` files it under its invoice's.
        Kind::InvoicePayment => invoice_payment::invoice(obj).map(str::to_string),
    };
    Some(Mirror {
        kind,
        id,
        // A detached PaymentMethod has no customer any more; `store` keeps the one on file.
        customer_id: customer_id.unwrap_or_default(),
        bucket_id: None,
        status,
        parent_id,
        created: json::int(obj, "created").unwrap_or(0),
        data: std::borrow::Cow::Borrowed(obj),
        text: None,
        deleted,
    })
}

/// What `store` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Written, or already as new: the outcome of the watermark rule.
    Outcome(WriteOutcome),
    /// Not an object paysync mirrors, or one of a customer of no bucket.
    Ignored,
    /// An invoice payment whose invoice the cache does not have (yet): whose
    /// it is only Stripe can tell (fetch the invoice first). Nothing written.
    InvoiceUnknown,
}

/// Store a Stripe object under the watermark rule, resolving its bucket from its customer.
pub async fn store(
    db: &Db,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
    force: bool,
) -> sqlx::Result<Stored> {
    let stored = {
        let mut conn = db.pool.acquire().await?;
        store_on(&mut conn, obj, wm, deleted, force).await?
    };
    db.cards_written().await;
    Ok(stored)
}

/// Buckets of customers read ahead for a batch of events (customer id →
/// bucket id, one query for the batch), so storing each object skips that
/// lookup. A customer missing from it is looked up as usual, and what is
/// found (a bucket, a link made by the customer's metadata, or none) is kept
/// for the batch's later events.
#[derive(Debug, Default)]
pub struct KnownBuckets {
    buckets: HashMap<String, String>,
    /// Customers looked up in the batch's transaction and of no bucket.
    without: HashSet<String>,
    /// Customers whose bucket was found (or linked) after the read-ahead.
    found: HashSet<String>,
    /// Customers linked (customer, bucket) whose rows without a bucket are
    /// not adopted yet nor their earlier events requeued: a batch does that
    /// once, at its end ([`KnownBuckets::settle`]).
    linked: Vec<(String, String)>,
    /// Links are settled at the end of the batch, not as they are made.
    pub batch: bool,
    /// Events the transaction stored and is applying (the intake's batch):
    /// a link it makes does not put them back in line.
    pub applying: Vec<String>,
    /// Events put back in line for the worker because the batch linked their customer.
    pub requeued: u64,
}

impl KnownBuckets {
    /// What a look-up of `customers` found (`buckets`): the others have none.
    pub fn looked_up(customers: &[&str], buckets: HashMap<String, String>) -> Self {
        let without = customers
            .iter()
            .filter(|c| !buckets.contains_key(**c))
            .map(|c| c.to_string())
            .collect();
        KnownBuckets {
            buckets,
            without,
            ..KnownBuckets::default()
        }
    }

    /// The bucket of a customer, when known.
    pub fn get(&self, customer: &str) -> Option<&String> {
        self.buckets.get(customer)
    }

    pub fn contains(&self, customer: &str) -> bool {
        self.buckets.contains_key(customer)
    }

    /// Whether the customer's bucket became known after the read-ahead
    /// (the batch linked it): its earlier events in the batch were ignored.
    pub fn found_later(&self, customer: &str) -> bool {
        self.found.contains(customer)
    }

    /// For each customer linked since the last call: its rows stored without
    /// a bucket join the bucket, and its events applied before the link
    /// (ignored then: a customer of no bucket) are put back in line.
    pub async fn settle(&mut self, conn: &mut AnyConnection) -> sqlx::Result<()> {
        if self.linked.is_empty() {
            return Ok(());
        }
        let linked = std::mem::take(&mut self.linked);
        adopt_customers_objects_in(conn, &linked).await?;
        let customers: Vec<String> = linked.into_iter().map(|(c, _)| c).collect();
        self.requeued += requeue_customers_events_in(conn, &customers, &self.applying).await?;
        Ok(())
    }

    /// The bucket of `m`'s customer: known, else looked up (a customer
    /// object not linked yet links the bucket its metadata names), and kept.
    async fn resolve(
        &mut self,
        conn: &mut AnyConnection,
        m: &Mirror<'_>,
    ) -> sqlx::Result<Option<String>> {
        if let Some(bucket) = self.buckets.get(&m.customer_id) {
            return Ok(Some(bucket.clone()));
        }
        // Looked up already in this transaction: only its own metadata can link it now.
        let looked_up = self.without.contains(&m.customer_id);
        if looked_up && m.kind != Kind::Customer {
            return Ok(None);
        }
        let found = bucket_of(conn, m, !looked_up, self).await?;
        match &found {
            Some(bucket) => {
                self.buckets.insert(m.customer_id.clone(), bucket.clone());
                self.found.insert(m.customer_id.clone());
                self.without.remove(&m.customer_id);
            }
            None => {
                self.without.insert(m.customer_id.clone());
            }
        }
        Ok(found)
    }
}

/// Find the bucket of an object's customer for a batch (see
/// [`KnownBuckets::resolve`]), so that its event can be written with the
/// batch's other plain writes.
pub async fn find_bucket(
    conn: &mut AnyConnection,
    obj: &Value,
    deleted: bool,
    known: &mut KnownBuckets,
) -> sqlx::Result<()> {
    if let Some(m) = mirror_of(obj, deleted).filter(|m| !m.customer_id.is_empty()) {
        known.resolve(conn, &m).await?;
    }
    Ok(())
}

/// [`store`] on a given connection or open transaction (the apply worker and
/// the webhook intake apply a batch of events in one transaction).
pub async fn store_on(
    conn: &mut AnyConnection,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
    force: bool,
) -> sqlx::Result<Stored> {
    store_known(conn, obj, wm, deleted, force, &mut KnownBuckets::default()).await
}

/// [`store_on`] with buckets read ahead; a bucket it has to look up (or
/// links, by a customer's metadata) is added to `known` for the batch's
/// later events.
pub async fn store_known(
    conn: &mut AnyConnection,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
    force: bool,
    known: &mut KnownBuckets,
) -> sqlx::Result<Stored> {
    let Some(mut m) = mirror_of(obj, deleted) else {
        return Ok(Stored::Ignored);
    };
    let mut previous = None;
    if m.customer_id.is_empty() {
        previous = object_in(conn, m.kind, &m.id).await?;
        match &previous {
            Some(prev) => m.customer_id = prev.customer_id.clone(),
            None if m.kind == Kind::InvoicePayment && m.parent_id.is_some() => {
                match invoice_of(conn, &m).await? {
                    Some(inv) => m.customer_id = inv.customer_id,
                    None => return Ok(Stored::InvoiceUnknown),
                }
            }
            None => return Ok(Stored::Ignored),
        }
    }
    m.bucket_id = known.resolve(conn, &m).await?;
    if m.bucket_id.is_none()
        && previous.is_none()
        && object_in(conn, m.kind, &m.id).await?.is_none()
    {
        // A customer that belongs to no bucket (another app on the same Stripe account).
        return Ok(Stored::Ignored);
    }
    Ok(Stored::Outcome(write_object_in(conn, &m, wm, force).await?))
}

/// The cached invoice an invoice payment pays.
async fn invoice_of(
    conn: &mut AnyConnection,
    m: &Mirror<'_>,
) -> sqlx::Result<Option<crate::store::Stored>> {
    match m.parent_id.as_deref() {
        Some(id) => object_in(conn, Kind::Invoice, id).await,
        None => Ok(None),
    }
}

/// The bucket of an object: the bucket linked to its customer (`look_up`:
/// not known to have none); for a customer object not yet linked, the bucket
/// its `metadata.bucket_id` names (and link it).
async fn bucket_of(
    conn: &mut AnyConnection,
    m: &Mirror<'_>,
    look_up: bool,
    known: &mut KnownBuckets,
) -> sqlx::Result<Option<String>> {
    if look_up && let Some(bucket) = bucket_of_customer_in(conn, &m.customer_id).await? {
        return Ok(Some(bucket));
    }
    if m.kind != Kind::Customer || m.deleted {
        return Ok(None);
    }
    let Some(named) = m
        .data
        .pointer("/metadata/bucket_id")
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    // First link wins: a bucket keeps the customer it has.
    match link_customer_in(conn, named, &m.customer_id).await? {
        Some(linked) if linked == m.customer_id => {
            known
                .linked
                .push((m.customer_id.clone(), named.to_string()));
            if !known.batch {
                known.settle(conn).await?;
            }
            Ok(Some(named.to_string()))
        }
        _ => Ok(None),
    }
}

/// `store` for a caller that already knows the object's customer and bucket
/// (the full reconcile walks buckets by their linked customer; the benchmark
/// seeder too), on a connection or open transaction so a batch of objects
/// shares one commit. Same watermark rule; an object without a customer of
/// its own (a detached PaymentMethod) is kept under `customer_id`.
pub async fn store_in_bucket(
    conn: &mut AnyConnection,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
    force: bool,
    bucket_id: &str,
    customer_id: &str,
) -> sqlx::Result<Stored> {
    let Some(mut m) = mirror_of(obj, deleted) else {
        return Ok(Stored::Ignored);
    };
    if m.customer_id.is_empty() {
        m.customer_id = customer_id.to_string();
    }
    m.bucket_id = Some(bucket_id.to_string());
    Ok(Stored::Outcome(write_object_in(conn, &m, wm, force).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_columns_leniently() {
        let sub = json!({"object": "subscription", "id": "sub_1", "customer": {"id": "cus_1"}, "status": "active",
            "created": "1700000000", "items": {"data": [{"price": {"id": "price_9"}}]}});
        let m = mirror_of(&sub, false).unwrap();
        assert_eq!(
            (m.kind, m.customer_id.as_str(), m.created),
            (Kind::Subscription, "cus_1", 1_700_000_000)
        );
        assert_eq!(m.parent_id.as_deref(), Some("price_9"));
        let src =
            json!({"object": "source", "id": "src_1", "type": "sepa_debit", "customer": "cus_1"});
        assert_eq!(
            mirror_of(&src, false).unwrap().status.as_deref(),
            Some("sepa_debit")
        );
        let card = json!({"object": "card", "id": "card_1", "customer": "cus_1", "deleted": true});
        assert!(mirror_of(&card, false).unwrap().deleted);
        assert!(mirror_of(&json!({"object": "product", "id": "prod_1"}), false).is_none());
    }

    #[test]
    fn parents_of_both_versions() {
        use crate::stripe::shape::fixtures;
        let (old, new) = fixtures::invoice();
        for inv in [old, new] {
            let m = mirror_of(&inv, false).unwrap();
            assert_eq!(m.parent_id.as_deref(), Some("sub_1TfPsyncStory01"));
            assert_eq!(m.status.as_deref(), Some("paid"));
        }
        let (old, new) = fixtures::charge();
        assert_eq!(
            mirror_of(&old, false).unwrap().parent_id.as_deref(),
            Some("in_1TfPsyncStory01")
        );
        assert_eq!(mirror_of(&new, false).unwrap().parent_id, None);
        let payment = fixtures::invoice_payment();
        let m = mirror_of(&payment, false).unwrap();
        assert_eq!(
            (m.kind, m.customer_id.as_str(), m.parent_id.as_deref()),
            (Kind::InvoicePayment, "", Some("in_1TfPsyncStory01"))
        );
    }
}
