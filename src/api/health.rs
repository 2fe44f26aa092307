//! Liveness and readiness probes.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use crate::api::Tag;
use crate::api::contract::*;
use crate::app::ApiContext;
use crate::error::ApiError;

/// `ok` (healthz) or `ready` (readyz).
#[derive(Object)]
#[oai(example)]
pub struct Health {
    pub status: String,
}

impl Example for Health {
    fn example() -> Self {
        Health {
            status: "ok".into(),
        }
    }
}

statuses! {
    Healthz: "the process is up" {}
}

statuses! {
    Readyz: "the database answers" {
        503 => "the database does not answer",
    }
}

pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// The process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Reply<Json<Health>, Healthz> {
        ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// The process can serve: the database answers.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, ctx: Data<&ApiContext>) -> Reply<Json<Health>, Readyz> {
        ctx.db.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::Unavailable(format!("database not ready: {e}"))
        })?;
        ok(Json(Health {
            status: "ready".into(),
        }))
    }
}
