//! Customer calls of the payment-method routes: the default card, metadata,
//! and re-reading the customer after Stripe changed it on its own (a deleted
//! default source makes Stripe pick another default).

use std::collections::HashMap;

use serde_json::Value;
use stripe_core::customer::{RetrieveCustomer, UpdateCustomer, UpdateCustomerInvoiceSettings};

use super::{Stripe, StripeError};

/// What to make the customer's default payment method.
pub enum DefaultCard<'a> {
    /// A card source: `default_source`; `clear_pm` also unsets a PaymentMethod default
    /// (Stripe prefers `invoice_settings.default_payment_method` over `default_source`).
    Source { id: &'a str, clear_pm: bool },
    /// A card PaymentMethod: `invoice_settings.default_payment_method`.
    PaymentMethod(&'a str),
}

pub async fn set_default(
    stripe: &Stripe,
    customer: &str,
    card: DefaultCard<'_>,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let pm_setting = |id: &str| UpdateCustomerInvoiceSettings {
        default_payment_method: Some(id.to_string()),
        ..Default::default()
    };
    let req = match card {
        DefaultCard::Source { id, clear_pm } => {
            let req = UpdateCustomer::new(customer).default_source(id);
            if clear_pm {
                req.invoice_settings(pm_setting(""))
            } else {
                req
            }
        }
        DefaultCard::PaymentMethod(id) => {
            UpdateCustomer::new(customer).invoice_settings(pm_setting(id))
        }
    };
    stripe.send(&req, idem).await
}

/// Set metadata keys; an empty value removes the key (Stripe's rule).
pub async fn update_metadata(
    stripe: &Stripe,
    customer: &str,
    metadata: HashMap<String, String>,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    stripe
        .send(&UpdateCustomer::new(customer).metadata(metadata), idem)
        .await
}

/// The customer as Stripe has it now.
pub async fn retrieve(stripe: &Stripe, customer: &str) -> Result<Value, StripeError> {
    stripe.send(&RetrieveCustomer::new(customer), None).await
}
