//! Verification of Stripe's `Stripe-Signature` header, done here rather than
//! with `stripe_webhook` because that one keeps only the last `v1`, knows one
//! secret and a fixed 300 s tolerance: during a secret rotation Stripe signs
//! with every live secret (several `v1`), and we must accept any of them
//! against any of our configured secrets.
//!
//! The header is `t=<unix seconds>,v1=<hex>,v1=<hex>,v0=…`; a `v1` is the
//! HMAC-SHA256, keyed with the whole `whsec_…` secret, of `"{t}.{raw body}"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused. `code()` is the `error.code` of the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature header is not `t=…,v1=…`")]
    Garbled,
    #[error("no v1 signature matches a configured webhook secret")]
    NoMatch,
    #[error("signature timestamp is {0} s old, more than the tolerance")]
    TooOld(i64),
    #[error("signature timestamp is {0} s in the future, more than the tolerance")]
    TooNew(i64),
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Garbled => "signature_malformed",
            SignatureError::NoMatch => "signature_mismatch",
            SignatureError::TooOld(_) | SignatureError::TooNew(_) => "signature_expired",
        }
    }
}

/// The parts of a header: its timestamp and every decodable `v1`.
fn parse(header: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SignatureError::Garbled)?;
        match k.trim() {
            "t" if t.is_none() => {
                t = Some(
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Garbled)?,
                )
            }
            "t" => return Err(SignatureError::Garbled),
            // A v1 that is not hex cannot match; another one in the header still may.
            "v1" => v1.extend(hex::decode(v.trim()).ok().filter(|b| b.len() == 32)),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Garbled)?;
    if v1.is_empty() && !header.contains("v1=") {
        return Err(SignatureError::Garbled);
    }
    Ok((t, v1))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Check a delivery: some `v1` must match some secret (compared in constant
/// time), and `t` must be within `tolerance_secs` of `now`, either way.
/// Returns the signature timestamp.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    tolerance_secs: i64,
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let (t, given) = parse(header)?;
    let mut matched = 0u8;
    for secret in secrets {
        let expected = mac(secret, t, body);
        for sig in &given {
            // Every pair is compared, so the time taken does not tell which one matched.
            matched |= expected.as_slice().ct_eq(sig.as_slice()).unwrap_u8();
        }
    }
    if matched == 0 {
        return Err(SignatureError::NoMatch);
    }
    let age = now - t;
    if age > tolerance_secs {
        return Err(SignatureError::TooOld(age));
    }
    if -age > tolerance_secs {
        return Err(SignatureError::TooNew(-age));
    }
    Ok(t)
}

/// The `v1` of a payload, as Stripe computes it (tests, tools).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body))
}

/// A whole `Stripe-Signature` header for one secret.
pub fn header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matches_any_v1_against_any_secret() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign("whsec_new", NOW, body);
        let bad = sign("whsec_other", NOW, body);
        let h = format!("t={NOW},v1={bad},v1={good}");
        assert_eq!(
            verify(
                Some(&h),
                body,
                &secrets(&["whsec_old", "whsec_new"]),
                300,
                NOW
            ),
            Ok(NOW)
        );
        assert_eq!(
            verify(Some(&h), body, &secrets(&["whsec_old"]), 300, NOW),
            Err(SignatureError::NoMatch)
        );
        let h = format!("t={NOW},v1=nothex,v1={good}");
        assert_eq!(
            verify(Some(&h), body, &secrets(&["whsec_new"]), 300, NOW),
            Ok(NOW)
        );
    }

    #[test]
    fn refuses_garbage_stale_and_tampered() {
        let body = b"{}";
        let s = secrets(&["whsec_a"]);
        assert_eq!(
            verify(None, body, &s, 300, NOW),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("garbage"), body, &s, 300, NOW),
            Err(SignatureError::Garbled)
        );
        assert_eq!(
            verify(Some("t=abc,v1=00"), body, &s, 300, NOW),
            Err(SignatureError::Garbled)
        );
        assert_eq!(
            verify(Some(&format!("t={NOW}")), body, &s, 300, NOW),
            Err(SignatureError::Garbled)
        );
        let old = NOW - 301;
        assert_eq!(
            verify(Some(&header("whsec_a", old, body)), body, &s, 300, NOW),
            Err(SignatureError::TooOld(301))
        );
        let new = NOW + 301;
        assert_eq!(
            verify(Some(&header("whsec_a", new, body)), body, &s, 300, NOW),
            Err(SignatureError::TooNew(301))
        );
        assert_eq!(
            verify(
                Some(&header("whsec_a", NOW - 300, body)),
                body,
                &s,
                300,
                NOW
            ),
            Ok(NOW - 300)
        );
        assert_eq!(
            verify(Some(&header("whsec_a", NOW, body)), b"{ }", &s, 300, NOW),
            Err(SignatureError::NoMatch)
        );
    }
}
