//! The one error type of the HTTP API.
//!
//! Every handler returns `Result<_, ApiError>`; the variant decides the status
//! code and the JSON body `{"error": {"code", "message", ...}}`. Stripe errors
//! keep Stripe's own `type`, `code` and `decline_code` so a billing page can
//! show the real reason a card was refused.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Response};
use poem_openapi::Object;
use serde_json::json;

/// Details of an error answered by Stripe, kept as Stripe said them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StripeErrorInfo {
    pub http_status: Option<u16>,
    pub r#type: Option<String>,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub param: Option<String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, malformed, badly signed or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the role does not allow this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Unknown resource, or one the caller may not know exists.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The caller's input is wrong.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Stripe refused the caller's input (invalid token, unknown coupon...).
    #[error("{}", .0.message)]
    StripeInvalid(Box<StripeErrorInfo>),
    /// A card was declined.
    #[error("{}", .0.message)]
    CardDeclined(Box<StripeErrorInfo>),
    /// Stripe could not be reached, failed, or rate-limited us.
    #[error("stripe error: {}", .info.message)]
    Stripe {
        info: Box<StripeErrorInfo>,
        retry_after: Option<u64>,
    },
    /// Something we depend on is down (the database, for instance).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }
    /// The bucket does not exist or the caller is not a member: the same answer for both,
    /// so ids of other teams' buckets cannot be probed.
    pub fn bucket_not_found() -> Self {
        Self::not_found("bucket_not_found", "bucket not found")
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } | Self::StripeInvalid(_) => StatusCode::BAD_REQUEST,
            Self::CardDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Stripe { .. } | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn body(&self) -> serde_json::Value {
        let stripe_body = |code: &str, info: &StripeErrorInfo| {
            json!({"error": {
                "code": code,
                "message": info.message,
                "type": info.r#type,
                "stripe_code": info.code,
                "decline_code": info.decline_code,
                "param": info.param,
            }})
        };
        match self {
            Self::Unauthorized(m) => error_json("unauthorized", m),
            Self::Forbidden { code, message }
            | Self::NotFound { code, message }
            | Self::BadRequest { code, message } => error_json(code, message),
            Self::StripeInvalid(info) => {
                stripe_body(info.code.as_deref().unwrap_or("invalid_request"), info)
            }
            Self::CardDeclined(info) => {
                stripe_body(info.code.as_deref().unwrap_or("card_declined"), info)
            }
            Self::Stripe { info, .. } => stripe_body("stripe_error", info),
            Self::Unavailable(m) => error_json("unavailable", m),
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                error_json("internal", "internal error")
            }
        }
    }
}

/// `{"error": {"code": .., "message": ..}}`
pub fn error_json(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message}})
}

/// A JSON error response, for errors raised outside our handlers (poem's own
/// parse errors, unknown routes, too-large bodies).
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(Body::from_json(error_json(code, message)).unwrap_or_default());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        let mut resp = Response::builder()
            .status(self.status())
            .content_type("application/json; charset=utf-8")
            .body(Body::from_json(self.body()).unwrap_or_default());
        match self {
            Self::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Stripe {
                retry_after: Some(secs),
                ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            _ => {}
        }
        resp
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable("database unavailable".into())
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// The body of every error answer, as documented in the spec (see `api::contract`).
#[derive(Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Object)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`bucket_not_found`, `card_declined`, `stripe_error`...).
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// Stripe's error type, when the error came from Stripe.
    #[oai(rename = "type")]
    pub r#type: Option<String>,
    /// Stripe's own error code, when the error came from Stripe.
    pub stripe_code: Option<String>,
    /// Stripe's decline code, for declined cards.
    pub decline_code: Option<String>,
    /// The parameter Stripe blamed, if any.
    pub param: Option<String>,
}

impl poem::IntoResponse for ApiError {
    fn into_response(self) -> Response {
        poem::error::ResponseError::as_response(&self)
    }
}
