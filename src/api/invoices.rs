//! The bucket's invoices and receipts, from the cache, newest first, paged
//! with `limit` and `starting_after` like Stripe's own lists.

use std::collections::HashMap;

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use serde_json::Value;

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::contract::*;
use crate::api::schema::{Invoice, List, Receipt, Shaped};
use crate::app::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::store::Kind;
use crate::store::objects::{Page, Stored};
use crate::stripe::json;
use crate::stripe::shape::{charge as charge_shape, invoice as invoice_shape, invoice_payment};

/// Largest page.
pub const MAX_LIMIT: i64 = 100;

/// Check paging input: `limit` 1..=100, `starting_after` one of the bucket's objects of this kind.
async fn page(
    ctx: &ApiContext,
    kind: Kind,
    bucket_id: &str,
    limit: Option<i64>,
    after: Option<String>,
) -> ApiResult<Page> {
    if let Some(l) = limit
        && !(1..=MAX_LIMIT).contains(&l)
    {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = after
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    if let Some(a) = &after
        && ctx.db.bucket_object(kind, bucket_id, a).await?.is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_starting_after",
            format!("starting_after: no {} {a:?} in this bucket", kind.name()),
        ));
    }
    Ok(Page {
        limit: Some(limit.unwrap_or(MAX_LIMIT)),
        starting_after: after,
    })
}

/// Rows of a kind of the bucket, all of them (for the links below).
async fn all_rows(ctx: &ApiContext, kind: Kind, bucket_id: &str) -> ApiResult<Vec<Stored>> {
    Ok(ctx
        .db
        .bucket_objects(kind, bucket_id, &Page::default())
        .await?)
}

/// The bucket's invoice payments (since basil), open and canceled attempts
/// first, so that where two name the same payment, the paid one wins.
async fn invoice_payments(ctx: &ApiContext, bucket_id: &str) -> ApiResult<Vec<Value>> {
    let mut rows: Vec<Value> = all_rows(ctx, Kind::InvoicePayment, bucket_id)
        .await?
        .into_iter()
        .map(|r| r.data)
        .collect();
    rows.sort_by_key(invoice_payment::is_paid);
    Ok(rows)
}

/// Which invoice each charge and payment intent paid, from the cache: what
/// the bucket's invoices name themselves (until basil), and its invoice
/// payments (since). A charge may name its invoice itself too (`receipt`).
async fn invoice_links(ctx: &ApiContext, bucket_id: &str) -> ApiResult<HashMap<String, String>> {
    let mut links = HashMap::new();
    for inv in all_rows(ctx, Kind::Invoice, bucket_id).await? {
        for id in invoice_shape::named_payments(&inv.data) {
            links.insert(id.to_string(), inv.id.clone());
        }
    }
    for payment in invoice_payments(ctx, bucket_id).await? {
        let Some(invoice) = invoice_payment::invoice(&payment) else {
            continue;
        };
        for id in [
            invoice_payment::payment_intent(&payment),
            invoice_payment::charge(&payment),
        ]
        .into_iter()
        .flatten()
        {
            links.insert(id.to_string(), invoice.to_string());
        }
    }
    Ok(links)
}

/// The payment intent and charge that paid each invoice, where only its
/// invoice payments tell (since basil): invoice id → (intent, charge).
async fn payers(
    ctx: &ApiContext,
    bucket_id: &str,
) -> ApiResult<HashMap<String, (Option<String>, Option<String>)>> {
    let mut charge_of_intent = HashMap::new();
    for ch in all_rows(ctx, Kind::Charge, bucket_id).await? {
        if ch.status.as_deref() == Some("succeeded")
            && let Some(pi) = json::id(&ch.data, "payment_intent")
        {
            charge_of_intent.insert(pi.to_string(), ch.id.clone());
        }
    }
    let mut payers = HashMap::new();
    for payment in invoice_payments(ctx, bucket_id).await? {
        let Some(invoice) = invoice_payment::invoice(&payment) else {
            continue;
        };
        let intent = invoice_payment::payment_intent(&payment).map(str::to_string);
        let charge = invoice_payment::charge(&payment)
            .map(str::to_string)
            .or_else(|| charge_of_intent.get(intent.as_deref()?).cloned());
        payers.insert(invoice.to_string(), (intent, charge));
    }
    Ok(payers)
}

