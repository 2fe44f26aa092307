//! The bucket's SEPA bank account: a Stripe `source` of type `sepa_debit`.

use std::collections::HashMap;

use poem_openapi::Object;
use poem_openapi::types::Example;
use serde_json::Value;

use super::{Nullable, example};

/// A SEPA Direct Debit bank account: Stripe's source object of type
/// `sepa_debit`. Other fields Stripe sends are kept.
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct SepaDebitSource {
    /// The source's Stripe id (`src_…`).
    pub id: String,
    /// Always `source`.
    pub object: String,
    /// Always `sepa_debit`.
    #[oai(rename = "type")]
    pub kind: String,
    /// `pending`, `chargeable`, `consumed`, `canceled` or `failed`; only a
    /// chargeable source can pay.
    pub status: String,
    /// Id of the Stripe customer the account belongs to (`cus_…`); not in
    /// every rendering of a source (Stripe's spec does not require it).
    pub customer: Option<String>,
    /// Three-letter ISO currency code, lowercase (`eur`).
    pub currency: Nullable<String>,
    /// `reusable` or `single_use`.
    pub usage: Nullable<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// `true` in live mode, `false` in test mode.
    pub livemode: bool,
    /// Key-value pairs attached to the source in Stripe.
    pub metadata: Nullable<HashMap<String, String>>,
    pub owner: Nullable<SourceOwner>,
    pub sepa_debit: SepaDebitDetails,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

impl Example for SepaDebitSource {
    fn example() -> Self {
        example(
            "sepa_debit_source.json",
            include_str!("examples/sepa_debit_source.json"),
        )
    }
}

/// Who owns the account.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SourceOwner {
    /// The account holder's name.
    #[oai(nullable)]
    pub name: Option<String>,
    /// The account holder's e-mail address.
    #[oai(nullable)]
    pub email: Option<String>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

/// The account's SEPA details.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SepaDebitDetails {
    /// The last four characters of the IBAN.
    #[oai(nullable)]
    pub last4: Option<String>,
    /// Two-letter ISO code of the bank's country.
    #[oai(nullable)]
    pub country: Option<String>,
    /// The bank's code.
    #[oai(nullable)]
    pub bank_code: Option<String>,
    /// Identifies this account: two sources with one fingerprint are the same account.
    #[oai(nullable)]
    pub fingerprint: Option<String>,
    /// The mandate's reference.
    #[oai(nullable)]
    pub mandate_reference: Option<String>,
    /// Where the mandate can be seen.
    #[oai(nullable)]
    pub mandate_url: Option<String>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

/// The bank account a delete removed, as it was, with `deleted: true`.
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct DeletedSepaDebitSource {
    /// Always `true`.
    pub deleted: bool,
    #[oai(flatten)]
    pub source: SepaDebitSource,
}

impl Example for DeletedSepaDebitSource {
    fn example() -> Self {
        DeletedSepaDebitSource {
            deleted: true,
            source: SepaDebitSource::example(),
        }
    }
}
