//! Cancel and resume the bucket's subscription: what every billing page
//! offers next to subscribe. Cancel ends it at the end of the paid period by
//! default (`?at=now` ends it at once); resume takes a pending cancelation
//! back. Both write to Stripe first (with an idempotency key) and store
//! Stripe's answer before answering, like every write route.

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use serde_json::Value;

use crate::api::Tag;
use crate::api::access::{Access, UserAuth};
use crate::api::bucket::{BucketView, view};
use crate::api::write::{check_idempotency_key, idempotency_key, store_answer};
use crate::app::ApiContext;
use crate::billing::{plan_state, status_of};
use crate::error::{ApiError, ApiResult};
use crate::store::objects::Stored;
use crate::stripe::cancel;

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
#[derive(Object, Debug)]
pub struct SubscriptionChange {
    pub bucket: BucketView,
    pub subscription: Value,
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
        subscription: sub,
    }))
}

pub struct CancelApi;

#[OpenApi(tag = "Tag::Subscription")]
impl CancelApi {
    /// Cancel the bucket's subscription: at the end of the paid period by default
    /// (`cancel_at_period_end`; the bucket keeps its plan until then and may resume),
    /// or now with `at=now` (the bucket falls back to its trial's or the free plan).
    /// A subscription whose first payment never went through (`incomplete`) ends now.
    #[oai(
        path = "/api/bucket/:id/payment/subscription",
        method = "delete",
        operation_id = "cancelSubscription"
    )]
    async fn cancel(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        /// `period_end` (default) or `now`.
        at: Query<Option<CancelAt>>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> ApiResult<Json<SubscriptionChange>> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let sub = live(&ctx, &access, "cancel").await?;
        let now = at.0 == Some(CancelAt::Now) || status_of(&sub) == "incomplete";
        let step = if now { "now" } else { "period_end" };
        let key = idempotency_key(
            &access.bucket.id,
            &format!("cancelSubscription.{}.{step}", sub.id),
            idempotency.as_deref(),
        );
        let canceled = if now {
            cancel::now(&ctx.stripe, &sub.id, key).await?
        } else {
            cancel::at_period_end(&ctx.stripe, &sub.id, true, key).await?
        };
        tracing::info!(bucket = %access.bucket.id, subscription = %sub.id, at = step, "subscription canceled");
        answer(&ctx, &access, canceled, "cancelSubscription").await
    }

    /// Take back a cancelation at period end: the subscription goes on renewing.
    /// A subscription that already ended cannot be resumed (404: subscribe again).
    #[oai(
        path = "/api/bucket/:id/payment/subscription/resume",
        method = "post",
        operation_id = "resumeSubscription"
    )]
    async fn resume(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> ApiResult<Json<SubscriptionChange>> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let sub = live(&ctx, &access, "resume").await?;
        let key = idempotency_key(
            &access.bucket.id,
            &format!("resumeSubscription.{}", sub.id),
            idempotency.as_deref(),
        );
        let resumed = cancel::at_period_end(&ctx.stripe, &sub.id, false, key).await?;
        tracing::info!(bucket = %access.bucket.id, subscription = %sub.id, "subscription resumed");
        answer(&ctx, &access, resumed, "resumeSubscription").await
    }
}
