//! `GET /api/bucket` and `GET /api/bucket/{id}`: the caller's buckets, with
//! their effective plan and `node.endpoints.web` (where the PM2.io JS client
//! sends a bucket's billing calls).

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::contract::*;
use crate::api::schema::List;
use crate::app::ApiContext;
use crate::billing::{SubscriptionSummary, TrialView, plan_state};
use crate::error::ApiResult;
use crate::store::buckets::{Bucket, Role};
use poem::web::Data;

#[derive(Object, Debug, Clone)]
pub struct Endpoints {
    /// Base URL serving this bucket's API.
    pub web: String,
}

#[derive(Object, Debug, Clone)]
pub struct Node {
    pub endpoints: Endpoints,
}

/// A bucket, as its members see it.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none, example)]
pub struct BucketView {
    /// Same as `id` (the PM2.io API names it `_id`).
    #[oai(rename = "_id")]
    pub underscore_id: String,
    pub id: String,
    pub name: String,
    /// The effective plan: the live subscription's, else the running trial's, else the free plan.
    pub plan: String,
    // No doc comment here: poem-openapi would wrap the enum's $ref in an allOf,
    // which some SDK generators (openapi-python-client) cannot read.
    pub role: Role,
    pub trial: Option<TrialView>,
    pub subscription: Option<SubscriptionSummary>,
    pub node: Node,
    pub created_at: i64,
}

impl Example for BucketView {
    fn example() -> Self {
        let id = "65f1c0ffee0123456789abcd".to_string();
        BucketView {
            underscore_id: id.clone(),
            id,
            name: "Acme".into(),
            plan: "starter".into(),
            role: Role::Owner,
            trial: None,
            subscription: Some(SubscriptionSummary {
                id: "sub_1PkQAbLz2mXv8Rb4Ws9xEe1K".into(),
                status: "active".into(),
                plan: Some("starter".into()),
                current_period_end: Some(1725533700),
                cancel_at_period_end: false,
                canceled_at: None,
            }),
            node: Node {
                endpoints: Endpoints {
                    web: "https://billing.example.com".into(),
                },
            },
            created_at: 1722850000,
        }
    }
}

statuses! {
    ListBuckets: "the caller's buckets" {
        401 => UNAUTHORIZED,
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    GetBucket: "the bucket" {
        401 => UNAUTHORIZED,
        404 => UNKNOWN_BUCKET,
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

/// Build the bucket object the API answers with.
pub async fn view(ctx: &ApiContext, bucket: &Bucket, role: Role) -> ApiResult<BucketView> {
    let state = plan_state(&ctx.db, &ctx.cfg.catalog, &bucket.id).await?;
    Ok(BucketView {
        underscore_id: bucket.id.clone(),
        id: bucket.id.clone(),
        name: bucket.name.clone(),
        plan: state.plan.clone(),
        role,
        trial: state.trial.as_ref().map(TrialView::from),
        subscription: state
            .subscription
            .as_ref()
            .map(|s| SubscriptionSummary::of(&ctx.cfg.catalog, s)),
        node: Node {
            endpoints: Endpoints {
                web: ctx.cfg.public_url.clone(),
            },
        },
        created_at: bucket.created_at,
    })
}

pub struct BucketApi;

#[OpenApi(tag = "Tag::Bucket")]
impl BucketApi {
    /// The buckets the caller is a member of.
    #[oai(path = "/api/bucket", method = "get", operation_id = "listBuckets")]
    async fn list(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
    ) -> Reply<Json<List<BucketView>>, ListBuckets> {
        let mut out = Vec::new();
        for (bucket, role) in ctx.db.buckets_of(auth.user_id()).await? {
            out.push(view(&ctx, &bucket, role).await?);
        }
        ok(Json(List(out)))
    }

    /// One bucket of the caller (404 when it does not exist or the caller is not a member).
    #[oai(path = "/api/bucket/:id", method = "get", operation_id = "getBucket")]
    async fn get(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
    ) -> Reply<Json<BucketView>, GetBucket> {
        let access = auth.read(&ctx, &id).await?;
        ok(Json(view(&ctx, &access.bucket, access.role).await?))
    }
}
