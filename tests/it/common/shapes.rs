//! The story objects of `fixtures/stripe/<version>/` (one bucket's customer,
//! card, SEPA source, card PaymentMethod, subscription, invoice, payment
//! intent, charge and, since basil, invoice payment), and event envelopes
//! around them, at the version asked.

use serde_json::Value;

pub use paysync::stripe::version::DEFAULT as NEWEST;

/// The bucket the story's customer names in its metadata.
pub const BUCKET: &str = "6a1f0c2e9b7d4a3c5e8f1b20";
pub const CUSTOMER: &str = "cus_TfPsyncStory01";
pub const CARD: &str = "card_1TfPsyncStoryCard";
pub const SEPA: &str = "src_1TfPsyncStorySepa";
pub const PM: &str = "pm_1TfPsyncStoryPmCard";
pub const SUBSCRIPTION: &str = "sub_1TfPsyncStory01";
pub const INVOICE: &str = "in_1TfPsyncStory01";
pub const INTENT: &str = "pi_3TfPsyncStory01";
pub const CHARGE: &str = "ch_3TfPsyncStory01";
pub const INVOICE_PAYMENT: &str = "inpay_1TfPsyncStory01";
/// The subscription's period, as the fixtures give it.
pub const PERIOD_START: i64 = 1_790_845_500;
pub const PERIOD_END: i64 = 1_793_523_900;
/// When the story starts (the customer's `created`).
pub const T0: i64 = 1_790_845_200;

/// One object of the story at `version` (`customer`, `card`,
/// `source_sepa_debit`, `payment_method_card`, `subscription`, `invoice`,
/// `payment_intent`, `charge`, `invoice_payment`).
pub fn object(version: &str, name: &str) -> Value {
    let path = format!(
        "{}/fixtures/stripe/{version}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A webhook event of `version` around `object`: the fixture's envelope
/// with its id, type, time, object and previous attributes replaced.
pub fn event(
    version: &str,
    id: &str,
    ty: &str,
    created: i64,
    object: Value,
    previous: Option<Value>,
) -> String {
    let mut e = self::object(version, "event");
    e["id"] = id.into();
    e["type"] = ty.into();
    e["created"] = created.into();
    e["data"]["object"] = object;
    match previous {
        Some(p) => e["data"]["previous_attributes"] = p,
        None => {
            if let Some(data) = e["data"].as_object_mut() {
                data.remove("previous_attributes");
            }
        }
    }
    e.to_string()
}
