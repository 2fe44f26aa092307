//! Subscription. Until basil: `current_period_start`/`current_period_end`
//! and one `discount` (with its coupon). Since: the period of each item
//! (`items.data[].current_period_*`) and `discounts[]` (ids unless expanded).

use serde_json::Value;

use crate::stripe::json;
use crate::stripe::shape::discount;

/// The Stripe plan (or price) id: `plan`, else its first item's plan or price.
pub fn plan_id(sub: &Value) -> Option<String> {
    if let Some(id) = json::id(sub, "plan") {
        return Some(id.to_string());
    }
    let item = sub.pointer("/items/data/0")?;
    json::id(item, "plan")
        .or_else(|| json::id(item, "price"))
        .map(str::to_string)
}

/// The first item's id (paysync subscriptions have exactly one item).
pub fn item_id(sub: &Value) -> Option<&str> {
    sub.pointer("/items/data/0/id").and_then(Value::as_str)
}

/// The current billing period, unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// The subscription's own period; since basil, the period of the item that
/// renews first (each item has its own; a one-item subscription's is its item's).
pub fn current_period(sub: &Value) -> Period {
    let own = Period {
        start: json::int(sub, "current_period_start"),
        end: json::int(sub, "current_period_end"),
    };
    if own.end.is_some() {
        return own;
    }
    sub.pointer("/items/data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|item| Period {
            start: json::int(item, "current_period_start"),
            end: json::int(item, "current_period_end"),
        })
        .filter(|p| p.end.is_some())
        .min_by_key(|p| p.end)
        .unwrap_or(own)
}

/// The coupons applied to the subscription, where the object shows them:
/// the older `discount`, and the `discounts[]` a call expanded (unexpanded,
/// they are discount ids, which name no coupon).
pub fn coupons(sub: &Value) -> Vec<&str> {
    let expanded = sub
        .get("discounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| d.is_object());
    sub.get("discount")
        .filter(|d| d.is_object())
        .into_iter()
        .chain(expanded)
        .filter_map(discount::coupon)
        .collect()
}

/// Fill in `current_period_start`/`current_period_end` (what older API
/// callers read) when this subscription's version keeps them in its items.
pub fn legacy_fields(sub: &mut Value) {
    let period = current_period(sub);
    if let Some(map) = sub.as_object_mut() {
        for (key, value) in [
            ("current_period_start", period.start),
            ("current_period_end", period.end),
        ] {
            map.entry(key).or_insert_with(|| value.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::shape::fixtures;
    use serde_json::json;

    #[test]
    fn both_versions_read_the_same() {
        let (old, new) = fixtures::subscription();
        let period = Period {
            start: Some(1_790_845_500),
            end: Some(1_793_523_900),
        };
        for sub in [&old, &new] {
            assert_eq!(current_period(sub), period);
            assert_eq!(plan_id(sub).as_deref(), Some("paysync_starter_monthly"));
            assert_eq!(item_id(sub), Some("si_TfPsyncStory01"));
            assert!(coupons(sub).is_empty());
        }
        let mut filled = new.clone();
        legacy_fields(&mut filled);
        assert_eq!(filled["current_period_end"], old["current_period_end"]);
        assert_eq!(filled["current_period_start"], old["current_period_start"]);
    }

    #[test]
    fn the_item_renewing_first_gives_the_period() {
        let sub = json!({"items": {"data": [
            {"current_period_start": 10, "current_period_end": 50},
            {"current_period_start": 20, "current_period_end": 40}]}});
        assert_eq!(
            current_period(&sub),
            Period {
                start: Some(20),
                end: Some(40)
            }
        );
        assert_eq!(current_period(&json!({})), Period::default());
    }

    #[test]
    fn coupons_of_every_shape() {
        let old = json!({"discount": {"object": "discount", "coupon": {"id": "SPRING", "percent_off": 20}},
                         "discounts": ["di_1"]});
        assert_eq!(coupons(&old), ["SPRING"]);
        let clover = json!({"discounts": [{"object": "discount", "source": {"coupon": "SPRING", "type": "coupon"}}]});
        assert_eq!(coupons(&clover), ["SPRING"]);
        let unexpanded = json!({"discounts": ["di_1"]});
        assert!(coupons(&unexpanded).is_empty());
    }
}
