//! Applying one Stripe event to the cache: the event's object goes through
//! `apply::store` (the same function the write routes and the reconciler
//! use) with the event's `created` second and id as watermark.
//!
//! Order: events arrive in any order and more than once. A row changes only
//! when the event is newer than what the row reflects. Within one second the
//! event time cannot order two changes, so the object's own version fields
//! decide where Stripe has them (an invoice's status transitions, a
//! subscription's cancel time); when they cannot, the object is fetched from
//! Stripe and that answer is stored, so the cache ends on Stripe's real state
//! whatever the delivery order. Deletes leave tombstones, so a late `updated`
//! cannot bring a deleted object back.
//!
//! A subscription event needs nothing more: the bucket's effective plan is
//! derived from the stored subscriptions on every read (`billing`).

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::AnyConnection;
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::cfg::SyncSettings;
use crate::store::buckets::buckets_of_customers_in;
use crate::store::objects::{
    Mirror, customer_objects_in, object_in, objects_in, outcome_against, write_objects_in,
};
use crate::store::{Db, Kind, Watermark, WriteOutcome};
use crate::stripe::shape::invoice_payment;
use crate::stripe::{Stripe, json};
use crate::sync::apply::{self, KnownBuckets, Stored};

/// Event types whose object the cache mirrors. Every other type is kept in
/// the inbox (and acknowledged) but changes nothing.
pub const MIRRORED: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.source.created",
    "customer.source.updated",
    "customer.source.deleted",
    "customer.source.expiring",
    "payment_method.attached",
    "payment_method.updated",
    "payment_method.detached",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.updated",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.deleted",
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "invoice_payment.paid",
];

pub fn mirrored(ty: &str) -> bool {
    MIRRORED.contains(&ty)
}

/// Event types after which the object no longer exists for the customer.
/// (`customer.subscription.deleted` is not one: the subscription stays, `canceled`,
/// as the bucket's past subscription.)
fn removes(ty: &str) -> bool {
    matches!(
        ty,
        "customer.deleted"
            | "customer.source.deleted"
            | "payment_method.detached"
            | "invoice.deleted"
    )
}

/// The parts of an event body the apply needs; None when it is not a Stripe event.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub id: &'a str,
    pub r#type: &'a str,
    pub created: i64,
    pub object: &'a Value,
    /// The object's compact JSON text when the caller has it (the webhook
    /// intake: a span of the stored body); stored as is instead of
    /// serializing `object` again.
    pub object_text: Option<&'a str>,
}

impl<'a> Event<'a> {
    pub fn parse(body: &'a Value) -> Option<Event<'a>> {
        let id = json::str(body, "id").filter(|s| !s.is_empty())?;
        let r#type = json::str(body, "type").filter(|s| !s.is_empty())?;
        let created = json::int(body, "created")?;
        let object = body.pointer("/data/object").filter(|o| o.is_object())?;
        Some(Event {
            id,
            r#type,
            created,
            object,
            object_text: None,
        })
    }

    /// The same event with its object's compact text (see [`Event::object_text`]).
    pub fn with_object_text(self, text: Option<&'a str>) -> Event<'a> {
        Event {
            object_text: text,
            ..self
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A type paysync does not mirror.
    NotMirrored,
    /// Not an object of a bucket's customer (or not a kind the cache keeps).
    Ignored,
    /// The watermark rule's outcome (`Tie` never: ties are resolved).
    Stored(WriteOutcome),
    /// The object was fetched from Stripe and that was stored.
    Refetched(WriteOutcome),
}

impl Applied {
    /// The `result` label of `paysync_events_applied_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Applied::NotMirrored => "not_mirrored",
            Applied::Ignored => "ignored",
            Applied::Stored(WriteOutcome::Written) => "written",
            Applied::Stored(_) => "stale",
            Applied::Refetched(_) => "refetched",
        }
    }
}

/// What applying an event with the database alone came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    Done(Applied),
    /// Only Stripe can tell (a same-second tie the object cannot order, or a
    /// kind configured to be re-fetched): nothing was stored; [`apply_event`] fetches it.
    NeedsStripe,
}

/// Apply one event body (as stored in the inbox).
pub async fn apply_body(
    db: &Db,
    stripe: &Stripe,
    sync: &SyncSettings,
    body: &str,
) -> anyhow::Result<Applied> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| anyhow::anyhow!("event body is not JSON: {e}"))?;
    let event = Event::parse(&value)
        .ok_or_else(|| anyhow::anyhow!("not a Stripe event (id, type, created, data.object)"))?;
    apply_event(db, stripe, sync, &event).await
}

