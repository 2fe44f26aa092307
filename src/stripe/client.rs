//! The HTTP side of the gateway: sends a request built by async-stripe's
//! request builders, with the secret key, an idempotency key on every write,
//! a per-attempt time-out, the process-wide request budget, and a bounded
//! retry on 429/5xx/connection errors that honours `Retry-After`.
//!
//! Answers are returned as raw JSON (`serde_json::Value`): async-stripe's typed
//! responses require every field of one API version, and a mirror must not
//! fail on a stand-in's or an older version's object. Callers store the object
//! whole and read the few fields they need with `stripe::json`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod, StripeRequest};

use crate::cfg::StripeSettings;
use crate::error::{ApiError, StripeErrorInfo};

/// The longest we wait before a retry, whatever `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error status.
    #[error("stripe answered {status}: {}", info.message)]
    Api {
        status: u16,
        info: Box<StripeErrorInfo>,
        retry_after: Option<u64>,
    },
    /// No answer: connection refused, reset, or timed out.
    #[error("stripe unreachable: {0}")]
    Network(String),
    /// An answer that is not JSON.
    #[error("stripe answer unreadable: {0}")]
    Decode(String),
}

impl StripeError {
    pub fn status(&self) -> Option<u16> {
        match self {
            StripeError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// Stripe says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StripeError::Api { status: 404, .. })
            || matches!(self, StripeError::Api { info, .. } if info.code.as_deref() == Some("resource_missing"))
    }
    fn retryable(&self) -> bool {
        match self {
            StripeError::Api { status, .. } => matches!(status, 409 | 429 | 500..=504),
            StripeError::Network(_) => true,
            StripeError::Decode(_) => false,
        }
    }
    fn retry_after(&self) -> Option<u64> {
        match self {
            StripeError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<StripeError> for ApiError {
    /// Declines are 402, Stripe refusing the caller's input is 400, and
    /// everything else (Stripe down, rate-limited, our key refused) is 500.
    fn from(e: StripeError) -> Self {
        match e {
            StripeError::Api {
                status,
                info,
                retry_after,
            } => {
                let declined = status == 402
                    || info.r#type.as_deref() == Some("card_error")
                    || info.code.as_deref() == Some("card_declined");
                if declined {
                    ApiError::CardDeclined(info)
                } else if matches!(status, 400 | 404) {
                    ApiError::StripeInvalid(info)
                } else if matches!(status, 401 | 403) {
                    tracing::error!(status, "Stripe refused paysync's API key");
                    ApiError::Stripe {
                        info: Box::new(StripeErrorInfo {
                            message: "Stripe refused the service's credentials".into(),
                            ..*info
                        }),
                        retry_after: None,
                    }
                } else {
                    ApiError::Stripe { info, retry_after }
                }
            }
            other => ApiError::Stripe {
                info: Box::new(StripeErrorInfo {
                    message: other.to_string(),
                    ..Default::default()
                }),
                retry_after: None,
            },
        }
    }
}

/// The Stripe gateway. Cheap to clone; one per process (the budget is shared).
#[derive(Clone)]
pub struct Stripe {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    key: String,
    max_attempts: u32,
    budget: Option<DefaultDirectRateLimiter>,
    api_version: String,
}

impl Stripe {
    pub fn new(settings: &StripeSettings) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("paysync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let budget =
            NonZeroU32::new(settings.rps).map(|rps| RateLimiter::direct(Quota::per_second(rps)));
        Ok(Stripe {
            inner: Arc::new(Inner {
                http,
                base: format!("{}/v1", settings.api_base.trim_end_matches('/')),
                key: settings.secret_key.clone(),
                max_attempts: settings.max_attempts.max(1),
                budget,
                api_version: settings.api_version.clone(),
            }),
        })
    }

    /// The API version every call is pinned to (`Stripe-Version`).
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    /// Send a request built by one of async-stripe's request builders.
    /// `idempotency_key` is used for writes; a fresh one is made when None.
    pub async fn send(
        &self,
        req: &impl StripeRequest,
        idempotency_key: Option<String>,
    ) -> Result<Value, StripeError> {
        self.execute(req.build(), idempotency_key).await
    }

    /// Send a raw request (for calls async-stripe has no builder for).
    pub async fn execute(
        &self,
        req: RequestBuilder,
        idempotency_key: Option<String>,
    ) -> Result<Value, StripeError> {
        let write = !matches!(req.method, StripeMethod::Get);
        let key = write.then(|| {
            idempotency_key.unwrap_or_else(|| format!("paysync-{}", uuid::Uuid::new_v4()))
        });
        let endpoint = endpoint_label(&req);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.attempt(&req, key.as_deref(), &endpoint).await;
            match result {
                Err(e) if e.retryable() && attempt < self.inner.max_attempts => {
                    let wait = backoff(attempt, e.retry_after());
                    tracing::warn!(%endpoint, attempt, error = %e, wait_ms = wait.as_millis() as u64, "stripe call failed, retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        req: &RequestBuilder,
        key: Option<&str>,
        endpoint: &str,
    ) -> Result<Value, StripeError> {
        if let Some(budget) = &self.inner.budget {
            let waited = Instant::now();
            budget.until_ready().await;
            metrics::histogram!("paysync_stripe_budget_wait_seconds")
                .record(waited.elapsed().as_secs_f64());
        }
        let mut url = format!("{}{}", self.inner.base, req.path);
        if let Some(q) = req.query.as_deref().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let method = match req.method {
            StripeMethod::Get => reqwest::Method::GET,
            StripeMethod::Post => reqwest::Method::POST,
            StripeMethod::Delete => reqwest::Method::DELETE,
        };
        let mut http = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(&self.inner.key)
            .header("Stripe-Version", &self.inner.api_version);
        if let Some(key) = key {
            http = http.header("Idempotency-Key", key);
        }
        if let Some(body) = &req.body {
            http = http
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.clone());
        }
        let started = Instant::now();
        let outcome = http.send().await;
        let elapsed = started.elapsed().as_secs_f64();
        let resp = match outcome {
            Ok(r) => r,
            Err(e) => {
                crate::stripe::stats::record(crate::store::now(), None);
                metrics::counter!("paysync_stripe_requests_total", "endpoint" => endpoint.to_string(), "status" => "error").increment(1);
                metrics::histogram!("paysync_stripe_request_seconds", "endpoint" => endpoint.to_string()).record(elapsed);
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "connection failed"
                };
                return Err(StripeError::Network(format!("{what} ({endpoint})")));
            }
        };
        let status = resp.status().as_u16();
        crate::stripe::stats::record(crate::store::now(), Some(status));
        metrics::counter!("paysync_stripe_requests_total", "endpoint" => endpoint.to_string(), "status" => status.to_string()).increment(1);
        metrics::histogram!("paysync_stripe_request_seconds", "endpoint" => endpoint.to_string())
            .record(elapsed);
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| StripeError::Network(format!("reading answer: {e}")))?;
        let body: Result<Value, _> = serde_json::from_slice(&bytes);
        if (200..300).contains(&status) {
            return body.map_err(|e| StripeError::Decode(e.to_string()));
        }
        let err = body
            .ok()
            .and_then(|v| v.get("error").cloned())
            .unwrap_or(Value::Null);
        let s = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_string);
        let info = StripeErrorInfo {
            http_status: Some(status),
            r#type: s("type"),
            code: s("code"),
            decline_code: s("decline_code"),
            param: s("param"),
            message: s("message").unwrap_or_else(|| format!("Stripe answered HTTP {status}")),
        };
        Err(StripeError::Api {
            status,
            info: Box::new(info),
            retry_after,
        })
    }
}

/// Exponential backoff with jitter; `Retry-After` wins when Stripe sends it.
fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    if let Some(secs) = retry_after {
        return Duration::from_secs(secs).min(MAX_BACKOFF);
    }
    let base = 250u64.saturating_mul(1 << attempt.min(6).saturating_sub(1));
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base + jitter).min(MAX_BACKOFF)
}

/// `POST /customers/:id/sources`: the path with object ids replaced, for metrics and logs.
fn endpoint_label(req: &RequestBuilder) -> String {
    let method = match req.method {
        StripeMethod::Get => "GET",
        StripeMethod::Post => "POST",
        StripeMethod::Delete => "DELETE",
    };
    let path: Vec<&str> = req
        .path
        .split('/')
        .map(|seg| {
            if seg.contains('_')
                && seg
                    .chars()
                    .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            {
                ":id"
            } else {
                seg
            }
        })
        .collect();
    format!("{method} {}", path.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hide_ids() {
        let req = RequestBuilder::new(StripeMethod::Post, "/customers/cus_Abc123/sources");
        assert_eq!(endpoint_label(&req), "POST /customers/:id/sources");
        let req = RequestBuilder::new(StripeMethod::Get, "/payment_intents");
        assert_eq!(endpoint_label(&req), "GET /payment_intents");
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        assert_eq!(backoff(1, Some(2)), Duration::from_secs(2));
        assert_eq!(backoff(1, Some(3600)), MAX_BACKOFF);
        let b = backoff(2, None);
        assert!(b >= Duration::from_millis(500) && b <= Duration::from_millis(750));
    }

    #[test]
    fn declines_are_402_and_bad_input_400() {
        let api = |status, code: &str| StripeError::Api {
            status,
            info: Box::new(StripeErrorInfo {
                code: Some(code.into()),
                message: "m".into(),
                ..Default::default()
            }),
            retry_after: Some(1),
        };
        assert_eq!(
            ApiError::from(api(402, "card_declined")).status().as_u16(),
            402
        );
        assert_eq!(
            ApiError::from(api(400, "card_declined")).status().as_u16(),
            402
        );
        assert_eq!(
            ApiError::from(api(400, "resource_missing"))
                .status()
                .as_u16(),
            400
        );
        assert_eq!(
            ApiError::from(api(429, "rate_limit")).status().as_u16(),
            500
        );
        assert_eq!(ApiError::from(api(401, "x")).status().as_u16(), 500);
        assert_eq!(
            ApiError::from(StripeError::Network("x".into()))
                .status()
                .as_u16(),
            500
        );
    }
}
