//! `paysync plans sync`: make the Stripe account know every paid plan of the
//! catalog. Creates the missing products and plans (localstripe and older
//! Stripe accounts know plans, not prices), leaves existing ones alone, and
//! reports a plan whose Stripe price differs from the catalog (Stripe plans
//! cannot be changed; a new id is the fix).

use serde_json::Value;

use crate::plans::{Catalog, Plan};
use crate::stripe::{Stripe, StripeError, form, json};

/// What `sync` found or did for one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanSync {
    Created,
    Exists,
    /// Exists in Stripe with another amount, currency or interval.
    Differs(String),
}

/// The product backing a catalog plan (one product per plan).
pub fn product_id(plan: &Plan) -> String {
    format!("prod_{}", plan.stripe_id.as_deref().unwrap_or(&plan.name))
}

/// Make every paid plan of the catalog exist in Stripe. Safe to run again and
/// concurrently: a plan created meanwhile by someone else counts as existing.
pub async fn sync(
    stripe: &Stripe,
    catalog: &Catalog,
) -> Result<Vec<(String, PlanSync)>, StripeError> {
    let mut out = Vec::new();
    for plan in catalog.plans() {
        let Some(stripe_id) = plan.stripe_id.as_deref() else {
            continue;
        };
        let outcome = match fetch(stripe, &format!("/plans/{stripe_id}")).await? {
            Some(found) => compare(plan, &found),
            None => create(stripe, plan, stripe_id).await?,
        };
        tracing::info!(plan = %plan.name, stripe_id, outcome = ?outcome, "plan synced");
        out.push((plan.name.clone(), outcome));
    }
    Ok(out)
}

async fn fetch(stripe: &Stripe, path: &str) -> Result<Option<Value>, StripeError> {
    match stripe.execute(form::get(path, &[]), None).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn create(stripe: &Stripe, plan: &Plan, stripe_id: &str) -> Result<PlanSync, StripeError> {
    let product = product_id(plan);
    if fetch(stripe, &format!("/products/{product}"))
        .await?
        .is_none()
    {
        let req = form::post("/products", &[("id", &product), ("name", &plan.name)]);
        if let Err(e) = stripe
            .execute(req, Some(format!("paysync:product:{product}")))
            .await
        {
            // Created concurrently by another run: fine.
            fetch(stripe, &format!("/products/{product}"))
                .await?
                .ok_or(e)?;
        }
    }
    let amount = plan.amount.to_string();
    let req = form::post(
        "/plans",
        &[
            ("id", stripe_id),
            ("product", &product),
            ("amount", &amount),
            ("currency", &plan.currency),
            ("interval", &plan.interval),
            ("nickname", &plan.name),
        ],
    );
    let key = format!(
        "paysync:plan:{stripe_id}:{}:{}:{}",
        plan.amount, plan.currency, plan.interval
    );
    match stripe.execute(req, Some(key)).await {
        Ok(_) => Ok(PlanSync::Created),
        Err(e) => match fetch(stripe, &format!("/plans/{stripe_id}")).await? {
            Some(found) => Ok(compare(plan, &found)),
            None => Err(e),
        },
    }
}

fn compare(plan: &Plan, found: &Value) -> PlanSync {
    let mut diffs = Vec::new();
    if json::int(found, "amount") != Some(plan.amount) {
        diffs.push(format!(
            "amount {:?} (catalog {})",
            json::int(found, "amount"),
            plan.amount
        ));
    }
    if json::str(found, "currency") != Some(plan.currency.as_str()) {
        diffs.push(format!(
            "currency {:?} (catalog {})",
            json::str(found, "currency"),
            plan.currency
        ));
    }
    if json::str(found, "interval") != Some(plan.interval.as_str()) {
        diffs.push(format!(
            "interval {:?} (catalog {})",
            json::str(found, "interval"),
            plan.interval
        ));
    }
    if diffs.is_empty() {
        PlanSync::Exists
    } else {
        PlanSync::Differs(diffs.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_changed_price_is_reported() {
        let catalog = Catalog::load(std::path::Path::new("fixtures/plans.toml")).unwrap();
        let starter = catalog.get("starter").unwrap();
        let same =
            json!({"id": "x", "amount": starter.amount, "currency": "usd", "interval": "month"});
        assert_eq!(compare(starter, &same), PlanSync::Exists);
        let other = json!({"id": "x", "amount": "2900", "currency": "usd", "interval": "month"});
        assert!(matches!(compare(starter, &other), PlanSync::Differs(d) if d.contains("amount")));
    }
}
