//! The Stripe API version paysync pins every call to. Stripe answers a call
//! in the version of its `Stripe-Version` header (else the account's
//! default), and renders webhook events in the endpoint's version, so the
//! version is a setting (`PAYSYNC_STRIPE_API_VERSION`) sent with every call.

/// The version sent when none is configured.
pub const DEFAULT: &str = "2024-06-20";

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
}
