//! The bucket customer's billing metadata: VAT number, company name, receipt
//! e-mail. Only these three keys may be set; an empty string removes a key.

use crate::api::text::OptText;
use std::collections::HashMap;

use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use serde_json::{Map, Value};

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::cards::cached_customer;
use crate::api::contract::*;
use crate::api::schema::Shaped;
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
#[oai(rename = "UpdateMetadata", deny_unknown_fields)]
pub struct MetadataUpdate {
    pub metadata: Option<BillingMetadata>,
}

/// The bucket customer's Stripe metadata: the keys a caller may set, the
/// bucket id paysync set, and any other key set in Stripe (all strings).
#[derive(Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct CustomerMetadata {
    /// The bucket this customer pays for (set by paysync with the customer).
    pub bucket_id: Option<String>,
    /// VAT number printed on invoices.
    pub vat_number: Option<String>,
    /// Company name printed on invoices.
    pub company_name: Option<String>,
    /// Where receipts are sent.
    pub receipt_email: Option<String>,
    #[oai(flatten)]
    pub other: HashMap<String, String>,
}

impl Example for CustomerMetadata {
    fn example() -> Self {
        CustomerMetadata {
            bucket_id: Some("65f1c0ffee0123456789abcd".into()),
            vat_number: Some("FR40303265045".into()),
            company_name: Some("Acme".into()),
            receipt_email: Some("billing@acme.test".into()),
            other: HashMap::new(),
        }
    }
}

/// `{"data": metadata}`: the customer's Stripe metadata after the update.
#[derive(Object)]
#[oai(example)]
pub struct MetadataData {
    pub data: Shaped<CustomerMetadata>,
}

impl Example for MetadataData {
    fn example() -> Self {
        MetadataData {
            data: Shaped::example(),
        }
    }
}

statuses! {
    FetchMetadata: "successfully retrieved the metadata (empty before the first payment write)" {
        401 => UNAUTHORIZED,
        404 => UNKNOWN_BUCKET,
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    UpdateMetadata: "successfully updated the metadata" {
        400 => "missing parameters: metadata with vat_number, company_name or receipt_email (another key, a value too long or an invalid e-mail is refused); or an invalid Idempotency-Key",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => UNKNOWN_BUCKET,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
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
    ) -> Reply<Json<Shaped<CustomerMetadata>>, FetchMetadata> {
        let access = auth.read(&ctx, &id).await?;
        let customer = cached_customer(&ctx, &access.bucket.id).await?;
        ok(Json(Shaped::new(visible(
            customer.as_ref().map(|c| &c.data),
        ))))
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
        body: Json<MetadataUpdate>,
        /// Makes a retried request safe.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Reply<Json<MetadataData>, UpdateMetadata> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let Some(metadata) = body.0.metadata else {
            return Err(ApiError::bad_request("missing_metadata", "metadata is required").into());
        };
        let changes = changes(&metadata)?;
        let customer = ensure_customer(&ctx, &access.bucket).await?;
        let idem = idempotency_key(&access.bucket.id, "updateMetadata", idempotency.as_deref());
        let answer = customers::update_metadata(&ctx.stripe, &customer, changes, idem).await?;
        store_answer(&ctx, &answer, "updateMetadata").await?;
        ok(Json(MetadataData {
            data: Shaped::new(visible(Some(&answer))),
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
