//! Catch-up from Stripe's Events API: every event since a stored cursor goes
//! into the same inbox as webhook deliveries (an event already delivered is a
//! no-op there), and the apply worker applies it the same way.
//!
//! Stripe keeps events 30 days. The listing asks for `created >= cursor` and
//! follows `starting_after` to the end, whatever order the endpoint lists in;
//! the cursor moves to the newest `created` seen only once every listed event
//! is stored, so an interrupted catch-up repeats (harmlessly) rather than skips.

use serde_json::Value;
use stripe_client_core::StripeRequest;
use stripe_core::event::ListEvent;

use crate::store::inbox::NewEvent;
use crate::store::{Db, now};
use crate::stripe::pages::{PAGE, list_all};
use crate::stripe::{Stripe, json};

pub const CURSOR: &str = "events:catchup";
/// How long Stripe keeps events.
pub const WINDOW_SECS: i64 = 30 * 86_400;

/// What one catch-up did.
#[derive(Debug, Clone, Default)]
pub struct CatchUp {
    /// Events listed by Stripe.
    pub listed: u64,
    /// Events new to the inbox.
    pub stored: u64,
    /// The cursor was older than Stripe's window (or absent): events may have
    /// been lost, so a full reconcile should follow.
    pub needs_full: bool,
    /// The cursor after the run (unix seconds).
    pub cursor: i64,
}

/// Event types whose objects the cache mirrors (the rest are not fetched).
pub fn relevant(ty: &str) -> bool {
    [
        "customer.",
        "payment_method.",
        "invoice.",
        "charge.",
        "payment_intent.",
    ]
    .iter()
    .any(|p| ty.starts_with(p))
}

pub async fn run(db: &Db, stripe: &Stripe) -> anyhow::Result<CatchUp> {
    let started = now();
    let oldest = started - WINDOW_SECS + 60;
    let stored_cursor = db
        .cursor(CURSOR)
        .await?
        .and_then(|(v, _)| v.parse::<i64>().ok());
    let (since, needs_full) = match stored_cursor {
        Some(c) if c >= oldest => (c, false),
        Some(c) => {
            tracing::warn!(
                cursor = c,
                "catch-up cursor is older than Stripe's 30-day event window: a full reconcile is needed"
            );
            (oldest, true)
        }
        None => (oldest, false),
    };
    let events = list_all(stripe, |after| {
        let mut req = ListEvent::new().limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        let mut b = req.build();
        let q = b.query.take().unwrap_or_default();
        let sep = if q.is_empty() { "" } else { "&" };
        b.query = Some(format!("{q}{sep}created[gte]={since}"));
        b
    })
    .await?;
    let mut out = CatchUp {
        listed: events.len() as u64,
        needs_full,
        cursor: since,
        ..Default::default()
    };
    let mut newest = since;
    for e in &events {
        let (Some(id), Some(ty), Some(created)) = (
            json::str(e, "id"),
            json::str(e, "type"),
            json::int(e, "created"),
        ) else {
            continue;
        };
        newest = newest.max(created);
        if !relevant(ty) {
            continue;
        }
        let body = Value::to_string(e);
        if db
            .insert_event(&NewEvent {
                id,
                r#type: ty,
                created,
                body: &body,
                source: "catchup",
                customer: e.pointer("/data/object").and_then(json::customer_of),
                applied: false,
            })
            .await?
        {
            out.stored += 1;
        }
    }
    db.set_cursor(CURSOR, &newest.to_string()).await?;
    out.cursor = newest;
    metrics::gauge!("paysync_catchup_cursor_age_seconds").set((now() - newest) as f64);
    metrics::counter!("paysync_catchup_events_stored_total").increment(out.stored);
    Ok(out)
}
