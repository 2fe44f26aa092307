//! Subscriptions: subscribe (with a coupon, and 3-D Secure when the first
//! payment needs it), confirm a payment intent after 3-D Secure, and the
//! bucket's subscription and its state, read from the cache.

use crate::api::text::{NullableText, OptText, Text};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::bucket::{BucketView, view};
use crate::api::cancel;
use crate::api::cards::{attach_card, has_default_payment_method};
use crate::api::contract::*;
use crate::api::schema::{Shaped, Subscription};
use crate::api::write::{check_idempotency_key, ensure_customer, idempotency_key};
use crate::app::ApiContext;
use crate::billing::{self, plan_name, plan_state};
use crate::error::{ApiError, ApiResult, StripeErrorInfo};
use crate::plans::{Catalog, Plan};
use crate::store::Watermark;
use crate::store::buckets::Bucket;
use crate::stripe::shape::{
    invoice as invoice_shape, invoice_payment, payment_intent, subscription as subscription_shape,
};
use crate::stripe::{invoices, json, subscriptions};
use crate::sync::subscriptions::{self as refresh, Snapshot};

#[derive(Object, Debug)]
pub struct SubscribeBody {
    /// Catalog name of the plan to subscribe to (or to move the subscription to).
    pub plan: Text,
    /// A card token (`tok_…`) to attach as the default card first.
    pub stripe_token: OptText,
    /// A Stripe coupon id, applied to the subscription.
    pub coupon_id: OptText,
}

#[derive(Object, Debug)]
pub struct PlanBody {
    /// Catalog name of the plan.
    pub plan: Text,
}

/// The payment intent of a first payment that needs 3-D Secure: hand
/// `client_secret` to Stripe.js, then call paymentIntentSucceed.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct PaymentIntentView {
    pub id: String,
    pub client_secret: Option<String>,
    pub status: String,
}

/// The bucket, its Stripe subscription object (with `current_period_start`
/// and `current_period_end` whatever the Stripe API version), and
/// `payment_intent` when the first payment needs 3-D Secure (the
/// subscription is `incomplete` until then).
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct SubscribeAnswer {
    // No doc comments on the object-typed fields: poem-openapi would wrap
    // their $ref in an allOf, which some SDK generators cannot read.
    pub bucket: BucketView,
    pub subscription: Shaped<Subscription>,
    #[oai(skip_serializing_if_is_none)]
    pub payment_intent: Option<PaymentIntentView>,
}

impl Example for SubscribeAnswer {
    fn example() -> Self {
        SubscribeAnswer {
            bucket: BucketView::example(),
            subscription: Shaped::example(),
            payment_intent: None,
        }
    }
}

/// `{"bucket": bucket}`: the bucket, with the plan it now has.
#[derive(Object, Debug)]
#[oai(example)]
pub struct BucketAnswer {
    pub bucket: BucketView,
}

impl Example for BucketAnswer {
    fn example() -> Self {
        BucketAnswer {
            bucket: BucketView::example(),
        }
    }
}

/// Always carries all three keys: `plan` and `canceled_at` are `null` when
/// unknown / not canceled.
#[derive(Object, Debug)]
#[oai(example)]
pub struct SubscriptionState {
    /// Stripe status of the subscription (`active`, `incomplete`, `canceled`…).
    pub status: String,
    /// Catalog name of its plan.
    pub plan: OptText,
    /// When it was canceled (RFC 3339), if it was.
    pub canceled_at: OptText,
}

impl Example for SubscriptionState {
    fn example() -> Self {
        SubscriptionState {
            status: "active".into(),
            plan: Some(NullableText("starter".into())),
            canceled_at: None,
        }
    }
}

statuses! {
    Subscribe: "successfully upgraded (or moved to the plan)" {
        400 => "missing/invalid parameters (an unknown plan, a token or coupon Stripe refused, an invalid Idempotency-Key)",
        401 => UNAUTHORIZED,
        402 => "the card was declined (the stripe_token's, or at the first payment)",
        403 => "need a credit card OR not allowed to subscribe to the plan; or the caller's role may not change billing",
        404 => UNKNOWN_BUCKET,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => "stripe/database error",
        503 => UNAVAILABLE,
    }
}

