//! A card, in the shape of Stripe's `card` object. A card PaymentMethod
//! (`pm_…`) is shown in the same shape (`store::views::card_view`), so the
//! typed fields are those both give.

use std::collections::HashMap;

use poem_openapi::Object;
use poem_openapi::types::Example;
use serde_json::Value;

use super::{Nullable, example};

/// A card of the bucket's customer: Stripe's card object (a card
/// PaymentMethod `pm_…` is shown in the same shape, with `payment_method: true`).
/// Other fields Stripe sends are kept.
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct Card {
    /// The card's Stripe id: `card_…` (or `src_…`), or `pm_…` for a card PaymentMethod.
    pub id: String,
    /// Always `card`.
    pub object: String,
    /// Card brand: `American Express`, `Diners Club`, `Discover`, `JCB`,
    /// `MasterCard`, `UnionPay`, `Visa` or `Unknown` (Stripe may add others).
    pub brand: String,
    /// The last four digits of the card number.
    pub last4: String,
    /// Expiration month, 1 to 12.
    pub exp_month: i64,
    /// Four-digit expiration year.
    pub exp_year: i64,
    /// Card funding type: `credit`, `debit`, `prepaid` or `unknown`.
    pub funding: String,
    /// Two-letter ISO code of the country that issued the card.
    pub country: Nullable<String>,
    /// Identifies this card number: two cards with one fingerprint are the same card.
    pub fingerprint: Nullable<String>,
    /// Cardholder name.
    pub name: Nullable<String>,
    /// Billing address line 1 (street, PO box, company name).
    pub address_line1: Nullable<String>,
    /// Billing address line 2 (apartment, suite, unit, building).
    pub address_line2: Nullable<String>,
    /// City, district, suburb, town or village.
    pub address_city: Nullable<String>,
    /// State, county, province or region.
    pub address_state: Nullable<String>,
    /// ZIP or postal code.
    pub address_zip: Nullable<String>,
    /// Billing address country.
    pub address_country: Nullable<String>,
    /// Id of the Stripe customer the card belongs to (`cus_…`).
    pub customer: Nullable<String>,
    /// Key-value pairs attached to the card in Stripe.
    pub metadata: Nullable<HashMap<String, String>>,
    /// `true` when the card is a card PaymentMethod (`pm_…`) shown in the card
    /// shape (paysync's field); absent for card sources.
    pub payment_method: Option<bool>,
    #[oai(flatten)]
    pub other: HashMap<String, Value>,
}

impl Example for Card {
    fn example() -> Self {
        example("card.json", include_str!("examples/card.json"))
    }
}

/// The card a delete removed, as it was, with `deleted: true`.
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct DeletedCard {
    /// Always `true`.
    pub deleted: bool,
    #[oai(flatten)]
    pub card: Card,
}

impl Example for DeletedCard {
    fn example() -> Self {
        DeletedCard {
            deleted: true,
            card: Card::example(),
        }
    }
}
