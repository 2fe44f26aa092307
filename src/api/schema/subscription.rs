//! The bucket's subscription: Stripe's `subscription` object.

use std::collections::HashMap;

use poem_openapi::Object;
use poem_openapi::types::Example;
use serde_json::Value;

use super::{Nullable, example};

/// The bucket's Stripe subscription object. Other fields Stripe sends are kept.
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct Subscription {
    /// The subscription's Stripe id (`sub_…`).
    pub id: String,
    /// Always `subscription`.
    pub object: String,
    /// `incomplete`, `incomplete_expired`, `trialing`, `active`, `past_due`,
    /// `canceled`, `unpaid` or `paused`.
    pub status: String,
    /// Id of the Stripe customer (`cus_…`).
    pub customer: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// When the subscription started (may differ from `created` for backdated ones).
    pub start_date: i64,
    /// Whether it is canceled at the end of the current period.
    pub cancel_at_period_end: bool,
    /// When it is set to be canceled.
    pub cancel_at: Nullable<i64>,
    /// When it was canceled (for one canceled at period end, when that was asked).
    pub canceled_at: Nullable<i64>,
    /// When it ended, if it did.
    pub ended_at: Nullable<i64>,
    /// Start of the trial, if it has one.
    pub trial_start: Nullable<i64>,
    /// End of the trial, if it has one.
    pub trial_end: Nullable<i64>,
    /// Id of its most recent invoice (`in_…`).
    pub latest_invoice: Nullable<String>,
    /// `true` in live mode, `false` in test mode.
    pub livemode: bool,
    /// Key-value pairs attached in Stripe (paysync sets `bucket_id`).
    pub metadata: HashMap<String, String>,
    pub items: SubscriptionItems,
    /// Start of the current period. Before API version 2025-03-31.basil
    /// only; since, it is on each item.
    #[oai(nullable)]
    pub current_period_start: Option<i64>,
    /// End of the current period. Before API version 2025-03-31.basil
    /// only; since, it is on each item.
    #[oai(nullable)]
    pub current_period_end: Option<i64>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

impl Example for Subscription {
    fn example() -> Self {
        example(
            "subscription.json",
            include_str!("examples/subscription.json"),
        )
    }
}

/// The subscription's items (a Stripe list; paysync subscribes to one plan).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SubscriptionItems {
    /// Always `list`.
    pub object: String,
    pub data: Vec<SubscriptionItem>,
    /// Whether more items exist than `data` holds.
    pub has_more: bool,
    /// Where Stripe lists them all.
    pub url: String,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

/// One item of a subscription: a plan and a quantity.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SubscriptionItem {
    /// The item's Stripe id (`si_…`).
    pub id: String,
    /// Always `subscription_item`.
    pub object: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Key-value pairs attached in Stripe.
    pub metadata: HashMap<String, String>,
    pub plan: Plan,
    /// How many of the plan.
    pub quantity: Option<i64>,
    /// Start of the item's current period (since API version 2025-03-31.basil).
    pub current_period_start: Option<i64>,
    /// End of the item's current period (since API version 2025-03-31.basil).
    pub current_period_end: Option<i64>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

/// A Stripe plan: what a period of the subscription costs.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Plan {
    /// The plan's Stripe id (the catalog's `stripe_id`).
    pub id: String,
    /// Always `plan`.
    pub object: String,
    /// Whether new subscriptions may use it.
    pub active: bool,
    /// Price per period in the currency's smallest unit (cents).
    pub amount: Nullable<i64>,
    /// Three-letter ISO currency code, lowercase.
    pub currency: String,
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    /// How many intervals a period lasts.
    pub interval_count: i64,
    /// A short description.
    pub nickname: Nullable<String>,
    /// Id of the product it prices (`prod_…`).
    pub product: Nullable<String>,
    /// `true` in live mode, `false` in test mode.
    pub livemode: bool,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}
