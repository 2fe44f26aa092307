//! Invoice. Until basil: `subscription`, `paid`, `charge`, `payment_intent`.
//! Since: `parent.subscription_details.subscription`, `status == "paid"`,
//! and the payments as InvoicePayment objects, which webhooks never carry
//! (`payments` and `confirmation_secret` come only when a call expands them).

use serde_json::Value;

use crate::stripe::json;

/// The subscription that billed the invoice.
pub fn subscription(inv: &Value) -> Option<&str> {
    json::id(inv, "subscription").or_else(|| {
        let details = inv.pointer("/parent/subscription_details")?;
        json::id(details, "subscription")
    })
}

/// Is the invoice paid? `status` says so in every version (`paid` is the older flag).
pub fn is_paid(inv: &Value) -> bool {
    json::str(inv, "status") == Some("paid") || json::bool(inv, "paid") == Some(true)
}

/// The payment intent the invoice names itself, an id or an expanded object
/// (until basil; since, see [`Includables::payments`]).
pub fn payment_intent_field(inv: &Value) -> Option<&Value> {
    inv.get("payment_intent").filter(|v| !v.is_null())
}

/// The charge the invoice names itself, an id or an expanded object (until basil).
pub fn charge_field(inv: &Value) -> Option<&Value> {
    inv.get("charge").filter(|v| !v.is_null())
}

/// The ids of the charge and payment intent the invoice names itself (until basil).
pub fn named_payments(inv: &Value) -> impl Iterator<Item = &str> {
    [json::id(inv, "charge"), json::id(inv, "payment_intent")]
        .into_iter()
        .flatten()
}

/// What an invoice fetched with `expand[]=payments` and
/// `expand[]=confirmation_secret` carries beyond what a webhook shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Includables {
    /// Its InvoicePayments (the first page Stripe embeds).
    pub payments: Vec<Value>,
    /// Stripe has more payments than it embedded (list them by invoice).
    pub more_payments: bool,
    /// `confirmation_secret.client_secret`: what Stripe.js confirms the payment with.
    pub client_secret: Option<String>,
}

/// Take the includable fields out of an invoice, so the copy stored is the
/// object as webhooks deliver it (a stored client secret would only be a
/// secret kept for nothing).
pub fn take_includables(inv: &mut Value) -> Includables {
    let Some(map) = inv.as_object_mut() else {
        return Includables::default();
    };
    let payments = map.remove("payments").unwrap_or(Value::Null);
    let secret = map.remove("confirmation_secret").unwrap_or(Value::Null);
    Includables {
        payments: payments
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        more_payments: json::bool(&payments, "has_more").unwrap_or(false),
        client_secret: json::str(&secret, "client_secret").map(str::to_string),
    }
}

/// Fill in the fields older API callers read where this invoice's version no
/// longer has them: `subscription`, `paid`, and the `payment_intent` and
/// `charge` that paid it (found through its InvoicePayment by the caller).
/// Fields the invoice has are left as they are.
pub fn legacy_fields(inv: &mut Value, payment_intent: Option<&str>, charge: Option<&str>) {
    let subscription = subscription(inv).map(str::to_string);
    let paid = is_paid(inv);
    let Some(map) = inv.as_object_mut() else {
        return;
    };
    let id = |v: Option<String>| v.map(Value::String).unwrap_or(Value::Null);
    map.entry("subscription")
        .or_insert_with(|| id(subscription));
    map.entry("paid").or_insert(Value::Bool(paid));
    map.entry("payment_intent")
        .or_insert_with(|| id(payment_intent.map(str::to_string)));
    map.entry("charge")
        .or_insert_with(|| id(charge.map(str::to_string)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::shape::fixtures;
    use serde_json::json;

    #[test]
    fn both_versions_read_the_same() {
        let (old, new) = fixtures::invoice();
        for inv in [&old, &new] {
            assert_eq!(subscription(inv), Some("sub_1TfPsyncStory01"));
            assert!(is_paid(inv));
        }
        assert_eq!(
            named_payments(&old).collect::<Vec<_>>(),
            ["ch_3TfPsyncStory01", "pi_3TfPsyncStory01"]
        );
        assert_eq!(named_payments(&new).count(), 0);
        assert!(payment_intent_field(&new).is_none());
        let open = json!({"status": "open", "paid": false});
        assert!(!is_paid(&open));
    }

    #[test]
    fn includables_are_taken_out() {
        let (_, mut inv) = fixtures::invoice();
        let plain = inv.clone();
        inv["payments"] =
            json!({"object": "list", "data": [fixtures::invoice_payment()], "has_more": false});
        inv["confirmation_secret"] =
            json!({"client_secret": "pi_x_secret_y", "type": "payment_intent"});
        let taken = take_includables(&mut inv);
        assert_eq!(inv, plain);
        assert_eq!(taken.payments, vec![fixtures::invoice_payment()]);
        assert_eq!(taken.client_secret.as_deref(), Some("pi_x_secret_y"));
        assert!(!taken.more_payments);
    }

    #[test]
    fn legacy_fields_make_the_newer_invoice_read_like_the_older() {
        let (old, mut new) = fixtures::invoice();
        legacy_fields(
            &mut new,
            Some("pi_3TfPsyncStory01"),
            Some("ch_3TfPsyncStory01"),
        );
        for key in ["subscription", "paid", "payment_intent", "charge"] {
            assert_eq!(new[key], old[key], "{key}");
        }
        let mut unchanged = old.clone();
        legacy_fields(&mut unchanged, None, None);
        assert_eq!(unchanged, old);
    }
}
