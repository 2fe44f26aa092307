//! Authentication (bearer JWT for users, bearer admin token) and the bucket
//! access rule: members read, owners and admins write, and a bucket you are not
//! a member of does not exist as far as you can tell (404, like a missing one).

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::app::ApiContext;
use crate::auth::{Claims, admin_token_matches};
use crate::error::{ApiError, ApiResult};
use crate::store::buckets::{Bucket, Role, valid_id};
use crate::store::cards_cache::Answer;

/// A user's access token (JWT, `sub` = user id).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_user")]
pub struct UserAuth(pub Claims);

async fn check_user(req: &Request, bearer: Bearer) -> poem::Result<Claims> {
    let ctx = context(req)?;
    Ok(ctx.cfg.jwt.verify(&bearer.token)?)
}

/// The admin token (`PAYSYNC_ADMIN_TOKEN`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin")]
pub struct AdminAuth(pub ());

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let ctx = context(req)?;
    match &ctx.cfg.admin_token {
        None => Err(ApiError::not_found(
            "admin_disabled",
            "the admin API is off (PAYSYNC_ADMIN_TOKEN is not set)",
        )
        .into()),
        Some(expected) if admin_token_matches(&bearer.token, expected) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("invalid admin token".into()).into()),
    }
}

fn context(req: &Request) -> poem::Result<&ApiContext> {
    req.data::<ApiContext>().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("ApiContext missing from request data")).into()
    })
}

/// A bucket the caller may act on, with the caller's role.
pub struct Access {
    pub bucket: Bucket,
    pub role: Role,
    pub user_id: String,
}

impl UserAuth {
    pub fn user_id(&self) -> &str {
        &self.0.sub
    }

    /// Read access: any member.
    pub async fn read(&self, ctx: &ApiContext, bucket_id: &str) -> ApiResult<Access> {
        if !valid_id(bucket_id) {
            return Err(ApiError::bucket_not_found());
        }
        match ctx.db.bucket_for_member(bucket_id, self.user_id()).await? {
            Some((bucket, role)) => Ok(Access {
                bucket,
                role,
                user_id: self.user_id().to_string(),
            }),
            None => Err(ApiError::bucket_not_found()),
        }
    }

    /// Read access together with the cards list answer (paysync's hottest
    /// read: see `store::cards_cache`).
    pub async fn read_cards(&self, ctx: &ApiContext, bucket_id: &str) -> ApiResult<Answer> {
        if !valid_id(bucket_id) {
            return Err(ApiError::bucket_not_found());
        }
        ctx.db
            .cards_answer(bucket_id, self.user_id())
            .await?
            .ok_or_else(ApiError::bucket_not_found)
    }

    /// Write access: owner or admin.
    pub async fn write(&self, ctx: &ApiContext, bucket_id: &str) -> ApiResult<Access> {
        let access = self.read(ctx, bucket_id).await?;
        if !access.role.can_write() {
            return Err(ApiError::forbidden(
                "insufficient_role",
                format!(
                    "a {} of this bucket cannot change its billing (owner or admin needed)",
                    access.role.as_str()
                ),
            ));
        }
        Ok(access)
    }
}