/// Apply one event, asking Stripe when the database alone cannot order it.
pub async fn apply_event(
    db: &Db,
    stripe: &Stripe,
    sync: &SyncSettings,
    e: &Event<'_>,
) -> anyhow::Result<Applied> {
    let local = {
        let mut conn = db.pool.acquire().await?;
        apply_local(&mut conn, sync, e, &mut KnownBuckets::default()).await?
    };
    db.cards_written().await;
    match local {
        Local::Done(applied) => Ok(applied),
        Local::NeedsStripe => refetch(db, stripe, e.object, &watermark(e)).await,
    }
}

fn watermark(e: &Event<'_>) -> Watermark {
    Watermark {
        created: e.created,
        event: e.id.to_string(),
    }
}

/// Apply one event on a connection or open transaction, without calling
/// Stripe: what the webhook intake does inside the transaction that stores
/// the delivery, and the worker for a claimed batch. Writes nothing when it
/// answers [`Local::NeedsStripe`].
///
/// `known`: buckets of the batch's customers read ahead ([`read_ahead`]),
/// and those found since.
pub async fn apply_local(
    conn: &mut AnyConnection,
    sync: &SyncSettings,
    e: &Event<'_>,
    known: &mut KnownBuckets,
) -> sqlx::Result<Local> {
    if !mirrored(e.r#type) {
        return Ok(Local::Done(Applied::NotMirrored));
    }
    let Some(kind) = apply::kind_of(e.object) else {
        return Ok(Local::Done(Applied::Ignored));
    };
    let wm = watermark(e);
    let deleted = removes(e.r#type);
    if sync.refetch.contains(&kind) && !deleted {
        return Ok(Local::NeedsStripe);
    }
    let applied = match apply::store_known(conn, e.object, &wm, deleted, false, known).await? {
        Stored::Ignored => Applied::Ignored,
        // Its invoice is not cached yet: the worker fetches it from Stripe first.
        Stored::InvoiceUnknown => return Ok(Local::NeedsStripe),
        Stored::Outcome(WriteOutcome::Tie) => {
            match resolve_tie(conn, kind, e.object, &wm, deleted).await? {
                Some(applied) => applied,
                None => return Ok(Local::NeedsStripe),
            }
        }
        Stored::Outcome(o) => Applied::Stored(o),
    };
    if e.r#type == "customer.deleted" && applied != Applied::Ignored {
        forget_payment_methods(conn, e.object, &wm).await?;
    }
    Ok(Local::Done(applied))
}

