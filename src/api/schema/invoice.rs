//! The bucket's invoices: Stripe's `invoice` object.

use std::collections::HashMap;

use poem_openapi::Object;
use poem_openapi::types::Example;
use serde_json::Value;

use super::{Nullable, example};

/// A Stripe invoice object. Other fields Stripe sends are kept; some moved
/// between API versions (`subscription` is in `parent.subscription_details`
/// since 2025-03-31.basil, `paid` became `status == "paid"`).
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct Invoice {
    /// The invoice's Stripe id (`in_…`).
    pub id: String,
    /// Always `invoice`.
    pub object: String,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: Nullable<String>,
    /// Id of the Stripe customer billed (`cus_…`).
    pub customer: Nullable<String>,
    /// Three-letter ISO currency code, lowercase.
    pub currency: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// `true` in live mode, `false` in test mode.
    pub livemode: bool,
    /// What is due, in the currency's smallest unit (cents).
    pub amount_due: i64,
    /// What was paid, in the currency's smallest unit.
    pub amount_paid: i64,
    /// `amount_due` minus `amount_paid`.
    pub amount_remaining: Option<i64>,
    /// Total before discounts and taxes, in the currency's smallest unit.
    pub subtotal: i64,
    /// Total after discounts and taxes, in the currency's smallest unit.
    pub total: i64,
    /// Start of the usage period the invoice covers (seconds since the Unix epoch).
    pub period_start: i64,
    /// End of the usage period the invoice covers.
    pub period_end: i64,
    /// Whether a payment was attempted.
    pub attempted: bool,
    /// How many payment attempts were made.
    pub attempt_count: i64,
    /// Why it was made: `subscription_create`, `subscription_cycle`,
    /// `subscription_update`, `manual`…
    pub billing_reason: Nullable<String>,
    /// `charge_automatically` or `send_invoice`.
    pub collection_method: String,
    /// The customer's e-mail address on the invoice.
    pub customer_email: Nullable<String>,
    /// The invoice's memo.
    pub description: Nullable<String>,
    /// Key-value pairs attached in Stripe.
    pub metadata: Nullable<HashMap<String, String>>,
    /// The number printed on the invoice (none on a draft).
    #[oai(nullable)]
    pub number: Option<String>,
    /// The hosted invoice page, where the customer can see and pay it (none on a draft).
    #[oai(nullable)]
    pub hosted_invoice_url: Option<String>,
    /// Where its PDF can be downloaded (none on a draft).
    #[oai(nullable)]
    pub invoice_pdf: Option<String>,
    /// When payment is due (invoices sent for manual payment only).
    #[oai(nullable)]
    pub due_date: Option<i64>,
    /// Id of the subscription it bills. Before API version 2025-03-31.basil
    /// only; since, `parent.subscription_details.subscription`.
    #[oai(nullable)]
    pub subscription: Option<String>,
    pub status_transitions: InvoiceStatusTransitions,
    pub lines: InvoiceLines,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

impl Example for Invoice {
    fn example() -> Self {
        example("invoice.json", include_str!("examples/invoice.json"))
    }
}

/// When the invoice changed status (seconds since the Unix epoch).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvoiceStatusTransitions {
    /// When it was finalized.
    #[oai(nullable)]
    pub finalized_at: Option<i64>,
    /// When it was paid.
    #[oai(nullable)]
    pub paid_at: Option<i64>,
    /// When it was voided.
    #[oai(nullable)]
    pub voided_at: Option<i64>,
    /// When it was marked uncollectible.
    #[oai(nullable)]
    pub marked_uncollectible_at: Option<i64>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

/// The invoice's lines (a Stripe list).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvoiceLines {
    /// Always `list`.
    pub object: String,
    pub data: Vec<InvoiceLine>,
    /// Whether more lines exist than `data` holds.
    pub has_more: bool,
    /// Where Stripe lists them all.
    pub url: String,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

/// One line of an invoice.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvoiceLine {
    /// The line's Stripe id (`il_…`).
    pub id: String,
    /// Always `line_item`.
    pub object: String,
    /// Amount, in the currency's smallest unit.
    pub amount: i64,
    /// Three-letter ISO currency code, lowercase.
    pub currency: String,
    /// What the line is for.
    pub description: Nullable<String>,
    /// How many.
    pub quantity: Nullable<i64>,
    pub period: InvoiceLinePeriod,
    /// `true` in live mode, `false` in test mode.
    pub livemode: bool,
    /// Key-value pairs attached in Stripe.
    pub metadata: HashMap<String, String>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

/// The period a line covers (seconds since the Unix epoch).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvoiceLinePeriod {
    pub start: i64,
    pub end: i64,
}
