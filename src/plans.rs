//! The plan catalog: which plans exist, what they cost, which Stripe plan
//! backs them, and whether buckets may subscribe or trial them.
//! Loaded from TOML once at start-up (`PAYSYNC_PLANS`) and checked then, so a
//! typo in the catalog stops the server rather than a customer's checkout.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The name clients use (`plan` in request bodies).
    pub name: String,
    /// The Stripe plan (or price) id; absent for the free plan.
    #[serde(default)]
    pub stripe_id: Option<String>,
    /// Price in the currency's smallest unit (cents).
    #[serde(default)]
    pub amount: i64,
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Length of the one trial a bucket may claim (0: no trial).
    #[serde(default)]
    pub trial_days: u32,
    /// Whether buckets may subscribe to it through the API.
    #[serde(default)]
    pub subscribable: bool,
    /// The plan of buckets without subscription or trial. Exactly one plan is free.
    #[serde(default)]
    pub free: bool,
}

fn default_currency() -> String {
    "usd".into()
}
fn default_interval() -> String {
    "month".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    plans: Vec<Plan>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    plans: Vec<Plan>,
}

impl Catalog {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("PAYSYNC_PLANS: cannot read {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("PAYSYNC_PLANS: {}: {e:#}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let mut names = HashSet::new();
        let mut stripe_ids = HashSet::new();
        for p in &file.plans {
            if p.name.trim().is_empty() {
                bail!("a plan has an empty name");
            }
            if !names.insert(p.name.as_str()) {
                bail!("plan {:?} is listed twice", p.name);
            }
            if !matches!(p.interval.as_str(), "day" | "week" | "month" | "year") {
                bail!(
                    "plan {:?}: interval must be day, week, month or year",
                    p.name
                );
            }
            if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_lowercase()) {
                bail!(
                    "plan {:?}: currency must be a 3-letter lowercase code",
                    p.name
                );
            }
            if p.amount < 0 {
                bail!("plan {:?}: amount must not be negative", p.name);
            }
            match (&p.stripe_id, p.free) {
                (None, false) => bail!("plan {:?}: stripe_id is missing", p.name),
                (Some(_), true) => bail!("plan {:?}: the free plan has no stripe_id", p.name),
                (Some(id), false) if !stripe_ids.insert(id.as_str()) => {
                    bail!("plan {:?}: stripe_id {id:?} is used twice", p.name)
                }
                _ => {}
            }
            if p.free && p.subscribable {
                bail!("plan {:?}: the free plan cannot be subscribable", p.name);
            }
        }
        match file.plans.iter().filter(|p| p.free).count() {
            1 => {}
            0 => bail!("no plan has free = true (exactly one must)"),
            n => bail!("{n} plans have free = true (exactly one must)"),
        }
        Ok(Self { plans: file.plans })
    }

    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    pub fn by_stripe_id(&self, id: &str) -> Option<&Plan> {
        self.plans
            .iter()
            .find(|p| p.stripe_id.as_deref() == Some(id))
    }

    pub fn free(&self) -> &Plan {
        // `parse` guarantees exactly one free plan.
        self.plans.iter().find(|p| p.free).unwrap_or(&self.plans[0])
    }

    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_is_valid() {
        let c = Catalog::load(Path::new("fixtures/plans.toml")).expect("fixtures/plans.toml");
        assert!(c.free().free);
        assert!(c.plans().iter().any(|p| p.subscribable && p.trial_days > 0));
    }

    #[test]
    fn rejects_bad_catalogs_with_a_reason() {
        let two_free = "[[plans]]\nname='a'\nfree=true\n[[plans]]\nname='b'\nfree=true\n";
        assert!(
            Catalog::parse(two_free)
                .unwrap_err()
                .to_string()
                .contains("2 plans have free")
        );
        let no_id = "[[plans]]\nname='a'\nfree=true\n[[plans]]\nname='pro'\n";
        assert!(
            Catalog::parse(no_id)
                .unwrap_err()
                .to_string()
                .contains("stripe_id is missing")
        );
        let typo = "[[plans]]\nname='a'\nfree=true\ntrail_days=3\n";
        assert!(
            Catalog::parse(typo)
                .unwrap_err()
                .to_string()
                .contains("trail_days")
        );
        let interval = "[[plans]]\nname='a'\nfree=true\ninterval='fortnight'\n";
        assert!(
            Catalog::parse(interval)
                .unwrap_err()
                .to_string()
                .contains("interval")
        );
    }
}
