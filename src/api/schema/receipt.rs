//! A receipt: a successful Stripe `charge`, with `invoice` and `receipt_url`
//! always present (paysync links the charge to its invoice itself).

use std::collections::HashMap;

use poem_openapi::Object;
use poem_openapi::types::Example;
use serde_json::Value;

use super::{Nullable, example};

/// A successful payment: Stripe's charge object, with `invoice` and
/// `receipt_url` always present. Other fields Stripe sends are kept.
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct Receipt {
    /// The charge's Stripe id (`ch_…` or `py_…`).
    pub id: String,
    /// Always `charge`.
    pub object: String,
    /// `succeeded` (receipts are successful charges only; Stripe's other
    /// values are `pending` and `failed`).
    pub status: String,
    /// Amount charged, in the currency's smallest unit (cents).
    pub amount: i64,
    /// Amount refunded, in the currency's smallest unit.
    pub amount_refunded: i64,
    /// Three-letter ISO currency code, lowercase.
    pub currency: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Whether the charge succeeded.
    pub paid: bool,
    /// Whether it was captured.
    pub captured: bool,
    /// Whether it was fully refunded.
    pub refunded: bool,
    /// `true` in live mode, `false` in test mode.
    pub livemode: bool,
    /// Id of the Stripe customer charged (`cus_…`).
    pub customer: Nullable<String>,
    /// Id of the invoice it paid (`in_…`), or null: Stripe's own field before
    /// API version 2025-03-31.basil, found by paysync from the invoices since.
    pub invoice: Nullable<String>,
    /// The receipt's page at Stripe (null where Stripe gives none).
    pub receipt_url: Nullable<String>,
    /// Id of the payment intent it belongs to (`pi_…`).
    pub payment_intent: Nullable<String>,
    /// Id of the payment method charged (`card_…`, `src_…`, `pm_…`).
    pub payment_method: Nullable<String>,
    /// What the charge is for.
    pub description: Nullable<String>,
    /// Where the receipt was e-mailed.
    pub receipt_email: Nullable<String>,
    /// The receipt's number (once a receipt was sent).
    pub receipt_number: Nullable<String>,
    /// Stripe's failure code, for a failed charge.
    pub failure_code: Nullable<String>,
    /// Stripe's failure message, for a failed charge.
    pub failure_message: Nullable<String>,
    /// Key-value pairs attached in Stripe.
    pub metadata: HashMap<String, String>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

impl Example for Receipt {
    fn example() -> Self {
        example("receipt.json", include_str!("examples/receipt.json"))
    }
}
