//! Cross-cutting HTTP behaviour: a body-size limit that works with or without
//! `Content-Length`, and JSON bodies for every error, including the ones poem
//! raises itself (unknown route, unparsable JSON, missing field).

use poem::http::StatusCode;
use poem::{Endpoint, Middleware, Request, Response};
use tokio::io::AsyncReadExt;

use crate::error::{ApiError, error_response};

/// Refuse bodies larger than the limit with 413.
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            max: self.0,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max) {
            drain(req.take_body().into_async_read(), self.max).await;
            return Err(too_large(self.max));
        }
        // Without a trustworthy length (chunked), read at most the limit.
        if declared.is_none() {
            let mut reader = req.take_body().into_async_read();
            let mut bytes = Vec::new();
            (&mut reader)
                .take(self.max as u64 + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(poem::error::BadRequest)?;
            if bytes.len() > self.max {
                drain(reader, self.max).await;
                return Err(too_large(self.max));
            }
            req.set_body(bytes);
        }
        self.inner.call(req).await
    }
}

/// Read and discard (a bounded amount of) a refused body before answering:
/// a client still sending would otherwise see a reset connection instead of
/// our 413. Bodies far larger than the limit are not waited for.
async fn drain(reader: impl tokio::io::AsyncRead + Unpin, max: usize) {
    let cap = (max as u64).saturating_mul(16).max(1 << 20);
    let _ = tokio::io::copy(&mut reader.take(cap), &mut tokio::io::sink()).await;
}

fn too_large(max: usize) -> poem::Error {
    poem::Error::from_response(error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("request body is larger than {max} bytes"),
    ))
}

/// Turn any error into a JSON error answer. Our own [`ApiError`]s already are;
/// poem's get a code derived from their status and keep their message.
pub async fn json_error(err: poem::Error) -> Response {
    // Keep the operation id (set by poem-openapi on the error) for the metrics label.
    let operation = err.data::<poem_openapi::OperationId>().copied();
    let mut resp = to_json(err);
    if let Some(op) = operation {
        resp.set_data(op);
    }
    resp
}

fn to_json(err: poem::Error) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let message = match status {
        StatusCode::UNAUTHORIZED => "missing or invalid bearer token".to_string(),
        StatusCode::NOT_FOUND => "no such route".to_string(),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "unhandled server error");
            "internal error".to_string()
        }
        _ => err.to_string(),
    };
    error_response(status, code, &message)
}
