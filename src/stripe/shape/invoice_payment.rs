//! InvoicePayment (since basil): one payment of an invoice, the link
//! between the invoice and the payment intent (or, for a charge made
//! without one, the charge) that paid it.

use serde_json::Value;

use crate::stripe::json;

/// The invoice paid.
pub fn invoice(payment: &Value) -> Option<&str> {
    json::id(payment, "invoice")
}

/// The payment intent that paid it (`payment.type = "payment_intent"`).
pub fn payment_intent(payment: &Value) -> Option<&str> {
    json::id(payment.get("payment")?, "payment_intent")
}

/// The charge that paid it, for a charge made without a payment intent.
pub fn charge(payment: &Value) -> Option<&str> {
    json::id(payment.get("payment")?, "charge")
}

/// Has it been paid (else it is `open` or `canceled`)?
pub fn is_paid(payment: &Value) -> bool {
    json::str(payment, "status") == Some("paid")
}

/// The invoice's default payment (the one Stripe attempts), else its first.
pub fn default_of(payments: &[Value]) -> Option<&Value> {
    payments
        .iter()
        .find(|p| json::bool(p, "is_default") == Some(true))
        .or(payments.first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::shape::fixtures;

    #[test]
    fn links_an_invoice_to_its_intent() {
        let p = fixtures::invoice_payment();
        assert_eq!(invoice(&p), Some("in_1TfPsyncStory01"));
        assert_eq!(payment_intent(&p), Some("pi_3TfPsyncStory01"));
        assert_eq!(charge(&p), None);
        assert!(is_paid(&p));
        let open = serde_json::json!({"id": "inpay_2", "is_default": false});
        let payments = [open, p.clone()];
        assert_eq!(default_of(&payments), Some(&p));
    }
}
