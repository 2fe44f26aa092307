//! Every request: a request id (the caller's `X-Request-Id` when it is sane,
//! else a fresh one; echoed in the response), one log line, and HTTP metrics
//! labelled by route template (the OpenAPI operation id), never by raw path,
//! so ids in URLs do not explode the metric cardinality.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use metrics::{Counter, Histogram};

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

pub struct Observe;

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint { inner: ep }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
}

fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| sane(v))
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // Labels are static strings: no allocation per request for the metrics keys.
        let method = method_label(req.method());
        // A clone shares the request's bytes (no copy); the path is looked at
        // only when no operation answered.
        let uri = req.uri().clone();
        let path = uri.path();
        let span = tracing::info_span!("request", request_id = %request_id, %method);
        let started = Instant::now();
        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = match result {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        let route: &'static str = match resp.data::<OperationId>() {
            Some(op) => op.0,
            None if path == "/metrics" => "/metrics",
            None if path == "/openapi.json" => "/openapi.json",
            None if path.starts_with("/docs") => "/docs",
            None => "unmatched",
        };
        if status == 405
            && let Some(allow) = crate::api::allowed_methods(path)
            && let Ok(v) = HeaderValue::from_str(&allow)
        {
            resp.headers_mut().insert(poem::http::header::ALLOW, v);
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        record(route, method, status, elapsed.as_secs_f64());
        span.in_scope(|| {
            tracing::info!(%route, status, ms = elapsed.as_secs_f64() * 1000.0, "request");
        });
        Ok(resp)
    }
}

/// Count the request and record its duration. The metric handles of each
/// (route, method, status) are kept per thread: looking them up in the
/// recorder by name and labels (and making the status label) was a few
/// percent of a cached read's CPU.
fn record(route: &'static str, method: &'static str, status: u16, seconds: f64) {
    type Handles = HashMap<(&'static str, &'static str, u16), (Counter, Histogram)>;
    thread_local! {
        static HANDLES: RefCell<Handles> = RefCell::new(HashMap::new());
    }
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        let (requests, duration) = handles.entry((route, method, status)).or_insert_with(|| {
            // The recorder first: a handle taken before it is a no-op forever.
            crate::metrics::handle();
            (
                metrics::counter!("paysync_http_requests_total", "route" => route, "method" => method, "status" => status.to_string()),
                metrics::histogram!("paysync_http_request_duration_seconds", "route" => route, "method" => method),
            )
        });
        requests.increment(1);
        duration.record(seconds);
    });
}

fn method_label(m: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
