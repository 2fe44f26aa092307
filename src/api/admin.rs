//! Admin API: provisioning of buckets and members, with the admin token.
//! Buckets are owned by the platform that embeds paysync (PM2.io, say); it
//! tells paysync which buckets exist and who is in them.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::Tag;
use crate::api::access::AdminAuth;
use crate::api::contract::*;
use crate::api::text::Text;
use crate::app::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::store::buckets::{Member, Role, new_id, valid_id};

#[derive(Object, Debug, Clone)]
pub struct MemberInput {
    pub user_id: Text,
    pub role: Role,
}

#[derive(Object, Debug, Clone)]
pub struct BucketInput {
    pub name: Text,
    #[oai(default)]
    pub members: Vec<MemberInput>,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none, example)]
pub struct AdminBucket {
    pub id: String,
    pub name: String,
    pub stripe_customer_id: Option<String>,
    pub members: Vec<MemberInput>,
    pub created_at: i64,
}

impl Example for AdminBucket {
    fn example() -> Self {
        AdminBucket {
            id: "65f1c0ffee0123456789abcd".into(),
            name: "Acme".into(),
            stripe_customer_id: Some("cus_QbX4mT9vLk2sNe".into()),
            members: vec![MemberInput {
                user_id: Text("alice".into()),
                role: Role::Owner,
            }],
            created_at: 1722850000,
        }
    }
}

#[derive(ApiResponse)]
pub enum PutBucketResponse {
    /// The bucket existed: name and members replaced.
    #[oai(status = 200)]
    Replaced(Json<AdminBucket>),
    /// The bucket was created.
    #[oai(status = 201)]
    Created(Json<AdminBucket>),
}

#[derive(ApiResponse)]
pub enum CreateBucketResponse {
    /// The bucket was created.
    #[oai(status = 201)]
    Created(Json<AdminBucket>),
}

#[derive(Object)]
#[oai(example)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

impl Example for Deleted {
    fn example() -> Self {
        Deleted {
            id: "65f1c0ffee0123456789abcd".into(),
            deleted: true,
        }
    }
}

statuses! {
    AdminCreateBucket {
        400 => "an invalid name or member list",
        401 => ADMIN_UNAUTHORIZED,
        404 => ADMIN_OFF,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    AdminPutBucket {
        400 => "not a bucket id (24 lowercase hex characters), or an invalid name or member list",
        401 => ADMIN_UNAUTHORIZED,
        404 => ADMIN_OFF,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    AdminGetBucket: "the bucket, its members and its Stripe customer" {
        401 => ADMIN_UNAUTHORIZED,
        404 => "no such bucket, or the admin API is off (PAYSYNC_ADMIN_TOKEN is not set)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    AdminDeleteBucket: "the bucket and its memberships were deleted" {
        401 => ADMIN_UNAUTHORIZED,
        404 => "no such bucket, or the admin API is off (PAYSYNC_ADMIN_TOKEN is not set)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

fn members_of(input: &BucketInput) -> ApiResult<Vec<Member>> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 200 characters",
        ));
    }
    let mut out: Vec<Member> = Vec::new();
    for m in &input.members {
        let user = m.user_id.trim();
        if user.is_empty() || user.len() > 200 {
            return Err(ApiError::bad_request(
                "invalid_member",
                "user_id must be 1 to 200 characters",
            ));
        }
        if out.iter().any(|o| o.user_id == user) {
            return Err(ApiError::bad_request(
                "duplicate_member",
                format!("user {user} is listed twice"),
            ));
        }
        out.push(Member {
            user_id: user.to_string(),
            role: m.role,
        });
    }
    Ok(out)
}

async fn load(ctx: &ApiContext, id: &str) -> ApiResult<AdminBucket> {
    let bucket = ctx
        .db
        .bucket(id)
        .await?
        .ok_or_else(ApiError::bucket_not_found)?;
    let members = ctx.db.members(id).await?;
    Ok(AdminBucket {
        id: bucket.id,
        name: bucket.name,
        stripe_customer_id: bucket.stripe_customer_id,
        members: members
            .into_iter()
            .map(|m| MemberInput {
                user_id: Text(m.user_id),
                role: m.role,
            })
            .collect(),
        created_at: bucket.created_at,
    })
}

pub struct AdminApi;

#[OpenApi(tag = "Tag::Admin")]
impl AdminApi {
    /// Create a bucket with a fresh id.
    #[oai(
        path = "/admin/buckets",
        method = "post",
        operation_id = "adminCreateBucket"
    )]
    async fn create(
        &self,
        ctx: Data<&ApiContext>,
        _admin: AdminAuth,
        body: Json<BucketInput>,
    ) -> Result<CreateBucketResponse, Failure<AdminCreateBucket>> {
        let members = members_of(&body)?;
        let id = new_id();
        ctx.db.put_bucket(&id, body.name.trim(), &members).await?;
        tracing::info!(bucket = %id, "bucket created");
        Ok(CreateBucketResponse::Created(Json(load(&ctx, &id).await?)))
    }

    /// Create the bucket with this id, or replace its name and members.
    #[oai(
        path = "/admin/buckets/:id",
        method = "put",
        operation_id = "adminPutBucket"
    )]
    async fn put(
        &self,
        ctx: Data<&ApiContext>,
        _admin: AdminAuth,
        id: Path<String>,
        body: Json<BucketInput>,
    ) -> Result<PutBucketResponse, Failure<AdminPutBucket>> {
        if !valid_id(&id) {
            return Err(ApiError::bad_request(
                "invalid_bucket_id",
                "bucket ids are 24 lowercase hex characters",
            )
            .into());
        }
        let members = members_of(&body)?;
        let created = ctx.db.put_bucket(&id, body.name.trim(), &members).await?;
        let bucket = load(&ctx, &id).await?;
        Ok(if created {
            PutBucketResponse::Created(Json(bucket))
        } else {
            PutBucketResponse::Replaced(Json(bucket))
        })
    }

    /// A bucket with its members and Stripe customer.
    #[oai(
        path = "/admin/buckets/:id",
        method = "get",
        operation_id = "adminGetBucket"
    )]
    async fn get(
        &self,
        ctx: Data<&ApiContext>,
        _admin: AdminAuth,
        id: Path<String>,
    ) -> Reply<Json<AdminBucket>, AdminGetBucket> {
        if !valid_id(&id) {
            return Err(ApiError::bucket_not_found().into());
        }
        ok(Json(load(&ctx, &id).await?))
    }

    /// Delete a bucket and its memberships (its Stripe customer is left alone).
    #[oai(
        path = "/admin/buckets/:id",
        method = "delete",
        operation_id = "adminDeleteBucket"
    )]
    async fn delete(
        &self,
        ctx: Data<&ApiContext>,
        _admin: AdminAuth,
        id: Path<String>,
    ) -> Reply<Json<Deleted>, AdminDeleteBucket> {
        if !valid_id(&id) || !ctx.db.delete_bucket(&id).await? {
            return Err(ApiError::bucket_not_found().into());
        }
        tracing::info!(bucket = %id.0, "bucket deleted");
        ok(Json(Deleted {
            id: id.0,
            deleted: true,
        }))
    }
}
