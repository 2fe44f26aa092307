//! The Stripe API version paysync pins every call to. Stripe answers a call
//! in the version of its `Stripe-Version` header (else the account's
//! default), and renders webhook events in the endpoint's version, so the
//! version is a setting (`PAYSYNC_STRIPE_API_VERSION`) sent with every call.

/// The version sent when none is configured: the newest version the tests
/// cover (`fixtures/stripe/<version>/`).
pub const DEFAULT: &str = "2026-09-30.endive";

/// The version localstripe and the benchmark's Stripe stand-in speak (their
/// objects have the shapes of about 2019, which 2024-06-20 still reads).
/// The test harness, `scripts/demo`, `scripts/check-clients` and the
/// benchmark pin it explicitly.
pub const LEGACY: &str = "2024-06-20";

/// `2025-03-31.basil` moved an invoice's payments into InvoicePayment
/// objects: `invoice.payment_intent`, `invoice.charge`, `charge.invoice` and
/// `payment_intent.invoice` are gone, and `invoice.payments` and
/// `invoice.confirmation_secret` can be expanded instead.
const INVOICE_PAYMENTS_SINCE: &str = "2025-03-31";

/// Does Stripe, at this version, link payments to invoices through
/// InvoicePayments (and refuse to expand the old links)?
pub fn has_invoice_payments(version: &str) -> bool {
    version
        .get(..10)
        .is_some_and(|date| date >= INVOICE_PAYMENTS_SINCE)
}

/// A Stripe API version as configured: `YYYY-MM-DD`, optionally followed by
/// `.` and the release name (`2025-03-31.basil`). None when it is not one.
pub fn parse(s: &str) -> Option<String> {
    let s = s.trim();
    let (date, name) = match s.split_once('.') {
        Some((d, n)) => (d, Some(n)),
        None => (s, None),
    };
    let b = date.as_bytes();
    let date_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    let name_ok = name.is_none_or(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_lowercase()));
    (date_ok && name_ok).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        assert_eq!(parse("2024-06-20").as_deref(), Some("2024-06-20"));
        assert_eq!(
            parse(" 2025-03-31.basil ").as_deref(),
            Some("2025-03-31.basil")
        );
        assert_eq!(parse(DEFAULT).as_deref(), Some(DEFAULT));
        assert_eq!(parse(LEGACY).as_deref(), Some(LEGACY));
        for bad in [
            "",
            "2024-6-20",
            "2025-03-31.",
            "2025-03-31.Basil",
            "latest",
            "2024-06-20\nX: y",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn basil_and_later_have_invoice_payments() {
        assert!(!has_invoice_payments(LEGACY));
        assert!(!has_invoice_payments("2025-02-24.acacia"));
        assert!(has_invoice_payments("2025-03-31.basil"));
        assert!(has_invoice_payments(DEFAULT));
    }
}
