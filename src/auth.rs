//! Who is calling: user JWTs (HS256 secret, or RS256/ES256 public key) and the
//! admin token. Authorization by bucket role lives in `api/access.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::cfg::JwtArgs;
use crate::error::ApiError;

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Keys to check user tokens with (and, for HS256, to mint them).
#[derive(Clone)]
pub struct JwtKeys {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    /// Built once: every request checks its token with it.
    validation: Validation,
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.validate_exp = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation
}

impl JwtKeys {
    pub fn from_args(args: &JwtArgs) -> anyhow::Result<Self> {
        match (&args.jwt_secret, &args.jwt_public_key) {
            (Some(_), Some(_)) => {
                bail!("PAYSYNC_JWT_SECRET and PAYSYNC_JWT_PUBLIC_KEY: set one, not both")
            }
            (Some(secret), None) => Self::hs256(secret),
            (None, Some(path)) => {
                let pem = std::fs::read(path).with_context(|| {
                    format!("PAYSYNC_JWT_PUBLIC_KEY: cannot read {}", path.display())
                })?;
                if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    Ok(Self {
                        decoding: key,
                        encoding: None,
                        validation: validation(Algorithm::RS256),
                    })
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    Ok(Self {
                        decoding: key,
                        encoding: None,
                        validation: validation(Algorithm::ES256),
                    })
                } else {
                    bail!(
                        "PAYSYNC_JWT_PUBLIC_KEY: {} is not an RSA or EC public key in PEM",
                        path.display()
                    )
                }
            }
            (None, None) => bail!(
                "PAYSYNC_JWT_SECRET: missing (or set PAYSYNC_JWT_PUBLIC_KEY to an RS256/ES256 public key file)"
            ),
        }
    }

    pub fn hs256(secret: &str) -> anyhow::Result<Self> {
        if secret.len() < 16 {
            bail!("PAYSYNC_JWT_SECRET: too short (at least 16 characters)");
        }
        Ok(Self {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: Some(EncodingKey::from_secret(secret.as_bytes())),
            validation: validation(Algorithm::HS256),
        })
    }

    /// Check a bearer token: signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "token signature is invalid",
                    ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
                    _ => "token is malformed",
                };
                ApiError::Unauthorized(why.into())
            })
    }

    /// Mint an HS256 token (demos and tests; production tokens come from the identity provider).
    pub fn mint(&self, user: &str, ttl: Duration) -> anyhow::Result<String> {
        let key = self
            .encoding
            .as_ref()
            .context("paysync can only mint tokens with PAYSYNC_JWT_SECRET (HS256)")?;
        let now = now_secs();
        let claims = Claims {
            sub: user.to_string(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            key,
        )?)
    }
}

/// Constant-time comparison of a presented admin token with the configured one.
pub fn admin_token_matches(presented: &str, configured: &str) -> bool {
    presented.as_bytes().ct_eq(configured.as_bytes()).into()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
