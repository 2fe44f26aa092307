//! PaymentIntent. Until basil it named the invoice it paid (`invoice`);
//! since, the invoice is found through the InvoicePayment of the intent.

use serde_json::Value;

use crate::stripe::json;

/// The invoice the payment intent says it pays (until basil).
pub fn invoice(intent: &Value) -> Option<&str> {
    json::id(intent, "invoice")
}

#[cfg(test)]
mod tests {
    use crate::stripe::shape::fixtures;

    #[test]
    fn only_the_older_intent_names_its_invoice() {
        let (old, new) = fixtures::payment_intent();
        assert_eq!(super::invoice(&old), Some("in_1TfPsyncStory01"));
        assert_eq!(super::invoice(&new), None);
    }
}
