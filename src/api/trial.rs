//! `PUT /api/bucket/{id}/payment/trial`: a local grant of a plan for its trial
//! days, once per bucket ever, never next to a live subscription. Stripe is not
//! involved (its trials need a card up front); the `trials` job ends it.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::contract::*;
use crate::api::subscription::{PlanBody, known};
use crate::app::ApiContext;
use crate::billing::plan_state;
use crate::error::ApiError;

#[derive(Object, Debug)]
#[oai(example)]
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

impl Example for TrialAnswer {
    fn example() -> Self {
        TrialAnswer {
            duration: "P14D".into(),
            plan: "business".into(),
            started_at: 1722850000,
            ends_at: 1724059600,
        }
    }
}

statuses! {
    StartTrial: "trial launched" {
        400 => "can't claim trial (an unknown plan, a plan without trial, a bucket that had its trial or has a subscription)",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => UNKNOWN_BUCKET,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
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
    ) -> Reply<Json<TrialAnswer>, StartTrial> {
        let access = auth.write(&ctx, &id).await?;
        let plan = known(&ctx.cfg.catalog, &body.plan)?;
        if plan.trial_days == 0 {
            return Err(cant(&format!("plan {:?} has no trial", plan.name)).into());
        }
        let state = plan_state(&ctx.db, &ctx.cfg.catalog, &access.bucket.id).await?;
        if state.live_subscription().is_some() {
            return Err(cant("the bucket has a subscription").into());
        }
        if state.trial.is_some() {
            return Err(cant("the bucket already had its trial").into());
        }
        let trial = ctx
            .db
            .start_trial(&access.bucket.id, &plan.name, plan.trial_days)
            .await?
            .ok_or_else(|| cant("the bucket already had its trial"))?;
        tracing::info!(bucket = %access.bucket.id, plan = %plan.name, ends_at = trial.ends_at, "trial started");
        ok(Json(TrialAnswer {
            duration: format!("P{}D", plan.trial_days),
            plan: trial.plan,
            started_at: trial.started_at,
            ends_at: trial.ends_at,
        }))
    }
}
