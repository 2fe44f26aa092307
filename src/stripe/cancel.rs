//! Ending a subscription and taking that back: cancel at the end of the paid
//! period (the default a billing page offers), cancel now, and resume a
//! subscription whose cancelation at period end is still pending.

use serde_json::Value;

use crate::stripe::{Stripe, StripeError, form};

/// Set (`true`) or clear (`false`) `cancel_at_period_end`: the subscription
/// runs to the end of the period it is paid for, then ends; clearing it before
/// then keeps it going as if nothing happened.
pub async fn at_period_end(
    stripe: &Stripe,
    sub_id: &str,
    cancel: bool,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let flag = if cancel { "true" } else { "false" };
    stripe
        .execute(
            form::post(
                format!("/subscriptions/{sub_id}"),
                &[("cancel_at_period_end", flag)],
            ),
            idem,
        )
        .await
}

/// End a subscription now (no refund: Stripe's default).
pub async fn now(
    stripe: &Stripe,
    sub_id: &str,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    crate::stripe::subscriptions::cancel(stripe, sub_id, idem).await
}
