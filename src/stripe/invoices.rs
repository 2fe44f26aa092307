//! Invoice, invoice payment, charge and payment-intent reads (the refresh
//! after a subscription write, paymentIntentSucceed, the reconciler).

use serde_json::Value;
use stripe_billing::invoice_payment::{
    ListInvoicePayment, ListInvoicePaymentPayment, ListInvoicePaymentPaymentType,
};
use stripe_client_core::StripeRequest;

use crate::stripe::pages::{PAGE, list_all};
use crate::stripe::{Stripe, StripeError, form};

/// What an invoice read expands: its payment intent until basil; since, its
/// InvoicePayments and confirmation secret (the payment intent is no longer
/// a field of the invoice, and Stripe refuses to expand it).
fn expand(stripe: &Stripe) -> &'static [(&'static str, &'static str)] {
    if stripe.invoice_payments() {
        &[
            ("expand[]", "payments"),
            ("expand[]", "confirmation_secret"),
        ]
    } else {
        &[("expand[]", "payment_intent")]
    }
}

pub async fn invoice(stripe: &Stripe, id: &str) -> Result<Value, StripeError> {
    stripe
        .execute(form::get(format!("/invoices/{id}"), expand(stripe)), None)
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

/// The InvoicePayments of a payment intent (since basil: how an intent's
/// invoice is found; usually one).
pub async fn payments_of_intent(stripe: &Stripe, intent: &str) -> Result<Vec<Value>, StripeError> {
    let payment = ListInvoicePaymentPayment {
        payment_intent: Some(intent.to_string()),
        ..ListInvoicePaymentPayment::new(ListInvoicePaymentPaymentType::PaymentIntent)
    };
    list_all(stripe, |after| {
        let mut req = ListInvoicePayment::new()
            .payment(payment.clone())
            .limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await
}

/// Every InvoicePayment of an invoice (when its expanded `payments` said there are more).
pub async fn payments_of_invoice(
    stripe: &Stripe,
    invoice: &str,
) -> Result<Vec<Value>, StripeError> {
    list_all(stripe, |after| {
        let mut req = ListInvoicePayment::new().invoice(invoice).limit(PAGE);
        if let Some(a) = after {
            req = req.starting_after(a);
        }
        req.build()
    })
    .await
}
