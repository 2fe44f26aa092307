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

/// Which invoice each charge and payment intent paid, from the cached invoices
/// (a charge does not always name its invoice).
async fn invoice_links(ctx: &ApiContext, bucket_id: &str) -> ApiResult<HashMap<String, String>> {
    let mut links = HashMap::new();
    for inv in ctx
        .db
        .bucket_objects(Kind::Invoice, bucket_id, &Page::default())
        .await?
    {
        for key in ["charge", "payment_intent"] {
            if let Some(id) = json::id(&inv.data, key) {
                links.insert(id.to_string(), inv.id.clone());
            }
        }
    }
    Ok(links)
}

/// A successful charge as a receipt: the charge object, with `receipt_url` and `invoice` always present.
fn receipt(charge: Stored, links: &HashMap<String, String>) -> Value {
    let mut data = charge.data;
    let invoice = json::id(&data, "invoice")
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
    /// The bucket's invoices (Stripe invoice objects), newest first.
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
        ok(Json(List(
            rows.into_iter().map(|r| Shaped::new(r.data)).collect(),
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