/// [`apply_local`] for a batch of events, in order, on one transaction: what
/// the webhook intake and the worker do with a batch.
///
/// The usual event — an object of a customer whose bucket is known — is one
/// upsert. They are written together, one multi-row upsert per kind, instead
/// of one statement each: under a burst the statements, not the rows, are
/// what the intake's transaction spends its time on. An object already
/// pending again is written in a later statement (one statement cannot write
/// a row twice, and the later event must see the earlier one's row).
///
/// A customer not read ahead is looked up once for the batch; a new
/// customer's `customer.created` links the bucket its metadata names, and
/// from then on its events (a sign-up comes in one burst) are plain upserts
/// too, its earlier ones in the batch (ignored then) included. Any other
/// event (a customer of no bucket, a customer deletion, a detached payment
/// method) goes through [`apply_local`] once what it may read is written.
/// Outcomes are the same as applying the events one by one (and the inbox
/// re-applying those of a customer that the batch linked to a bucket).
pub async fn apply_local_many(
    conn: &mut AnyConnection,
    sync: &SyncSettings,
    events: &[Event<'_>],
    known: &mut KnownBuckets,
) -> sqlx::Result<Vec<Local>> {
    let mut out: Vec<Option<Local>> = vec![None; events.len()];
    let mut run = Run::default();
    known.batch = true;
    for (i, e) in events.iter().enumerate() {
        if !mirrored(e.r#type) {
            out[i] = Some(Local::Done(Applied::NotMirrored));
            continue;
        }
        if apply::customer_of(e.object).is_some_and(|c| !known.contains(c)) {
            // Not read ahead: a customer linked by this event's metadata, or
            // by another process since, or of no bucket.
            apply::find_bucket(conn, e.object, removes(e.r#type), known).await?;
        }
        match plain_write(sync, e, known) {
            Some(m) => run.add(i, m, watermark(e)),
            None => {
                run.write_before(conn, e, known, events, &mut out).await?;
                out[i] = Some(apply_local(conn, sync, e, known).await?);
            }
        }
    }
    // A customer linked by this batch (its metadata named a bucket): its
    // events earlier in the batch were ignored (customer of no bucket) and
    // apply now. The inbox requeues such events once they are stored
    // applied; the batch's are not stored yet (or not marked applied yet, in
    // the worker's), so the requeue cannot see them.
    for (i, e) in events.iter().enumerate() {
        let ignored = out[i] == Some(Local::Done(Applied::Ignored));
        if !ignored || !apply::customer_of(e.object).is_some_and(|c| known.found_later(c)) {
            continue;
        }
        match plain_write(sync, e, known) {
            Some(m) => run.add(i, m, watermark(e)),
            None => {
                run.write(conn, None, events, &mut out).await?;
                out[i] = Some(apply_local(conn, sync, e, known).await?);
            }
        }
    }
    run.write(conn, None, events, &mut out).await?;
    known.settle(conn).await?;
    known.batch = false;
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or(Local::Done(Applied::Ignored)))
        .collect())
}

/// The row [`apply_local`] would upsert for this event when that is all it
/// would do (its bucket known, no other row to read or change first).
fn plain_write<'a>(sync: &SyncSettings, e: &Event<'a>, known: &KnownBuckets) -> Option<Mirror<'a>> {
    let deleted = removes(e.r#type);
    if e.r#type == "customer.deleted" {
        return None;
    }
    let mut m = apply::mirror_of(e.object, deleted)?;
    if sync.refetch.contains(&m.kind) && !deleted {
        return None;
    }
    m.bucket_id = Some(known.get(&m.customer_id)?.clone());
    m.text = e.object_text;
    Some(m)
}

/// Upserts waiting to be written together, one multi-row statement per kind
/// and generation: an object's first pending version is of generation 0, a
/// later version of the same object one generation after the one before it.
/// Generations are written in turn (one statement cannot write a row twice,
/// and a later event must see the earlier one's row), so a sign-up's second
/// version of each object shares a statement with every other customer's.
#[derive(Default)]
struct Run<'a> {
    rows: Vec<Pending<'a>>,
    /// The generation of each object's latest pending version.
    generations: HashMap<(Kind, String), usize>,
}

struct Pending<'a> {
    row: (Mirror<'a>, Watermark),
    /// The position of its event in the batch.
    at: usize,
    generation: usize,
}

impl<'a> Run<'a> {
    fn has(&self, kind: Kind, id: &str) -> bool {
        self.generations.contains_key(&(kind, id.to_string()))
    }