/// An invoice as the API shows it: Stripe's object, with `subscription`,
/// `paid`, `payment_intent` and `charge` always present (filled in from the
/// newer places when the invoice's API version moved them).
fn invoice_view(inv: Stored, payers: &HashMap<String, (Option<String>, Option<String>)>) -> Value {
    let mut data = inv.data;
    let (intent, charge) = payers.get(&inv.id).cloned().unwrap_or_default();
    invoice_shape::legacy_fields(&mut data, intent.as_deref(), charge.as_deref());
    data
}

/// A successful charge as a receipt: the charge object, with `receipt_url` and `invoice` always present.
fn receipt(charge: Stored, links: &HashMap<String, String>) -> Value {
    let mut data = charge.data;
    let invoice = charge_shape::invoice(&data)
        .map(str::to_string)
        .or_else(|| links.get(&charge.id).cloned())
        .or_else(|| json::id(&data, "payment_intent").and_then(|pi| links.get(pi).cloned()));
    if let Some(obj) = data.as_object_mut() {
        obj.insert(
            "invoice".into(),
            invoice.map(Value::String).unwrap_or(Value::Null),
        );
        obj.entry("receipt_url").or_insert(Value::Null);
    }
    data
}

statuses! {
    GetInvoices: "successfully returns invoices, newest first" {
        400 => "Missing/invalid parameters (limit out of 1..100, starting_after not one of the bucket's invoices)",
        401 => UNAUTHORIZED,
        404 => "This bucket hasn't invoices (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    GetReceipts: "successfully returns receipts, newest first" {
        400 => "Missing/invalid parameters (limit out of 1..100, starting_after not one of the bucket's receipts)",
        401 => UNAUTHORIZED,
        404 => "This bucket hasn't receipts (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

pub struct InvoicesApi;

#[OpenApi(tag = "Tag::Invoices")]
impl InvoicesApi {
    /// The bucket's invoices (Stripe invoice objects), newest first. Whatever
    /// the Stripe API version, each carries `subscription`, `paid`,
    /// `payment_intent` and `charge`.
    #[oai(
        path = "/api/bucket/:id/payment/invoices",
        method = "get",
        operation_id = "getInvoices"
    )]
    async fn get_invoices(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        /// Page size, 1 to 100 (default 100).
        limit: Query<Option<i64>>,
        /// Only invoices older than this invoice id (the last one of the previous page).
        starting_after: Query<Option<String>>,
    ) -> Reply<Json<List<Shaped<Invoice>>>, GetInvoices> {
        let access = auth.read(&ctx, &id).await?;
        let bucket = &access.bucket.id;
        let page = page(&ctx, Kind::Invoice, bucket, limit.0, starting_after.0).await?;
        let rows = ctx.db.bucket_objects(Kind::Invoice, bucket, &page).await?;
        if rows.is_empty() && page.starting_after.is_none() {
            return Err(ApiError::not_found("no_invoices", "this bucket hasn't invoices").into());
        }
        let payers = payers(&ctx, bucket).await?;
        ok(Json(List(
            rows.into_iter()
                .map(|r| Shaped::new(invoice_view(r, &payers)))
                .collect(),
        )))
    }

    /// The bucket's receipts: its successful charges (with `receipt_url` and `invoice`), newest first.
    #[oai(
        path = "/api/bucket/:id/payment/receipts",
        method = "get",
        operation_id = "getReceipts"
    )]
    async fn get_receipts(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        /// Page size, 1 to 100 (default 100).
        limit: Query<Option<i64>>,
        /// Only receipts older than this charge id (the last one of the previous page).
        starting_after: Query<Option<String>>,
    ) -> Reply<Json<List<Shaped<Receipt>>>, GetReceipts> {
        let access = auth.read(&ctx, &id).await?;
        let bucket = &access.bucket.id;
        let page = page(&ctx, Kind::Charge, bucket, limit.0, starting_after.0).await?;
        let rows = ctx
            .db
            .bucket_objects_where(Kind::Charge, bucket, "status = 'succeeded'", &page)
            .await?;
        if rows.is_empty() && page.starting_after.is_none() {
            return Err(ApiError::not_found("no_receipts", "this bucket hasn't receipts").into());
        }
        let links = invoice_links(&ctx, bucket).await?;
        ok(Json(List(
            rows.into_iter()
                .map(|r| Shaped::new(receipt(r, &links)))
                .collect(),
        )))
    }
}
