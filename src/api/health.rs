//! Liveness and readiness probes.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::api::Tag;
use crate::app::ApiContext;
use crate::error::{ApiError, ApiResult};

#[derive(Object)]
pub struct Health {
    pub status: String,
}

pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// The process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// The process can serve: the database answers.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, ctx: Data<&ApiContext>) -> ApiResult<Json<Health>> {
        ctx.db.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::Unavailable(format!("database not ready: {e}"))
        })?;
        Ok(Json(Health {
            status: "ready".into(),
        }))
    }
}
