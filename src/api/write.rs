//! What every write route shares: the bucket's Stripe customer (created on the
//! first write that needs it), idempotency keys, and storing Stripe's answer in
//! the cache before answering (read-your-writes).

use std::collections::HashMap;

use serde_json::Value;
use stripe_core::customer::CreateCustomer;
use tokio::sync::Mutex;

use crate::app::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::store::Watermark;
use crate::store::buckets::Bucket;
use crate::stripe::json;
use crate::sync::apply;

/// Serializes customer creation inside this process; across replicas the
/// Stripe idempotency key (derived from the bucket id) makes Stripe answer
/// every concurrent first write with the same customer.
static CUSTOMER_CREATION: Mutex<()> = Mutex::const_new(());

/// The idempotency key of a Stripe write: the caller's `Idempotency-Key`
/// namespaced by bucket and route, or None (the gateway then makes a fresh one).
pub fn idempotency_key(bucket_id: &str, route: &str, caller: Option<&str>) -> Option<String> {
    caller
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| format!("paysync:{bucket_id}:{route}:{k}"))
}

/// Reject a caller's idempotency key that Stripe would refuse (max 255 characters).
pub fn check_idempotency_key(caller: Option<&str>) -> ApiResult<()> {
    match caller {
        Some(k) if k.len() > 200 => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be at most 200 characters",
        )),
        _ => Ok(()),
    }
}

/// The bucket's Stripe customer id, creating (and mirroring) the customer on first need.
pub async fn ensure_customer(ctx: &ApiContext, bucket: &Bucket) -> ApiResult<String> {
    if let Some(id) = &bucket.stripe_customer_id {
        return Ok(id.clone());
    }
    let _guard = CUSTOMER_CREATION.lock().await;
    // Another request may have created it while we waited.
    if let Some(id) = ctx
        .db
        .bucket(&bucket.id)
        .await?
        .and_then(|b| b.stripe_customer_id)
    {
        return Ok(id);
    }
    let req = CreateCustomer::new()
        .name(bucket.name.clone())
        .metadata(HashMap::from([(
            "bucket_id".to_string(),
            bucket.id.clone(),
        )]));
    let customer = ctx
        .stripe
        .send(&req, Some(format!("paysync:customer:{}", bucket.id)))
        .await?;
    let id = json::str(&customer, "id")
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("Stripe created a customer without id")))?
        .to_string();
    let linked = ctx
        .db
        .link_customer(&bucket.id, &id)
        .await?
        .unwrap_or_else(|| id.clone());
    store_answer(ctx, &customer, "customer.create").await?;
    tracing::info!(bucket = %bucket.id, customer = %linked, "Stripe customer created");
    Ok(linked)
}

/// Store an object Stripe just answered a write with, before the route answers.
/// Forced: our own answer is at least as new as anything stored in the same second.
pub async fn store_answer(ctx: &ApiContext, obj: &Value, route: &str) -> ApiResult<()> {
    apply::store(&ctx.db, obj, &Watermark::api(route), false, true).await?;
    Ok(())
}

/// Store a tombstone for an object Stripe just deleted or detached.
pub async fn store_deleted(ctx: &ApiContext, obj: &Value, route: &str) -> ApiResult<()> {
    apply::store(&ctx.db, obj, &Watermark::api(route), true, true).await?;
    Ok(())
}
