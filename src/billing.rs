//! A bucket's effective plan, derived from the cache on every read (never
//! stored, so it can never disagree with the rows it comes from): the live
//! subscription's plan, else the running trial's plan, else the free plan.

use poem_openapi::Object;

use crate::plans::Catalog;
use crate::store::Db;
use crate::store::objects::{Kind, Page, Stored};
use crate::store::trials::Trial;
use crate::stripe::shape::subscription;

/// Subscription statuses that give the bucket its plan.
pub const GRANTS_PLAN: &[&str] = &["active", "trialing", "past_due"];
/// Subscription statuses of a subscription that still exists in Stripe and is
/// changed in place rather than duplicated.
pub const LIVE: &[&str] = &["active", "trialing", "past_due", "unpaid", "incomplete"];

#[derive(Debug, Clone)]
pub struct PlanState {
    /// The effective plan's name.
    pub plan: String,
    /// The bucket's current subscription (the live one, else the most recent one).
    pub subscription: Option<Stored>,
    pub trial: Option<Trial>,
}

impl PlanState {
    pub fn live_subscription(&self) -> Option<&Stored> {
        self.subscription.as_ref().filter(|s| is_live(s))
    }
}

pub fn status_of(s: &Stored) -> &str {
    s.status.as_deref().unwrap_or("")
}
pub fn is_live(s: &Stored) -> bool {
    LIVE.contains(&status_of(s))
}
pub fn grants_plan(s: &Stored) -> bool {
    GRANTS_PLAN.contains(&status_of(s))
}

/// The catalog name of a subscription's plan (its Stripe id when the catalog does not know it).
pub fn plan_name(catalog: &Catalog, s: &Stored) -> Option<String> {
    let id = s.parent_id.as_deref()?;
    Some(
        catalog
            .by_stripe_id(id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_string()),
    )
}

pub async fn plan_state(db: &Db, catalog: &Catalog, bucket_id: &str) -> sqlx::Result<PlanState> {
    let subs = db
        .bucket_objects(
            Kind::Subscription,
            bucket_id,
            &Page {
                limit: Some(50),
                starting_after: None,
            },
        )
        .await?;
    let subscription = subs
        .iter()
        .find(|s| grants_plan(s))
        .or_else(|| subs.iter().find(|s| is_live(s)))
        .or(subs.first())
        .cloned();
    let trial = db.trial(bucket_id).await?;
    let plan = match (&subscription, &trial) {
        (Some(s), _) if grants_plan(s) => {
            plan_name(catalog, s).unwrap_or_else(|| catalog.free().name.clone())
        }
        (_, Some(t)) if t.running() => t.plan.clone(),
        _ => catalog.free().name.clone(),
    };
    Ok(PlanState {
        plan,
        subscription,
        trial,
    })
}

/// A bucket's subscription, as summarised in the bucket object.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct SubscriptionSummary {
    pub id: String,
    pub status: String,
    /// Catalog name of the plan.
    pub plan: Option<String>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
}

impl SubscriptionSummary {
    pub fn of(catalog: &Catalog, s: &Stored) -> Self {
        SubscriptionSummary {
            id: s.id.clone(),
            status: status_of(s).to_string(),
            plan: plan_name(catalog, s),
            current_period_end: subscription::current_period(&s.data).end,
            cancel_at_period_end: s
                .data
                .get("cancel_at_period_end")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            canceled_at: crate::stripe::json::int(&s.data, "canceled_at"),
        }
    }
}

/// A bucket's trial, as shown in the bucket object.
#[derive(Object, Debug, Clone)]
pub struct TrialView {
    pub plan: String,
    pub started_at: i64,
    pub ends_at: i64,
    /// Still running.
    pub active: bool,
}

impl From<&Trial> for TrialView {
    fn from(t: &Trial) -> Self {
        TrialView {
            plan: t.plan.clone(),
            started_at: t.started_at,
            ends_at: t.ends_at,
            active: t.running(),
        }
    }
}
