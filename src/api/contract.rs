//! What each operation can answer, declared next to its handler and written
//! into the spec from there.
//!
//! A handler returns [`Reply<T, S>`]: `T` is its 200 payload and `S` a
//! [`Statuses`] type naming the statuses the operation can answer, each with
//! its one-line description. So a generated client sees, per route, exactly
//! the errors it must handle (fetchCreditCards: 401, 404, 500), not one list
//! shared by every route. The errors themselves are still [`ApiError`]s (`?`
//! converts), answered as before; only the spec changes.
//!
//! `ERRORS` lists every status the route can answer, including those raised
//! outside the handler: 401 (the security scheme), 400 for a body poem cannot
//! parse, 413 and 415 (a body too large / not JSON, routes with a body only).
//! `tests/it/spec_contract.rs` makes every route answer every status its spec
//! lists, and fails on a status no request can bring about.

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;

use crate::error::{ApiError, ErrorBody};

/// The statuses of one operation: the description of its 200 (`OK`) and its
/// error statuses with theirs (`ERRORS`), in the seed's words where the seed
/// documents the route.
pub trait Statuses: Send + Sync + 'static {
    /// Empty only for operations whose answer documents its own successes.
    const OK: &'static str = "";
    const ERRORS: &'static [(u16, &'static str)];
}

/// Declare an operation's [`Statuses`]:
/// `statuses! { Name: "what its 200 is" { 404 => "why", … } }`.
macro_rules! statuses {
    ($(#[$doc:meta])* $name:ident $(: $ok:literal)? { $($status:literal => $why:expr),* $(,)? }) => {
        $(#[$doc])*
        pub struct $name;
        impl $crate::api::contract::Statuses for $name {
            $(const OK: &'static str = $ok;)?
            const ERRORS: &'static [(u16, &'static str)] = &[$(($status, $why)),*];
        }
    };
}
pub(crate) use statuses;

/// A handler's result: its 200 payload `T`, or an error among `S::ERRORS`.
pub type Reply<T, S> = Result<Success<T, S>, Failure<S>>;

/// `Ok` of a [`Reply`]: the payload, whatever `S` the reply's type names.
pub fn ok<T, S>(body: T) -> Reply<T, S> {
    Ok(Success(body, PhantomData))
}

/// A 200 answer, documented with `S::OK` (made by [`ok`]).
pub struct Success<T, S>(T, PhantomData<fn() -> S>);

impl<T: ApiResponse, S: Statuses> ApiResponse for Success<T, S> {
    fn meta() -> MetaResponses {
        let mut meta = T::meta();
        for response in &mut meta.responses {
            if response.status == Some(200) {
                response.description = S::OK;
            }
        }
        meta
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: IntoResponse, S: Send> IntoResponse for Success<T, S> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// An error answer of an operation whose statuses are `S`.
#[derive(Debug)]
pub struct Failure<S>(pub ApiError, PhantomData<fn() -> S>);

impl<S, E: Into<ApiError>> From<E> for Failure<S> {
    fn from(e: E) -> Self {
        Failure(e.into(), PhantomData)
    }
}

impl<S: Statuses> ApiResponse for Failure<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::ERRORS
                .iter()
                .map(|&(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: <ErrorBody as Type>::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        <ErrorBody as Type>::register(registry);
    }
}

impl<S: Statuses> From<Failure<S>> for poem::Error {
    fn from(f: Failure<S>) -> Self {
        let status = f.0.status().as_u16();
        if !S::ERRORS.iter().any(|&(s, _)| s == status) {
            // The spec does not list this answer: a contract bug, not the caller's.
            tracing::error!(status, error = %f.0, "an operation answered a status its spec does not list");
        }
        poem::Error::from(f.0)
    }
}

/// Descriptions shared by many operations.
pub const UNAUTHORIZED: &str = "Missing, malformed, badly signed or expired bearer token";
pub const ADMIN_UNAUTHORIZED: &str = "Missing or wrong admin token";
pub const ADMIN_OFF: &str = "the admin API is off (PAYSYNC_ADMIN_TOKEN is not set)";
pub const FORBIDDEN_ROLE: &str =
    "The caller is a member of the bucket, but only owners and admins may change its billing";
pub const UNKNOWN_BUCKET: &str = "No such bucket, or the caller is not a member of it";
pub const DATABASE_ERROR: &str = "database error";
pub const STRIPE_ERROR: &str =
    "stripe error (Stripe failed or could not be reached), or database error";
pub const UNAVAILABLE: &str = "The database is unavailable; retry later";
pub const TOO_LARGE: &str = "Request body too large";
pub const NOT_JSON: &str = "The body is not JSON (Content-Type missing or another)";
