//! `GET /api/plans`: the plan catalog as a billing page shows it (the names
//! subscribe and startTrial take, prices, trial lengths, which plans are
//! self-service). Any signed-in user may read it; Stripe ids stay inside.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::contract::*;
use crate::api::schema::List;
use crate::app::ApiContext;

/// One plan of the catalog.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct PlanView {
    /// The name subscribe and startTrial take.
    pub name: String,
    /// Price per interval in the currency's smallest unit (cents).
    pub amount: i64,
    /// 3-letter lowercase ISO code.
    pub currency: String,
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    /// Length of the trial a bucket may claim once (0: none).
    pub trial_days: u32,
    /// Buckets may subscribe to it themselves.
    pub subscribable: bool,
    /// The plan of buckets without subscription or trial.
    pub free: bool,
}

impl Example for PlanView {
    fn example() -> Self {
        PlanView {
            name: "starter".into(),
            amount: 1900,
            currency: "usd".into(),
            interval: "month".into(),
            trial_days: 14,
            subscribable: true,
            free: false,
        }
    }
}

// The catalog is in memory: nothing but the token can fail.
statuses! {
    ListPlans: "the plan catalog, in catalog order" {
        401 => UNAUTHORIZED,
    }
}

pub struct PlansApi;

#[OpenApi(tag = "Tag::Subscription")]
impl PlansApi {
    /// The plan catalog, in catalog order.
    #[oai(path = "/api/plans", method = "get", operation_id = "listPlans")]
    async fn list(
        &self,
        ctx: Data<&ApiContext>,
        _auth: UserAuth,
    ) -> Reply<Json<List<PlanView>>, ListPlans> {
        ok(Json(List(
            ctx.cfg
                .catalog
                .plans()
                .iter()
                .map(|p| PlanView {
                    name: p.name.clone(),
                    amount: p.amount,
                    currency: p.currency.clone(),
                    interval: p.interval.clone(),
                    trial_days: p.trial_days,
                    subscribable: p.subscribable && p.stripe_id.is_some(),
                    free: p.free,
                })
                .collect(),
        )))
    }
}
