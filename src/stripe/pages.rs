//! Auto-paging of Stripe list endpoints.

use serde_json::Value;
use stripe_client_core::RequestBuilder;

use super::{Stripe, StripeError};

/// Page size asked of Stripe (its maximum).
pub const PAGE: i64 = 100;

/// Every object of a list endpoint. `page(after)` builds the request of the page
/// after the object `after` (None: the first page). Works whatever order the
/// endpoint lists in: it follows `starting_after` until `has_more` is false.
pub async fn list_all<F>(stripe: &Stripe, mut page: F) -> Result<Vec<Value>, StripeError>
where
    F: FnMut(Option<String>) -> RequestBuilder,
{
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let list = stripe.execute(page(after.clone()), None).await?;
        let data = list
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let last = data
            .last()
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        out.extend(data);
        let more = list
            .get("has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match last {
            // A stand-in that repeats a page would loop forever: stop instead.
            Some(id) if more && after.as_deref() != Some(id.as_str()) => after = Some(id),
            _ => return Ok(out),
        }
    }
}
