//! SEPA Direct Debit sources. async-stripe has no request builder for
//! `POST /v1/sources` with SEPA parameters, so this one is built by hand.

use serde::Serialize;
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::{Stripe, StripeError};

#[derive(Serialize)]
struct SepaSource<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    currency: &'static str,
    sepa_debit: Iban<'a>,
    owner: Owner<'a>,
}

#[derive(Serialize)]
struct Iban<'a> {
    iban: &'a str,
}

#[derive(Serialize)]
struct Owner<'a> {
    name: &'a str,
}

/// Create a reusable SEPA debit source (not yet attached to anyone).
pub async fn create_sepa(
    stripe: &Stripe,
    iban: &str,
    owner: &str,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let form = SepaSource {
        kind: "sepa_debit",
        currency: "eur",
        sepa_debit: Iban { iban },
        owner: Owner { name: owner },
    };
    stripe
        .execute(
            RequestBuilder::new(StripeMethod::Post, "/sources").form(&form),
            idem,
        )
        .await
}
