//! Invoice, charge and payment-intent reads (the refresh after a subscription write).

use serde_json::Value;

use crate::stripe::{Stripe, StripeError, form};

pub async fn invoice(stripe: &Stripe, id: &str) -> Result<Value, StripeError> {
    stripe
        .execute(
            form::get(format!("/invoices/{id}"), &[("expand[]", "payment_intent")]),
            None,
        )
        .await
}

pub async fn charge(stripe: &Stripe, id: &str) -> Result<Value, StripeError> {
    stripe
        .execute(form::get(format!("/charges/{id}"), &[]), None)
        .await
}

pub async fn payment_intent(stripe: &Stripe, id: &str) -> Result<Value, StripeError> {
    stripe
        .execute(form::get(format!("/payment_intents/{id}"), &[]), None)
        .await
}
