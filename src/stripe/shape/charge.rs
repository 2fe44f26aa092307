//! Charge. Until basil it named the invoice it paid (`invoice`); since, only
//! the InvoicePayment of its payment intent links it to an invoice.

use serde_json::Value;

use crate::stripe::json;

/// The invoice the charge says it paid (until basil).
pub fn invoice(charge: &Value) -> Option<&str> {
    json::id(charge, "invoice")
}

#[cfg(test)]
mod tests {
    use crate::stripe::shape::fixtures;

    #[test]
    fn only_the_older_charge_names_its_invoice() {
        let (old, new) = fixtures::charge();
        assert_eq!(super::invoice(&old), Some("in_1TfPsyncStory01"));
        assert_eq!(super::invoice(&new), None);
    }
}