statuses! {
    PaymentIntentSucceed: "successfully upgraded" {
        400 => "missing/invalid parameters (an unknown plan, not a payment intent id, an intent not succeeded, not this bucket's, or for another plan)",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => UNKNOWN_BUCKET,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => "stripe/database error",
        503 => UNAVAILABLE,
    }
}

statuses! {
    CancelSubscription: "the subscription is canceled (at period end, or now): the bucket with its plan now, and the subscription" {
        400 => "an invalid at or Idempotency-Key, or Stripe refused the request",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => "the bucket has no live subscription to cancel (or no such bucket, or the caller is not a member)",
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    ResumeSubscription: "the subscription goes on renewing: the bucket and the subscription" {
        400 => "an invalid Idempotency-Key, or Stripe refused the request",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => "the bucket has no live subscription to resume (or no such bucket, or the caller is not a member)",
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    GetSubscription: "successfully retrieved the subscription" {
        401 => UNAUTHORIZED,
        404 => "the bucket doesn't have any subscription (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    GetSubscriptionState: "successfully retrieved the subscription's state" {
        401 => UNAUTHORIZED,
        404 => "the bucket doesn't have any subscription (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

/// The catalog plan of a subscribe request: unknown → 400, not open to self-service → 403.
pub fn subscribable<'a>(catalog: &'a Catalog, name: &str) -> ApiResult<&'a Plan> {
    let plan = known(catalog, name)?;
    match plan.stripe_id {
        Some(_) if plan.subscribable => Ok(plan),
        _ => Err(ApiError::forbidden(
            "plan_not_allowed",
            format!("plan {name:?} cannot be subscribed to"),
        )),
    }
}

/// A catalog plan by name; unknown → 400.
pub fn known<'a>(catalog: &'a Catalog, name: &str) -> ApiResult<&'a Plan> {
    catalog
        .get(name.trim())
        .ok_or_else(|| ApiError::bad_request("unknown_plan", format!("unknown plan {name:?}")))
}

fn non_empty(s: &OptText) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// One subscribe at a time per bucket in this process: two concurrent clicks
/// must not create two subscriptions (Stripe's list, read under the lock, is
/// the check across replicas).
async fn bucket_lock(bucket_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
    static LOCKS: LazyLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let lock = {
        let mut map = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(bucket_id.to_string()).or_default().clone()
    };
    lock.lock_owned().await
}

/// The payment intent to hand to Stripe.js, when the first payment waits for
/// the customer. Its client secret is the invoice's `confirmation_secret`
/// (since basil), else the intent's own.
fn pending_intent(snap: &Snapshot) -> Option<PaymentIntentView> {
    let pi = snap.payment_intent.as_ref()?;
    let status = json::str(pi, "status")?;
    (snap.status() == "incomplete" && matches!(status, "requires_action" | "requires_confirmation"))
        .then(|| PaymentIntentView {
            id: json::str(pi, "id").unwrap_or_default().to_string(),
            client_secret: snap
                .client_secret
                .clone()
                .or_else(|| json::str(pi, "client_secret").map(str::to_string)),
            status: status.to_string(),
        })
}

/// The first payment was refused: a decline (402) with Stripe's reason.
fn declined(snap: &Snapshot) -> Option<ApiError> {
    let pi = snap.payment_intent.as_ref()?;
    if snap.status() != "incomplete" || json::str(pi, "status") != Some("requires_payment_method") {
        return None;
    }
    let err = pi.get("last_payment_error").cloned().unwrap_or(Value::Null);
    let s = |k: &str| json::str(&err, k).map(str::to_string);
    Some(ApiError::CardDeclined(Box::new(StripeErrorInfo {
        http_status: Some(402),
        r#type: s("type").or(Some("card_error".into())),
        code: s("code").or(Some("card_declined".into())),
        decline_code: s("decline_code"),
        param: None,
        message: s("message")
            .unwrap_or_else(|| "the first payment of the subscription was declined".into()),
    })))
}

