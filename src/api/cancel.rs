//! Cancel and resume the bucket's subscription: what every billing page
//! offers next to subscribe. Cancel ends it at the end of the paid period by
//! default (`?at=now` ends it at once); resume takes a pending cancelation
//! back. Both write to Stripe first (with an idempotency key) and store
//! Stripe's answer before answering, like every write route.
//!
//! The routes are declared in `SubscriptionApi`: poem-openapi writes one path
//! item per API struct, so a path two structs share (DELETE here, GET there)
//! would appear twice in the spec, and clients would see only one of them.

use poem_openapi::payload::Json;
use poem_openapi::types::{Example, ToJSON};
use poem_openapi::{Enum, Object};
use serde_json::Value;

use crate::api::access::{Access, UserAuth};
use crate::api::bucket::{BucketView, view};
use crate::api::schema::{Shaped, Subscription};
use crate::api::write::{check_idempotency_key, idempotency_key, store_answer};
use crate::app::ApiContext;
use crate::billing::{plan_state, status_of};
use crate::error::{ApiError, ApiResult};
use crate::store::objects::Stored;
use crate::stripe::cancel as stripe_cancel;

/// When a canceled subscription ends.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum CancelAt {
    /// At the end of the period already paid for (resumable until then).
    PeriodEnd,
    /// At once.
    Now,
}

/// The bucket (its plan after the change) and the Stripe subscription object.
#[derive(Object)]
#[oai(example)]
pub struct SubscriptionChange {
    pub bucket: BucketView,
    pub subscription: Shaped<Subscription>,
}

impl Example for SubscriptionChange {
    fn example() -> Self {
        let mut subscription = Subscription::example();
        subscription.cancel_at_period_end = true;
        subscription.canceled_at.0 = Some(1_723_000_000);
        SubscriptionChange {
            bucket: BucketView::example(),
            subscription: Shaped::new(subscription.to_json().unwrap_or_default()),
        }
    }
}

/// The bucket's live subscription (active, trialing, past due, unpaid or incomplete).
async fn live(ctx: &ApiContext, access: &Access, what: &str) -> ApiResult<Stored> {
    plan_state(&ctx.db, &ctx.cfg.catalog, &access.bucket.id)
        .await?
        .live_subscription()
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(
                "no_subscription",
                format!("the bucket has no live subscription to {what}"),
            )
        })
}

/// Store Stripe's answer, then answer the bucket as it now is.
async fn answer(
    ctx: &ApiContext,
    access: &Access,
    sub: Value,
    route: &str,
) -> ApiResult<Json<SubscriptionChange>> {
    store_answer(ctx, &sub, route).await?;
    Ok(Json(SubscriptionChange {
        bucket: view(ctx, &access.bucket, access.role).await?,
        subscription: Shaped::new(sub),
    }))
}

/// Cancel the bucket's live subscription at period end, or now (`at=now`,
/// and always for an `incomplete` one).
pub async fn cancel(
    ctx: &ApiContext,
    auth: &UserAuth,
    bucket_id: &str,
    at: Option<CancelAt>,
    caller_key: Option<&str>,
) -> ApiResult<Json<SubscriptionChange>> {
    let access = auth.write(ctx, bucket_id).await?;
    check_idempotency_key(caller_key)?;
    let sub = live(ctx, &access, "cancel").await?;
    let now = at == Some(CancelAt::Now) || status_of(&sub) == "incomplete";
    let step = if now { "now" } else { "period_end" };
    let key = idempotency_key(
        &access.bucket.id,
        &format!("cancelSubscription.{}.{step}", sub.id),
        caller_key,
    );
    let canceled = if now {
        stripe_cancel::now(&ctx.stripe, &sub.id, key).await?
    } else {
        stripe_cancel::at_period_end(&ctx.stripe, &sub.id, true, key).await?
    };
    tracing::info!(bucket = %access.bucket.id, subscription = %sub.id, at = step, "subscription canceled");
    answer(ctx, &access, canceled, "cancelSubscription").await
}

/// Take back a pending cancelation at period end.
pub async fn resume(
    ctx: &ApiContext,
    auth: &UserAuth,
    bucket_id: &str,
    caller_key: Option<&str>,
) -> ApiResult<Json<SubscriptionChange>> {
    let access = auth.write(ctx, bucket_id).await?;
    check_idempotency_key(caller_key)?;
    let sub = live(ctx, &access, "resume").await?;
    let key = idempotency_key(
        &access.bucket.id,
        &format!("resumeSubscription.{}", sub.id),
        caller_key,
    );
    let resumed = stripe_cancel::at_period_end(&ctx.stripe, &sub.id, false, key).await?;
    tracing::info!(bucket = %access.bucket.id, subscription = %sub.id, "subscription resumed");
    answer(ctx, &access, resumed, "resumeSubscription").await
}
