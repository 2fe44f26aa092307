//! Discount. Until clover: `coupon`, an expanded Coupon. Since
//! `2025-09-30.clover`: `source.coupon`, a coupon id (`source.type = "coupon"`).

use serde_json::Value;

use crate::stripe::json;

/// The id of the discount's coupon.
pub fn coupon(discount: &Value) -> Option<&str> {
    json::id(discount, "coupon").or_else(|| json::id(discount.get("source")?, "coupon"))
}