async fn subscribe(
    ctx: &ApiContext,
    bucket: &Bucket,
    body: &SubscribeBody,
    caller_key: Option<&str>,
) -> ApiResult<(Snapshot, Option<PaymentIntentView>)> {
    let plan = subscribable(&ctx.cfg.catalog, &body.plan)?;
    let plan_id = plan.stripe_id.as_deref().unwrap_or_default();
    let coupon = non_empty(&body.coupon_id);
    let key = |step: &str| idempotency_key(&bucket.id, &format!("subscribe.{step}"), caller_key);
    let _guard = bucket_lock(&bucket.id).await;

    if let Some(token) = non_empty(&body.stripe_token) {
        attach_card(ctx, bucket, token, true, key("card").as_deref()).await?;
    }
    if !has_default_payment_method(ctx, &bucket.id).await? {
        return Err(ApiError::forbidden(
            "need_credit_card",
            "need a credit card",
        ));
    }
    let customer = ensure_customer(ctx, bucket).await?;

    let all = subscriptions::list_all(&ctx.stripe, &customer).await?;
    let status = |s: &Value| json::str(s, "status").unwrap_or("").to_string();
    let live = all
        .iter()
        .find(|s| billing::LIVE.contains(&status(s).as_str()) && status(s) != "incomplete");
    let answer = match live {
        // Already on this plan, with this coupon (a retried call): nothing to change, just refresh.
        Some(s)
            if subscription_shape::plan_id(s).as_deref() == Some(plan_id)
                && coupon.is_none_or(|c| subscription_shape::coupons(s).contains(&c)) =>
        {
            subscriptions::retrieve(&ctx.stripe, json::str(s, "id").unwrap_or_default()).await?
        }
        Some(s) => {
            let sub_id = json::str(s, "id").unwrap_or_default();
            let item = subscription_shape::item_id(s).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("subscription {sub_id} has no item"))
            })?;
            subscriptions::change_plan(&ctx.stripe, sub_id, item, plan_id, coupon, key("update"))
                .await?
        }
        None => {
            // An abandoned first payment (3-D Secure never completed): replace it.
            for s in all.iter().filter(|s| status(s) == "incomplete") {
                let sub_id = json::str(s, "id").unwrap_or_default();
                let canceled =
                    subscriptions::cancel(&ctx.stripe, sub_id, key(&format!("cancel.{sub_id}")))
                        .await?;
                crate::sync::apply::store(
                    &ctx.db,
                    &canceled,
                    &Watermark::api("subscribe.cancel"),
                    false,
                    true,
                )
                .await?;
            }
            subscriptions::create(
                &ctx.stripe,
                &customer,
                &bucket.id,
                plan_id,
                coupon,
                key("create"),
            )
            .await?
        }
    };
    let snap = refresh::complete(&ctx.stripe, answer).await?;
    refresh::store(&ctx.db, &snap, "subscribe").await?;
    tracing::info!(bucket = %bucket.id, subscription = snap.id(), status = snap.status(), plan = %plan.name, "subscribed");
    if let Some(err) = declined(&snap) {
        return Err(err);
    }
    if billing::GRANTS_PLAN.contains(&snap.status()) {
        ctx.db.end_trial(&bucket.id).await?;
    }
    Ok((snap.clone(), pending_intent(&snap)))
}

