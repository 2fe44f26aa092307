//! Card calls: card sources made from a token (`tok_…`), and card
//! PaymentMethods (`pm_…`) attached to the customer.

use serde_json::Value;
use stripe_payment::card::{DeleteCustomerCard, UpdateCustomerCard};
use stripe_payment::payment_method::{
    AttachPaymentMethod, BillingDetailsAddress, BillingDetailsInnerParams, DetachPaymentMethod,
    UpdatePaymentMethod,
};

use super::{Stripe, StripeError};
use stripe_core::payment_source::CreateCustomerPaymentSource;

/// The billing address fields a card can be updated with (all optional).
#[derive(Debug, Clone, Default)]
pub struct CardAddress {
    pub line1: Option<String>,
    pub country: Option<String>,
    pub zip: Option<String>,
    pub city: Option<String>,
}

/// Attach a source (card token, or a SEPA source id) to the customer; answers the source.
pub async fn attach_source(
    stripe: &Stripe,
    customer: &str,
    source: &str,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    stripe
        .send(&CreateCustomerPaymentSource::new(customer, source), idem)
        .await
}

/// Attach a PaymentMethod to the customer; answers the PaymentMethod.
pub async fn attach_payment_method(
    stripe: &Stripe,
    customer: &str,
    pm: &str,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    stripe
        .send(&AttachPaymentMethod::new(pm).customer(customer), idem)
        .await
}

/// Detach a PaymentMethod; answers it (with `customer: null`).
pub async fn detach_payment_method(
    stripe: &Stripe,
    pm: &str,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    stripe.send(&DetachPaymentMethod::new(pm), idem).await
}

/// Delete a source of the customer. Stripe answers the deleted source; localstripe
/// answers the customer instead, so callers accept either.
pub async fn delete_source(
    stripe: &Stripe,
    customer: &str,
    id: &str,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    stripe
        .send(&DeleteCustomerCard::new(customer, id), idem)
        .await
}

/// Update the billing address of a card source.
pub async fn update_card(
    stripe: &Stripe,
    customer: &str,
    id: &str,
    address: &CardAddress,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let mut req = UpdateCustomerCard::new(customer, id);
    if let Some(v) = &address.line1 {
        req = req.address_line1(v.clone());
    }
    if let Some(v) = &address.country {
        req = req.address_country(v.clone());
    }
    if let Some(v) = &address.zip {
        req = req.address_zip(v.clone());
    }
    if let Some(v) = &address.city {
        req = req.address_city(v.clone());
    }
    stripe.send(&req, idem).await
}

/// Update the billing address of a card PaymentMethod.
pub async fn update_payment_method(
    stripe: &Stripe,
    pm: &str,
    address: &CardAddress,
    idem: Option<String>,
) -> Result<Value, StripeError> {
    let addr = BillingDetailsAddress {
        line1: address.line1.clone(),
        country: address.country.clone(),
        postal_code: address.zip.clone(),
        city: address.city.clone(),
        ..Default::default()
    };
    let details = BillingDetailsInnerParams {
        address: Some(addr),
        ..Default::default()
    };
    stripe
        .send(&UpdatePaymentMethod::new(pm).billing_details(details), idem)
        .await
}

/// The answer of a delete/detach, where "no such object" means the object is
/// already gone from Stripe (deleted behind our back): the cache should then
/// tombstone it as well, not refuse the caller.
pub fn already_gone_is_ok(
    result: Result<Value, StripeError>,
) -> Result<Option<Value>, StripeError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => {
            tracing::info!(error = %e, "already gone from Stripe; tombstoning the cached copy");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
