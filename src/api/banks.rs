//! The bucket's SEPA bank account. A bucket has at most one: attaching a new
//! account detaches the old one. IBANs are checked locally before Stripe.

use crate::api::text::OptText;
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::cards::{owned_by, refresh_customer};
use crate::api::contract::*;
use crate::api::iban;
use crate::api::schema::{DeletedSepaDebitSource, SepaDebitSource, Shaped};
use crate::api::write::{
    check_idempotency_key, ensure_customer, idempotency_key, store_answer, store_deleted,
};
use crate::app::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::store::objects::{Kind, Page, Stored};
use crate::stripe::{cards as stripe_cards, json, sources};

#[derive(Object)]
pub struct AttachBank {
    /// The kind of account: only `sepa`.
    #[oai(rename = "type")]
    pub kind: OptText,
    /// The account's IBAN (spaces allowed).
    pub iban: OptText,
    /// The account holder's name.
    pub name: OptText,
}

/// `{"data": source}`: a Stripe SEPA debit source object.
#[derive(Object)]
#[oai(example)]
pub struct SourceData {
    pub data: Shaped<SepaDebitSource>,
}

impl Example for SourceData {
    fn example() -> Self {
        SourceData {
            data: Shaped::example(),
        }
    }
}

statuses! {
    AttachBankAccount: "successfully added the account" {
        400 => "missing parameters (type, iban, name), an invalid IBAN, Stripe refused the account, or an invalid Idempotency-Key",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => UNKNOWN_BUCKET,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    FetchBankAccount: "successfully retrieved the account" {
        401 => UNAUTHORIZED,
        404 => "the user doesn't have any bank account (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    DeleteBankAccount: "successfully deleted the account: the source as it was, with deleted: true" {
        400 => "an invalid Idempotency-Key, or Stripe refused the request",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => "the user doesn't have any bank account (or no such bucket, or the caller is not a member)",
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

/// The bucket's SEPA sources in the cache, newest first (normally at most one).
async fn cached_banks(ctx: &ApiContext, bucket_id: &str) -> ApiResult<Vec<Stored>> {
    Ok(ctx
        .db
        .bucket_objects_where(
            Kind::Source,
            bucket_id,
            "status = 'sepa_debit'",
            &Page::default(),
        )
        .await?)
}

fn step(idem: Option<&str>, name: &str) -> Option<String> {
    idem.map(|k| format!("{k}:{name}"))
}

/// Validated `(iban, owner name)` of an attach request.
fn check_body(body: &AttachBank) -> ApiResult<(String, String)> {
    match body.kind.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(ApiError::bad_request(
                "missing_type",
                "type is required (sepa)",
            ));
        }
        Some("sepa") => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                "unsupported_type",
                format!("type {other:?} is not supported (only sepa)"),
            ));
        }
    }
    let raw = body.iban.as_deref().unwrap_or_default();
    if raw.trim().is_empty() {
        return Err(ApiError::bad_request("missing_iban", "iban is required"));
    }
    let iban = iban::check(raw)
        .map_err(|why| ApiError::bad_request("invalid_iban", format!("invalid IBAN: {why}")))?;
    let name = body.name.as_deref().unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "missing_name",
            "name (the account holder) is required",
        ));
    }
    if name.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name is longer than 200 characters",
        ));
    }
    Ok((iban, name))
}

pub struct BanksApi;

#[OpenApi(tag = "Tag::Payment")]
impl BanksApi {
    /// Attach a SEPA bank account to the bucket's customer, replacing the one it had.
    #[oai(
        path = "/api/bucket/:id/payment/banks",
        method = "post",
        operation_id = "attachBankAccount"
    )]
    async fn attach(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        body: Json<AttachBank>,
        /// Makes a retried request safe.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Reply<Json<SourceData>, AttachBankAccount> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let (iban, name) = check_body(&body)?;
        let bucket = &access.bucket.id;
        let old = cached_banks(&ctx, bucket).await?;
        let customer = ensure_customer(&ctx, &access.bucket).await?;
        let idem = idempotency_key(bucket, "attachBankAccount", idempotency.as_deref());
        let idem = idem.as_deref();

        let created = sources::create_sepa(&ctx.stripe, &iban, &name, step(idem, "source")).await?;
        let src_id = json::str(&created, "id")
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("Stripe created a source without id"))
            })?
            .to_string();
        let attached =
            stripe_cards::attach_source(&ctx.stripe, &customer, &src_id, step(idem, "attach"))
                .await?;
        let attached = owned_by(attached, &customer);
        store_answer(&ctx, &attached, "attachBankAccount").await?;
        tracing::info!(bucket = %bucket, source = %src_id, "SEPA bank account attached");

        // One account per bucket: detach the ones it replaces.
        let mut last_answer = None;
        for prev in old.iter().filter(|s| s.id != src_id) {
            let key = step(idem, &format!("detach:{}", prev.id));
            let result = stripe_cards::delete_source(&ctx.stripe, &customer, &prev.id, key).await;
            let answer = stripe_cards::already_gone_is_ok(result)?;
            store_deleted(&ctx, &prev.data, "attachBankAccount").await?;
            last_answer = answer.or(last_answer);
        }
        // Attaching a first source may have made it the customer's default.
        refresh_customer(&ctx, &customer, last_answer.as_ref(), "attachBankAccount").await;
        ok(Json(SourceData {
            data: Shaped::new(attached),
        }))
    }

    /// The bucket's SEPA bank account (404 when it has none).
    #[oai(
        path = "/api/bucket/:id/payment/banks",
        method = "get",
        operation_id = "fetchBankAccount"
    )]
    async fn get(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
    ) -> Reply<Json<SourceData>, FetchBankAccount> {
        let access = auth.read(&ctx, &id).await?;
        match cached_banks(&ctx, &access.bucket.id)
            .await?
            .into_iter()
            .next()
        {
            Some(bank) => ok(Json(SourceData {
                data: Shaped::new(bank.data),
            })),
            None => Err(
                ApiError::not_found("no_bank_account", "this bucket has no bank account").into(),
            ),
        }
    }

    /// Remove the bucket's SEPA bank account.
    #[oai(
        path = "/api/bucket/:id/payment/banks",
        method = "delete",
        operation_id = "deleteBankAccount"
    )]
    async fn delete(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        /// Makes a retried request safe.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Reply<Json<Shaped<DeletedSepaDebitSource>>, DeleteBankAccount> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let banks = cached_banks(&ctx, &access.bucket.id).await?;
        let Some(bank) = banks.first() else {
            return Err(
                ApiError::not_found("no_bank_account", "this bucket has no bank account").into(),
            );
        };
        let customer = ensure_customer(&ctx, &access.bucket).await?;
        let idem = idempotency_key(
            &access.bucket.id,
            "deleteBankAccount",
            idempotency.as_deref(),
        );
        let answer = stripe_cards::already_gone_is_ok(
            stripe_cards::delete_source(&ctx.stripe, &customer, &bank.id, idem).await,
        )?;
        store_deleted(&ctx, &bank.data, "deleteBankAccount").await?;
        refresh_customer(&ctx, &customer, answer.as_ref(), "deleteBankAccount").await;
        let mut source = bank.data.clone();
        source["deleted"] = Value::Bool(true);
        ok(Json(Shaped::new(source)))
    }
}
