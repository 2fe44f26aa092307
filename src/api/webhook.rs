//! `POST /webhooks/stripe`: Stripe's deliveries.
//!
//! The answer says only whether the event is safely stored: the signature is
//! checked over the raw body, the event is inserted into the inbox and
//! committed, and only then 200. The same transaction applies it to the cache
//! when the database alone can (`sync::ingest`), so a 200 means the read
//! routes already show it; an event that needs Stripe is left to the worker
//! (woken right away), so the answer never waits on Stripe, and an event whose
//! apply fails is still acknowledged once, then retried by us rather than by Stripe.
//! - bad or missing signature, stale or future timestamp, not an event: 400, nothing stored;
//! - a thin event (`v2.core.event`, sent by an event destination of Stripe's
//!   v2 API): 200, nothing stored (it carries no object to mirror);
//! - an id already in the inbox: 200, nothing applied again;
//! - an event paysync does not mirror (`invoice.upcoming`, whose invoice has
//!   no id yet), or whose object it does not know: stored, 200, nothing else.
//! - the inbox cannot be written: 503, so Stripe delivers it again later.
//!
//! It is a plain poem route, not part of the OpenAPI spec: Stripe is its only
//! caller, and SDK clients must not get a method for it.

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use poem_openapi::OperationId;
use serde_json::{Value, json};

use crate::app::ApiContext;
use crate::error::error_response;
use crate::store::now;
use crate::sync::events::Event;
use crate::sync::ingest::{Delivery, Received};
use crate::sync::{compact, signature};

pub const PATH: &str = "/webhooks/stripe";

#[handler]
pub async fn stripe_webhook(ctx: Data<&ApiContext>, req: &Request, body: Body) -> Response {
    let mut resp = receive(&ctx, req, body).await;
    resp.set_data(OperationId("stripeWebhook"));
    resp
}

async fn receive(ctx: &ApiContext, req: &Request, body: Body) -> Response {
    let bytes = match body.into_bytes().await {
        Ok(b) => b,
        Err(e) => return refuse("body_unreadable", &format!("could not read the body: {e}")),
    };
    if ctx.cfg.webhook_secrets.is_empty() {
        // Our configuration is at fault, not the delivery: 5xx, so Stripe keeps it for later.
        tracing::error!("webhook delivery refused: STRIPE_WEBHOOK_SECRET is not set");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook_not_configured",
            "no webhook secret is configured",
        );
    }
    let header = req
        .headers()
        .get("stripe-signature")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let tolerance = ctx.cfg.webhook_tolerance.as_secs() as i64;
    if let Err(e) = signature::verify(header, &bytes, &ctx.cfg.webhook_secrets, tolerance, now()) {
        metrics::counter!("paysync_webhook_refused_total", "reason" => e.code()).increment(1);
        tracing::warn!(reason = e.code(), "webhook delivery refused: {e}");
        return refuse(e.code(), &e.to_string());
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return refuse("not_an_event", "body is not UTF-8 JSON");
    };
    // Stored and parsed without Stripe's indentation (`sync::compact`).
    let body = compact::minify(text);
    let Ok(value) = serde_json::from_str::<Value>(&body) else {
        return refuse("not_an_event", "body is not JSON");
    };
    if let Some(object) = thin_event(&value) {
        tracing::warn!(object, r#type = ?value.get("type"), "thin event ignored: paysync mirrors snapshot events (data.object); point only a snapshot-event endpoint here");
        metrics::counter!("paysync_webhook_refused_total", "reason" => "thin_event").increment(1);
        return Response::builder()
            .status(StatusCode::OK)
            .content_type("application/json; charset=utf-8")
            .body(
                json!({"received": true, "ignored": "thin events are not mirrored"}).to_string(),
            );
    }
    let Some(event) = Event::parse(&value) else {
        return refuse(
            "not_an_event",
            "body is not a Stripe event (id, type, created, data.object)",
        );
    };
    let (id, r#type) = (event.id.to_string(), event.r#type.to_string());
    let object = compact::object_span(&body);
    let delivery = Delivery {
        body,
        value,
        object,
    };
    match ctx.inbox.insert(|| ctx.intake(), delivery).await {
        Ok(received) => {
            let duplicate = received == Received::Duplicate;
            metrics::counter!("paysync_webhook_received_total", "type" => r#type.clone(), "duplicate" => duplicate.to_string())
                .increment(1);
            tracing::debug!(event = %id, r#type = %r#type, ?received, "webhook stored");
            Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json; charset=utf-8")
                .body(json!({"received": true, "duplicate": duplicate}).to_string())
        }
        Err(e) => {
            tracing::error!(event = %id, error = %e, "webhook inbox cannot be written; answering 503 so Stripe retries");
            metrics::counter!("paysync_webhook_unstored_total").increment(1);
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "inbox_unavailable",
                "the event could not be stored; retry later",
            )
        }
    }
}

/// The `object` of a thin event (`v2.core.event`): an id and a type, no
/// object. Stripe's v2 event destinations send these; there is nothing to
/// mirror in them, and refusing them would only make Stripe retry for days.
fn thin_event(body: &Value) -> Option<&str> {
    body.get("object")
        .and_then(Value::as_str)
        .filter(|o| o.starts_with("v2."))
}

fn refuse(code: &str, message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, code, message)
}
