//! The bucket customer's billing metadata: VAT number, company name, receipt
//! e-mail. Only these three keys may be set; an empty string removes a key.

use crate::api::text::OptText;
use std::collections::HashMap;

use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::{Map, Value};

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::cards::cached_customer;
use crate::api::write::{check_idempotency_key, ensure_customer, idempotency_key, store_answer};
use crate::app::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::stripe::customers;

/// Stripe's limit on a metadata value.
const MAX_VALUE: usize = 500;

/// The keys a caller may set.
#[derive(Object, Debug, Clone, Default)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct BillingMetadata {
    /// VAT number printed on invoices.
    pub vat_number: OptText,
    /// Company name printed on invoices.
    pub company_name: OptText,
    /// Where receipts are sent (a valid e-mail address).
    pub receipt_email: OptText,
}

/// `metadata`: the keys to set; an empty string removes a key.
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateMetadata {
    pub metadata: Option<BillingMetadata>,
}

/// `{"data": metadata}`
#[derive(Object)]
pub struct MetadataData {
    /// The customer's Stripe metadata after the update.
    pub data: Value,
}

/// The metadata as a client should see it: an empty value means "removed"
/// (Stripe drops such keys; localstripe keeps them as "").
fn visible(customer: Option<&Value>) -> Value {
    let map: Map<String, Value> = customer
        .and_then(|c| c.get("metadata"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_str() != Some(""))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Value::Object(map)
}

/// A plausible e-mail address: one `@`, a non-empty local part, a dotted domain, no spaces.
fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.len() <= 254
}

fn changes(m: &BillingMetadata) -> ApiResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (key, value) in [
        ("vat_number", &m.vat_number),
        ("company_name", &m.company_name),
        ("receipt_email", &m.receipt_email),
    ] {
        let Some(value) = value.as_deref().map(str::trim) else {
            continue;
        };
        if value.len() > MAX_VALUE {
            return Err(ApiError::bad_request(
                "invalid_metadata",
                format!("{key} is longer than {MAX_VALUE} characters"),
            ));
        }
        if key == "receipt_email" && !value.is_empty() && !valid_email(value) {
            return Err(ApiError::bad_request(
                "invalid_email",
                format!("receipt_email {value:?} is not an e-mail address"),
            ));
        }
        out.insert(key.to_string(), value.to_string());
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(
            "missing_metadata",
            "metadata needs at least one of vat_number, company_name, receipt_email",
        ));
    }
    Ok(out)
}

pub struct MetadataApi;

#[OpenApi(tag = "Tag::Payment")]
impl MetadataApi {
    /// The bucket customer's Stripe metadata (empty before the first payment write).
    #[oai(
        path = "/api/bucket/:id/payment",
        method = "get",
        operation_id = "fetchMetadata"
    )]
    async fn get(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Value>> {
        let access = auth.read(&ctx, &id).await?;
        let customer = cached_customer(&ctx, &access.bucket.id).await?;
        Ok(Json(visible(customer.as_ref().map(|c| &c.data))))
    }

    /// Set or remove `vat_number`, `company_name`, `receipt_email`; any other key is refused.
    #[oai(
        path = "/api/bucket/:id/payment",
        method = "put",
        operation_id = "updateMetadata"
    )]
    async fn update(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        body: Json<UpdateMetadata>,
        /// Makes a retried request safe.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> ApiResult<Json<MetadataData>> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let Some(metadata) = body.0.metadata else {
            return Err(ApiError::bad_request(
                "missing_metadata",
                "metadata is required",
            ));
        };
        let changes = changes(&metadata)?;
        let customer = ensure_customer(&ctx, &access.bucket).await?;
        let idem = idempotency_key(&access.bucket.id, "updateMetadata", idempotency.as_deref());
        let answer = customers::update_metadata(&ctx.stripe, &customer, changes, idem).await?;
        store_answer(&ctx, &answer, "updateMetadata").await?;
        Ok(Json(MetadataData {
            data: visible(Some(&answer)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(valid_email("billing@example.com"));
        for bad in [
            "",
            "x",
            "a@b",
            "@b.com",
            "a@.com",
            "a@b.",
            "a b@c.com",
            "a@b@c.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
