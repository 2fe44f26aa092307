//! `PUT /api/bucket/{id}/payment/trial`: a local grant of a plan for its trial
//! days, once per bucket ever, never next to a live subscription. Stripe is not
//! involved (its trials need a card up front); the `trials` job ends it.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::subscription::{PlanBody, known};
use crate::app::ApiContext;
use crate::billing::plan_state;
use crate::error::{ApiError, ApiResult};

#[derive(Object, Debug)]
pub struct TrialAnswer {
    /// Length of the trial, ISO-8601 (`P14D`).
    pub duration: String,
    /// Catalog name of the plan on trial.
    pub plan: String,
    /// Start of the trial (unix seconds).
    pub started_at: i64,
    /// End of the trial (unix seconds).
    pub ends_at: i64,
}

fn cant(reason: &str) -> ApiError {
    ApiError::bad_request("cant_claim_trial", format!("can't claim trial: {reason}"))
}

pub struct TrialApi;

#[OpenApi(tag = "Tag::Subscription")]
impl TrialApi {
    /// Start the bucket's one trial of a plan.
    #[oai(
        path = "/api/bucket/:id/payment/trial",
        method = "put",
        operation_id = "startTrial"
    )]
    async fn start_trial(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        body: Json<PlanBody>,
    ) -> ApiResult<Json<TrialAnswer>> {
        let access = auth.write(&ctx, &id).await?;
        let plan = known(&ctx.cfg.catalog, &body.plan)?;
        if plan.trial_days == 0 {
            return Err(cant(&format!("plan {:?} has no trial", plan.name)));
        }
        let state = plan_state(&ctx.db, &ctx.cfg.catalog, &access.bucket.id).await?;
        if state.live_subscription().is_some() {
            return Err(cant("the bucket has a subscription"));
        }
        if state.trial.is_some() {
            return Err(cant("the bucket already had its trial"));
        }
        let trial = ctx
            .db
            .start_trial(&access.bucket.id, &plan.name, plan.trial_days)
            .await?
            .ok_or_else(|| cant("the bucket already had its trial"))?;
        tracing::info!(bucket = %access.bucket.id, plan = %plan.name, ends_at = trial.ends_at, "trial started");
        Ok(Json(TrialAnswer {
            duration: format!("P{}D", plan.trial_days),
            plan: trial.plan,
            started_at: trial.started_at,
            ends_at: trial.ends_at,
        }))
    }
}