    /// Add the upsert of event `at`.
    fn add(&mut self, at: usize, m: Mirror<'a>, wm: Watermark) {
        let key = (m.kind, m.id.clone());
        let generation = self.generations.get(&key).map_or(0, |g| g + 1);
        self.generations.insert(key, generation);
        self.rows.push(Pending {
            row: (m, wm),
            at,
            generation,
        });
    }

    /// Write what must be in the tables before event `e` is applied on its
    /// own: nothing when it names a customer the batch had no bucket for
    /// (every pending row is of a known customer, and applying it reads and
    /// writes only rows of its customer: a new customer linked by its
    /// metadata, or one of no bucket), except its own object's earlier
    /// version; everything otherwise (a customer's deletion reads its cards,
    /// an object without a customer reads its row).
    async fn write_before(
        &mut self,
        conn: &mut AnyConnection,
        e: &Event<'_>,
        known: &KnownBuckets,
        events: &[Event<'_>],
        out: &mut [Option<Local>],
    ) -> sqlx::Result<()> {
        let unrelated = apply::customer_of(e.object).is_some_and(|c| !known.contains(c))
            && e.r#type != "customer.deleted";
        if !unrelated {
            return self.write(conn, None, events, out).await;
        }
        match (apply::kind_of(e.object), json::str(e.object, "id")) {
            (Some(kind), Some(id)) if self.has(kind, id) => {
                self.write(conn, Some(kind), events, out).await
            }
            _ => Ok(()),
        }
    }

    /// Write the pending rows of one kind (None: all), generation after
    /// generation, and record each event's outcome; a row left alone is
    /// stale or a tie, told apart (and a tie resolved) as [`apply_local`] does.
    async fn write(
        &mut self,
        conn: &mut AnyConnection,
        kind: Option<Kind>,
        events: &[Event<'_>],
        out: &mut [Option<Local>],
    ) -> sqlx::Result<()> {
        let (mut now, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.rows)
            .into_iter()
            .partition(|p| kind.is_none_or(|k| k == p.row.0.kind));
        self.generations
            .retain(|(k, _), _| kind.is_some_and(|only| only != *k));
        self.rows = kept;
        // Stable: within a generation, the events' order.
        now.sort_by_key(|p| p.generation);
        while !now.is_empty() {
            let generation = now[0].generation;
            let rest = now.split_off(now.partition_point(|p| p.generation == generation));
            let (rows, at): (Vec<_>, Vec<_>) = now.into_iter().map(|p| (p.row, p.at)).unzip();
            write_rows(conn, &rows, &at, events, out).await?;
            now = rest;
        }
        Ok(())
    }
}

/// Write rows of distinct objects in one statement per kind, and record the
/// outcome of each row's event. The rows left alone are read back together
/// (one statement per kind) to tell stale from tie.
async fn write_rows(
    conn: &mut AnyConnection,
    rows: &[(Mirror<'_>, Watermark)],
    at: &[usize],
    events: &[Event<'_>],
    out: &mut [Option<Local>],
) -> sqlx::Result<()> {
    let written: HashSet<(Kind, String)> = write_objects_in(conn, rows, false)
        .await?
        .into_iter()
        .collect();
    let mut left: HashMap<Kind, Vec<&str>> = HashMap::new();
    for (m, _) in rows {
        if !written.contains(&(m.kind, m.id.clone())) {
            left.entry(m.kind).or_default().push(&m.id);
        }
    }
    let mut current: HashMap<Kind, HashMap<String, crate::store::Stored>> = HashMap::new();
    for (kind, ids) in left {
        current.insert(kind, objects_in(conn, kind, &ids).await?);
    }
    for ((m, wm), &i) in rows.iter().zip(at) {
        let local = if written.contains(&(m.kind, m.id.clone())) {
            Local::Done(Applied::Stored(WriteOutcome::Written))
        } else {
            let row = current.get(&m.kind).and_then(|rows| rows.get(&m.id));
            match outcome_against(row, m, wm, false) {
                WriteOutcome::Tie => {
                    let e = &events[i];
                    match resolve_tie_with(conn, row, e.object, wm, removes(e.r#type)).await? {
                        Some(applied) => Local::Done(applied),
                        None => Local::NeedsStripe,
                    }
                }
                o => Local::Done(Applied::Stored(o)),
            }
        };
        out[i] = Some(local);
    }
    Ok(())
}

/// The buckets of the customers of a batch of events, in one query.
pub async fn read_ahead(
    conn: &mut AnyConnection,
    events: &[Event<'_>],
) -> sqlx::Result<KnownBuckets> {
    let mut customers: Vec<&str> = events
        .iter()
        .filter_map(|e| apply::customer_of(e.object))
        .collect();
    customers.sort_unstable();
    customers.dedup();
    let buckets = buckets_of_customers_in(conn, &customers).await?;
    Ok(KnownBuckets::looked_up(&customers, buckets))
}

/// Stripe deletes a deleted customer's cards and bank accounts without an
/// event of their own: tombstone them, so no read route shows them again.
async fn forget_payment_methods(
    conn: &mut AnyConnection,
    customer: &Value,
    wm: &Watermark,
) -> sqlx::Result<()> {
    let Some(id) = json::str(customer, "id") else {
        return Ok(());
    };
    for row in customer_objects_in(conn, Kind::Source, id)
        .await?
        .into_iter()
        .filter(|r| !r.deleted)
    {
        apply::store_on(conn, &row.data, wm, true, true).await?;
    }
    Ok(())
}

/// Same second as the row, different content: a delete wins (nothing follows a
/// delete in Stripe); else the object's version fields, when both have them and
/// they differ. None: only Stripe's current object can tell.
async fn resolve_tie(
    conn: &mut AnyConnection,
    kind: Kind,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
) -> sqlx::Result<Option<Applied>> {
    let row = match deleted {
        true => None,
        false => object_in(conn, kind, json::str(obj, "id").unwrap_or_default()).await?,
    };
    resolve_tie_with(conn, row.as_ref(), obj, wm, deleted).await
}

/// [`resolve_tie`] given the object's row as it is now.
async fn resolve_tie_with(
    conn: &mut AnyConnection,
    row: Option<&crate::store::Stored>,
    obj: &Value,
    wm: &Watermark,
    deleted: bool,
) -> sqlx::Result<Option<Applied>> {
    if deleted {
        return Ok(Some(stored(
            apply::store_on(conn, obj, wm, true, true).await?,
        )));
    }
    if let Some(row) = row {
        match (version(&row.data), version(obj)) {
            (Some(have), Some(got)) if got > have => {
                return Ok(Some(stored(
                    apply::store_on(conn, obj, wm, false, true).await?,
                )));
            }
            (Some(have), Some(got)) if got < have => {
                return Ok(Some(Applied::Stored(WriteOutcome::Stale)));
            }
            _ => {}
        }
    }
    Ok(None)
}

fn stored(s: Stored) -> Applied {
    match s {
        Stored::Ignored | Stored::InvoiceUnknown => Applied::Ignored,
        Stored::Outcome(o) => Applied::Stored(o),
    }
}

/// How far along its life an object is, from fields Stripe only ever moves
/// forward: the latest of its status-transition and end times. None when the
/// object has none of them (then only Stripe can tell two versions apart).
pub fn version(obj: &Value) -> Option<i64> {
    let mut times: Vec<i64> = ["canceled_at", "ended_at", "updated"]
        .iter()
        .filter_map(|k| json::int(obj, k))
        .collect();
    if let Some(st) = obj.get("status_transitions") {
        times.extend(
            [
                "finalized_at",
                "paid_at",
                "voided_at",
                "marked_uncollectible_at",
            ]
            .iter()
            .filter_map(|k| json::int(st, k)),
        );
    }
    times.into_iter().max()
}

/// Fetch the object from Stripe and store that answer (a 404 stores a tombstone).
/// An invoice payment's invoice is fetched and stored first when the cache
/// does not have it: the invoice tells whose payment it is.
async fn refetch(db: &Db, stripe: &Stripe, obj: &Value, wm: &Watermark) -> anyhow::Result<Applied> {
    if apply::kind_of(obj) == Some(Kind::InvoicePayment)
        && let Some(invoice) = invoice_payment::invoice(obj)
        && db.object(Kind::Invoice, invoice).await?.is_none()
    {
        let invoice = serde_json::json!({"object": "invoice", "id": invoice});
        let fetched = fetch_and_store(db, stripe, &invoice, wm).await?;
        tracing::debug!(
            result = fetched.label(),
            "fetched the invoice of an invoice payment"
        );
    }
    fetch_and_store(db, stripe, obj, wm).await
}

async fn fetch_and_store(
    db: &Db,
    stripe: &Stripe,
    obj: &Value,
    wm: &Watermark,
) -> anyhow::Result<Applied> {
    let path = retrieve_path(obj)
        .ok_or_else(|| anyhow::anyhow!("cannot tell how to fetch this object from Stripe"))?;
    let fetched = match stripe
        .execute(RequestBuilder::new(StripeMethod::Get, path), None)
        .await
    {
        Ok(v) => v,
        Err(e) if e.is_not_found() => {
            let outcome = match apply::store(db, obj, wm, true, true).await? {
                Stored::Ignored | Stored::InvoiceUnknown => return Ok(Applied::Ignored),
                Stored::Outcome(o) => o,
            };
            return Ok(Applied::Refetched(outcome));
        }
        Err(e) => return Err(e.into()),
    };
    let deleted = json::bool(&fetched, "deleted").unwrap_or(false);
    // A detached PaymentMethod comes back without a customer: it is gone for the bucket.
    let detached = json::str(&fetched, "object") == Some("payment_method")
        && json::id(&fetched, "customer").is_none();
    let (to_store, gone) = if deleted && apply::kind_of(&fetched).is_none() {
        (obj, true)
    } else {
        (&fetched, deleted || detached)
    };
    match apply::store(db, to_store, wm, gone, true).await? {
        Stored::Ignored | Stored::InvoiceUnknown => Ok(Applied::Ignored),
        Stored::Outcome(o) => Ok(Applied::Refetched(o)),
    }
}

/// The Stripe API path that retrieves an object.
fn retrieve_path(obj: &Value) -> Option<String> {
    let id = json::str(obj, "id")?;
    let path = match json::str(obj, "object")? {
        "customer" => format!("/customers/{id}"),
        "card" | "bank_account" => {
            format!("/customers/{}/sources/{id}", json::id(obj, "customer")?)
        }
        "source" => format!("/sources/{id}"),
        "payment_method" => format!("/payment_methods/{id}"),
        "subscription" => format!("/subscriptions/{id}"),
        "invoice" => format!("/invoices/{id}"),
        "charge" => format!("/charges/{id}"),
        "payment_intent" => format!("/payment_intents/{id}"),
        "invoice_payment" => format!("/invoice_payments/{id}"),
        _ => return None,
    };
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_events_and_versions() {
        let body = json!({"id": "evt_1", "type": "invoice.paid", "created": "1700000000", "data": {"object": {"id": "in_1"}}});
        let e = Event::parse(&body).unwrap();
        assert_eq!(
            (e.id, e.r#type, e.created),
            ("evt_1", "invoice.paid", 1_700_000_000)
        );
        assert!(Event::parse(&json!({"id": "evt_1", "type": "x", "created": 1})).is_none());
        let inv = json!({"status_transitions": {"finalized_at": 10, "paid_at": 12}});
        assert_eq!(version(&inv), Some(12));
        assert_eq!(
            version(&json!({"status": "active", "canceled_at": null})),
            None
        );
        assert_eq!(
            retrieve_path(&json!({"object": "card", "id": "card_1", "customer": "cus_1"})).unwrap(),
            "/customers/cus_1/sources/card_1"
        );
    }
}