fn valid_intent_id(id: &str) -> bool {
    id.starts_with("pi_")
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

async fn intent_succeeded(
    ctx: &ApiContext,
    bucket: &Bucket,
    intent_id: &str,
    plan_name_wanted: &str,
) -> ApiResult<()> {
    let plan = known(&ctx.cfg.catalog, plan_name_wanted)?;
    let mismatch = || {
        ApiError::bad_request(
            "payment_intent_mismatch",
            "this payment intent is not one of this bucket's",
        )
    };
    if !valid_intent_id(intent_id) {
        return Err(ApiError::bad_request(
            "invalid_payment_intent",
            "not a payment intent id (pi_…)",
        ));
    }
    let customer = bucket.stripe_customer_id.as_deref().ok_or_else(mismatch)?;
    let pi = invoices::payment_intent(&ctx.stripe, intent_id).await?;
    if json::id(&pi, "customer") != Some(customer) {
        return Err(mismatch());
    }
    let status = json::str(&pi, "status").unwrap_or("");
    if status != "succeeded" {
        return Err(ApiError::bad_request(
            "payment_intent_not_succeeded",
            format!("the payment intent has not succeeded (it is {status})"),
        ));
    }
    let not_subscription = || {
        ApiError::bad_request(
            "payment_intent_mismatch",
            "this payment intent pays no subscription",
        )
    };
    let invoice_id = invoice_of_intent(ctx, &pi, intent_id)
        .await?
        .ok_or_else(not_subscription)?;
    let invoice = invoices::invoice(&ctx.stripe, &invoice_id).await?;
    let sub_id = invoice_shape::subscription(&invoice).ok_or_else(not_subscription)?;
    let snap = refresh::refresh(&ctx.db, &ctx.stripe, sub_id, "payment_intent_succeed").await?;
    if subscription_shape::plan_id(&snap.subscription).as_deref() != plan.stripe_id.as_deref() {
        return Err(ApiError::bad_request(
            "plan_mismatch",
            format!("this payment is for another plan than {:?}", plan.name),
        ));
    }
    if !billing::GRANTS_PLAN.contains(&snap.status()) {
        return Err(ApiError::bad_request(
            "payment_intent_not_succeeded",
            format!("the subscription is still {}", snap.status()),
        ));
    }
    ctx.db.end_trial(&bucket.id).await?;
    tracing::info!(bucket = %bucket.id, subscription = snap.id(), "3-D Secure payment confirmed");
    Ok(())
}

/// The invoice a payment intent pays: the one it names (until basil), else,
/// at versions with InvoicePayments, the invoice of its (paid) InvoicePayment.
async fn invoice_of_intent(
    ctx: &ApiContext,
    pi: &Value,
    intent_id: &str,
) -> ApiResult<Option<String>> {
    if let Some(id) = payment_intent::invoice(pi) {
        return Ok(Some(id.to_string()));
    }
    if !ctx.stripe.invoice_payments() {
        return Ok(None);
    }
    let payments = invoices::payments_of_intent(&ctx.stripe, intent_id).await?;
    let paid = payments
        .iter()
        .find(|p| invoice_payment::is_paid(p))
        .or(payments.first());
    Ok(paid.and_then(invoice_payment::invoice).map(str::to_string))
}

fn rfc3339(t: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(t).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

pub struct SubscriptionApi;

#[OpenApi(tag = "Tag::Subscription")]
impl SubscriptionApi {
    /// Subscribe the bucket to a plan, or move its subscription to another plan in place.
    /// When the first payment needs 3-D Secure, the answer carries `payment_intent`
    /// and the bucket gets the plan only after paymentIntentSucceed.
    #[oai(
        path = "/api/bucket/:id/payment/subscribe",
        method = "post",
        operation_id = "subscribe"
    )]
    async fn subscribe(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        body: Json<SubscribeBody>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> Reply<Json<SubscribeAnswer>, Subscribe> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let (snap, payment_intent) =
            subscribe(&ctx, &access.bucket, &body, idempotency.as_deref()).await?;
        let bucket = ctx
            .db
            .bucket(&access.bucket.id)
            .await?
            .unwrap_or(access.bucket);
        let mut subscription = snap.subscription;
        subscription_shape::legacy_fields(&mut subscription);
        ok(Json(SubscribeAnswer {
            bucket: view(&ctx, &bucket, access.role).await?,
            subscription: Shaped::new(subscription),
            payment_intent,
        }))
    }

    /// After 3-D Secure: check with Stripe that the payment intent succeeded and is this
    /// bucket's, refresh the subscription and its invoice, and give the bucket the plan.
    #[oai(
        path = "/api/bucket/:id/payment/subscribe/:paymentIntent",
        method = "post",
        operation_id = "paymentIntentSucceed"
    )]
    async fn payment_intent_succeed(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        #[oai(name = "paymentIntent")] payment_intent: Path<String>,
        body: Json<PlanBody>,
    ) -> Reply<Json<BucketAnswer>, PaymentIntentSucceed> {
        let access = auth.write(&ctx, &id).await?;
        intent_succeeded(&ctx, &access.bucket, &payment_intent, &body.plan).await?;
        ok(Json(BucketAnswer {
            bucket: view(&ctx, &access.bucket, access.role).await?,
        }))
    }

    /// The bucket's subscription (the live one, else the most recent past one), as Stripe
    /// shows it, with `current_period_start` and `current_period_end` whatever the Stripe API version.
    #[oai(
        path = "/api/bucket/:id/payment/subscription",
        method = "get",
        operation_id = "getSubcription"
    )]
    async fn get_subscription(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
    ) -> Reply<Json<Shaped<Subscription>>, GetSubscription> {
        let access = auth.read(&ctx, &id).await?;
        let state = plan_state(&ctx.db, &ctx.cfg.catalog, &access.bucket.id).await?;
        let mut sub = state.subscription.ok_or_else(no_subscription)?.data;
        subscription_shape::legacy_fields(&mut sub);
        ok(Json(Shaped::new(sub)))
    }

    /// Status, plan and cancelation date of the bucket's subscription (current or past).
    #[oai(
        path = "/api/bucket/:id/payment/subscription/state",
        method = "get",
        operation_id = "getSubcriptionState"
    )]
    async fn get_subscription_state(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
    ) -> Reply<Json<SubscriptionState>, GetSubscriptionState> {
        let access = auth.read(&ctx, &id).await?;
        let state = plan_state(&ctx.db, &ctx.cfg.catalog, &access.bucket.id).await?;
        let sub = state.subscription.ok_or_else(no_subscription)?;
        ok(Json(SubscriptionState {
            status: billing::status_of(&sub).to_string(),
            plan: plan_name(&ctx.cfg.catalog, &sub).map(NullableText),
            canceled_at: json::int(&sub.data, "canceled_at")
                .and_then(rfc3339)
                .map(NullableText),
        }))
    }

    /// Cancel the bucket's subscription: at the end of the paid period by default
    /// (`cancel_at_period_end`; the bucket keeps its plan until then and may resume),
    /// or now with `at=now` (the bucket falls back to its trial's or the free plan).
    /// A subscription whose first payment never went through (`incomplete`) ends now.
    #[oai(
        path = "/api/bucket/:id/payment/subscription",
        method = "delete",
        operation_id = "cancelSubscription"
    )]
    async fn cancel_subscription(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        /// `period_end` (default) or `now`.
        at: Query<Option<cancel::CancelAt>>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> Reply<Json<cancel::SubscriptionChange>, CancelSubscription> {
        ok(cancel::cancel(&ctx, &auth, &id, at.0, idempotency.as_deref()).await?)
    }

    /// Take back a cancelation at period end: the subscription goes on renewing.
    /// A subscription that already ended cannot be resumed (404: subscribe again).
    #[oai(
        path = "/api/bucket/:id/payment/subscription/resume",
        method = "post",
        operation_id = "resumeSubscription"
    )]
    async fn resume_subscription(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        #[oai(name = "Idempotency-Key")] idempotency: Header<Option<String>>,
    ) -> Reply<Json<cancel::SubscriptionChange>, ResumeSubscription> {
        ok(cancel::resume(&ctx, &auth, &id, idempotency.as_deref()).await?)
    }
}

fn no_subscription() -> ApiError {
    ApiError::not_found(
        "no_subscription",
        "the bucket doesn't have any subscription",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_checked_before_stripe() {
        let catalog = Catalog::load(std::path::Path::new("fixtures/plans.toml")).unwrap();
        assert_eq!(
            subscribable(&catalog, "nope")
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
        assert_eq!(
            subscribable(&catalog, "enterprise")
                .unwrap_err()
                .status()
                .as_u16(),
            403
        );
        assert_eq!(
            subscribable(&catalog, "free")
                .unwrap_err()
                .status()
                .as_u16(),
            403
        );
        assert_eq!(subscribable(&catalog, "starter").unwrap().name, "starter");
    }

    #[test]
    fn intent_ids_are_checked() {
        assert!(valid_intent_id("pi_9Fvt8Ps6LIl97f"));
        assert!(!valid_intent_id("pi_../../customers"));
        assert!(!valid_intent_id("ch_1"));
    }

    #[test]
    fn canceled_at_is_rfc3339() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }
}
