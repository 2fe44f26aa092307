//! Subscription calls. Every write asks Stripe to expand the latest invoice
//! and its payment intent, so one answer tells whether the first payment went
//! through, failed, or needs 3-D Secure.

use serde_json::Value;

use crate::stripe::{Stripe, StripeError, form};

/// What a subscription write or refresh expands.
pub const EXPAND: &str = "latest_invoice.payment_intent";

/// Create a subscription of the customer to one plan.
pub async fn create(
    stripe: &Stripe,
    customer: &str,
    bucket_id: &str,
    plan_id: &str,
    coupon: Option<&str>,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let mut pairs = vec![
        ("customer", customer),
        ("items[0][plan]", plan_id),
        ("metadata[bucket_id]", bucket_id),
        ("expand[]", EXPAND),
    ];
    if let Some(c) = coupon {
        pairs.push(("discounts[0][coupon]", c));
    }
    stripe
        .execute(form::post("/subscriptions", &pairs), idem)
        .await
}

/// Move a subscription's one item to another plan, in place.
pub async fn change_plan(
    stripe: &Stripe,
    sub_id: &str,
    item_id: &str,
    plan_id: &str,
    coupon: Option<&str>,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let mut pairs = vec![
        ("items[0][id]", item_id),
        ("items[0][plan]", plan_id),
        ("expand[]", EXPAND),
    ];
    if let Some(c) = coupon {
        pairs.push(("discounts[0][coupon]", c));
    }
    stripe
        .execute(form::post(format!("/subscriptions/{sub_id}"), &pairs), idem)
        .await
}

/// Cancel a subscription now (an abandoned `incomplete` one being replaced).
pub async fn cancel(
    stripe: &Stripe,
    sub_id: &str,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    stripe
        .execute(form::delete(format!("/subscriptions/{sub_id}")), idem)
        .await
}

/// One subscription, with its latest invoice and payment intent expanded.
pub async fn retrieve(stripe: &Stripe, sub_id: &str) -> Result<Value, StripeError> {
    stripe
        .execute(
            form::get(format!("/subscriptions/{sub_id}"), &[("expand[]", EXPAND)]),
            None,
        )
        .await
}

/// Every subscription of a customer, whatever its status (Stripe is asked, not
/// the cache, so a subscription created by a call whose answer was lost is found).
pub async fn list_all(stripe: &Stripe, customer: &str) -> Result<Vec<Value>, StripeError> {
    crate::stripe::pages::list_all(stripe, |after| {
        let mut pairs = vec![("customer", customer), ("status", "all"), ("limit", "100")];
        let after = after.unwrap_or_default();
        if !after.is_empty() {
            pairs.push(("starting_after", after.as_str()));
        }
        form::get("/subscriptions", &pairs)
    })
    .await
}

/// The first item's id (paysync subscriptions have exactly one item).
pub fn item_id(sub: &Value) -> Option<&str> {
    sub.pointer("/items/data/0/id").and_then(Value::as_str)
}
