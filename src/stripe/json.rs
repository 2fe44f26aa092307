//! Lenient readers for Stripe JSON. Stripe stand-ins and older API versions
//! send numbers as strings, leave fields out, or expand ids into objects; the
//! mirror must read what it needs from all of them without failing.

use serde_json::Value;

/// A string field.
pub fn str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// An integer field, given as a number or a numeric string.
pub fn int(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean field, given as a bool or "true"/"false".
pub fn bool(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The id of a field that is either an id string or an expanded object.
pub fn id<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v.get(key)? {
        Value::String(s) => Some(s.as_str()),
        Value::Object(o) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// The Stripe customer an object belongs to (a customer: itself), if it names one.
pub fn customer_of(obj: &Value) -> Option<&str> {
    match str(obj, "object")? {
        "customer" => str(obj, "id"),
        _ => id(obj, "customer"),
    }
}
