//! Reading Stripe objects in every API version, one file per object kind.
//!
//! Stripe renders an object in the API version of the call that fetched it,
//! or of the webhook endpoint that delivered it, and `2025-03-31.basil` moved
//! fields paysync reads: an invoice's subscription went under `parent`, a
//! subscription's period into its items, an invoice's payments into
//! InvoicePayment objects (`charge.invoice`, `payment_intent.invoice`,
//! `invoice.charge`, `invoice.payment_intent` are gone), `paid` became
//! `status == "paid"`, and `2025-09-30.clover` moved a discount's coupon to
//! `source.coupon`. The cache keeps every object as Stripe sent it, and one
//! account's rows may be of several versions (older rows, events of an
//! endpoint pinned to another version than the calls), so every read of such
//! a field goes through here and understands both shapes: the older one
//! (`2024-06-20`, also what localstripe sends) and the newer.
//!
//! The `legacy_fields` functions are for the API's answers: callers written
//! against the older objects keep finding those facts where they looked.

pub mod charge;
pub mod discount;
pub mod invoice;
pub mod invoice_payment;
pub mod payment_intent;
pub mod subscription;

#[cfg(test)]
pub(crate) mod fixtures {
    //! The story objects of `fixtures/stripe/`, at both versions.
    use serde_json::Value;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture is JSON")
    }

    macro_rules! both {
        ($name:ident, $file:literal) => {
            /// (2024-06-20, newest)
            pub fn $name() -> (Value, Value) {
                (
                    parse(include_str!(concat!(
                        "../../../fixtures/stripe/2024-06-20/",
                        $file
                    ))),
                    parse(include_str!(concat!(
                        "../../../fixtures/stripe/2026-09-30.endive/",
                        $file
                    ))),
                )
            }
        };
    }
    both!(subscription, "subscription.json");
    both!(invoice, "invoice.json");
    both!(charge, "charge.json");
    both!(payment_intent, "payment_intent.json");

    pub fn invoice_payment() -> Value {
        parse(include_str!(
            "../../../fixtures/stripe/2026-09-30.endive/invoice_payment.json"
        ))
    }
}
