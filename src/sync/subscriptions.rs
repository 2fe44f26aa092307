//! Refreshing one subscription and what its latest payment made (invoice,
//! its invoice payments, payment intent, charge) from Stripe into the cache.
//!
//! Everything is fetched first and stored only when every fetch succeeded: a
//! Stripe failure midway leaves the cache as it was (the subscription then
//! reaches the cache with the next refresh, webhook or reconcile, whole).
//! Children are stored before the subscription, so whoever sees the new
//! subscription state also finds its invoice and receipt.

use serde_json::Value;

use crate::store::{Db, Watermark};
use crate::stripe::shape::{invoice as invoice_shape, invoice_payment};
use crate::stripe::{Stripe, StripeError, invoices, json, subscriptions};
use crate::sync::apply;

/// One subscription state as Stripe shows each object on its own (the
/// expansions paysync asked for collapsed back to ids, so rows look the same
/// whether they came from a write, a webhook or the reconciler).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub subscription: Value,
    pub invoice: Option<Value>,
    /// The invoice's InvoicePayments (since basil).
    pub invoice_payments: Vec<Value>,
    pub payment_intent: Option<Value>,
    pub charge: Option<Value>,
    /// The invoice's `confirmation_secret.client_secret` (since basil; not stored).
    pub client_secret: Option<String>,
}

impl Snapshot {
    pub fn status(&self) -> &str {
        json::str(&self.subscription, "status").unwrap_or("")
    }
    pub fn id(&self) -> &str {
        json::str(&self.subscription, "id").unwrap_or("")
    }
}

/// An expandable field: the object when expanded, else fetched by id with `fetch`.
async fn expanded<F, Fut>(field: Option<&Value>, fetch: F) -> Result<Option<Value>, StripeError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Value, StripeError>>,
{
    match field {
        Some(Value::Object(_)) => Ok(field.cloned()),
        Some(Value::String(id)) if !id.is_empty() => fetch(id.clone()).await.map(Some),
        _ => Ok(None),
    }
}

fn collapse(obj: &mut Value, key: &str) {
    if let Some(id) = obj.get(key).and_then(|v| v.get("id")).cloned() {
        obj[key] = id;
    }
}

/// Complete a subscription answer (expanded or not) into a snapshot, fetching
/// what Stripe did not expand. Stores nothing.
///
/// The payment intent is the one the invoice names (until basil), else the
/// one of its default InvoicePayment; the charge is the invoice's (until
/// basil), else the intent's latest, else the one an InvoicePayment names.
pub async fn complete(stripe: &Stripe, mut sub: Value) -> Result<Snapshot, StripeError> {
    let mut invoice = expanded(sub.get("latest_invoice"), |id| async move {
        invoices::invoice(stripe, &id).await
    })
    .await?;
    let mut includables = invoice
        .as_mut()
        .map(invoice_shape::take_includables)
        .unwrap_or_default();
    if includables.more_payments
        && let Some(id) = invoice.as_ref().and_then(|i| json::str(i, "id"))
    {
        includables.payments = invoices::payments_of_invoice(stripe, id).await?;
    }
    let paid_by = invoice_payment::default_of(&includables.payments);
    let id = |id: &str| Value::String(id.to_string());
    let intent_field = invoice
        .as_ref()
        .and_then(invoice_shape::payment_intent_field)
        .cloned()
        .or_else(|| paid_by.and_then(invoice_payment::payment_intent).map(id));
    let mut payment_intent = expanded(intent_field.as_ref(), |id| async move {
        invoices::payment_intent(stripe, &id).await
    })
    .await?;
    let charge_field = invoice
        .as_ref()
        .and_then(invoice_shape::charge_field)
        .or_else(|| payment_intent.as_ref()?.get("latest_charge"))
        .filter(|c| !c.is_null())
        .cloned()
        .or_else(|| paid_by.and_then(invoice_payment::charge).map(id));
    let charge = expanded(charge_field.as_ref(), |id| async move {
        invoices::charge(stripe, &id).await
    })
    .await?;
    collapse(&mut sub, "latest_invoice");
    if let Some(inv) = invoice.as_mut() {
        collapse(inv, "payment_intent");
    }
    if let Some(pi) = payment_intent.as_mut() {
        collapse(pi, "invoice");
    }
    Ok(Snapshot {
        subscription: sub,
        invoice,
        invoice_payments: includables.payments,
        payment_intent,
        charge,
        client_secret: includables.client_secret,
    })
}

/// Store a snapshot (children first; invoice payments after their invoice,
/// whose customer they are filed under). `route` names the writer in the watermark.
pub async fn store(db: &Db, snap: &Snapshot, route: &str) -> sqlx::Result<()> {
    let wm = Watermark::api(route);
    let children = [&snap.charge, &snap.payment_intent, &snap.invoice]
        .into_iter()
        .flatten()
        .chain(&snap.invoice_payments);
    for obj in children {
        apply::store(db, obj, &wm, false, true).await?;
    }
    apply::store(db, &snap.subscription, &wm, false, true).await?;
    Ok(())
}

/// Fetch a subscription with its latest invoice, payment intent and charge, and store them.
pub async fn refresh(
    db: &Db,
    stripe: &Stripe,
    sub_id: &str,
    route: &str,
) -> crate::error::ApiResult<Snapshot> {
    let sub = subscriptions::retrieve(stripe, sub_id).await?;
    let snap = complete(stripe, sub).await?;
    store(db, &snap, route).await?;
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansions_collapse_to_ids() {
        let mut sub = json!({"id": "sub_1", "latest_invoice": {"id": "in_1", "object": "invoice"}});
        collapse(&mut sub, "latest_invoice");
        assert_eq!(sub["latest_invoice"], "in_1");
        let mut plain = json!({"id": "sub_1", "latest_invoice": "in_1"});
        collapse(&mut plain, "latest_invoice");
        assert_eq!(plain["latest_invoice"], "in_1");
    }
}
