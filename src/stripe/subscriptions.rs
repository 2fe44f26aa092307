//! Subscription calls. Every write asks Stripe to expand the latest invoice
//! and what tells how its payment went, so one answer says whether the first
//! payment went through, failed, or needs 3-D Secure: its payment intent
//! until basil; since, its InvoicePayments and confirmation secret (Stripe
//! refuses to expand `latest_invoice.payment_intent` at those versions).

use serde_json::Value;

use crate::stripe::{Stripe, StripeError, form};

/// What a subscription write or refresh expands at the pinned version.
fn expand(stripe: &Stripe) -> &'static [&'static str] {
    if stripe.invoice_payments() {
        &[
            "latest_invoice.payments",
            "latest_invoice.confirmation_secret",
        ]
    } else {
        &["latest_invoice.payment_intent"]
    }
}

/// `pairs` with the `expand[]` of a subscription write or refresh.
fn with_expand<'a>(stripe: &Stripe, mut pairs: Vec<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    pairs.extend(expand(stripe).iter().map(|e| ("expand[]", *e)));
    pairs
}

/// Create a subscription of the customer to one plan.
pub async fn create(
    stripe: &Stripe,
    customer: &str,
    bucket_id: &str,
    plan_id: &str,
    coupon: Option<&str>,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let mut pairs = with_expand(
        stripe,
        vec![
            ("customer", customer),
            ("items[0][plan]", plan_id),
            ("metadata[bucket_id]", bucket_id),
        ],
    );
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
    let mut pairs = with_expand(
        stripe,
        vec![("items[0][id]", item_id), ("items[0][plan]", plan_id)],
    );
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

/// One subscription, with its latest invoice and payment expanded.
pub async fn retrieve(stripe: &Stripe, sub_id: &str) -> Result<Value, StripeError> {
    let pairs = with_expand(stripe, vec![]);
    stripe
        .execute(form::get(format!("/subscriptions/{sub_id}"), &pairs), None)
        .await
}

/// Every subscription of a customer, whatever its status (Stripe is asked, not
/// the cache, so a subscription created by a call whose answer was lost is
/// found), with their discounts expanded where those are ids (since basil),
/// so their coupons can be read.
pub async fn list_all(stripe: &Stripe, customer: &str) -> Result<Vec<Value>, StripeError> {
    let discounts = stripe.invoice_payments();
    crate::stripe::pages::list_all(stripe, |after| {
        let mut pairs = vec![("customer", customer), ("status", "all"), ("limit", "100")];
        if discounts {
            pairs.push(("expand[]", "data.discounts"));
        }
        let after = after.unwrap_or_default();
        if !after.is_empty() {
            pairs.push(("starting_after", after.as_str()));
        }
        form::get("/subscriptions", &pairs)
    })
    .await
}
