//! The bucket's cards: attach (card token or PaymentMethod), list, fetch one,
//! fetch the default, update the billing address, set the default, delete.
//!
//! Writes go to Stripe and store Stripe's answer before answering; reads come
//! only from the cache, so they work while Stripe is slow or down. A card is
//! answered as a Stripe card object; a card PaymentMethod is shown in the same
//! shape (see [`card_view`]) so clients need one code path.

use crate::api::text::OptText;
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use crate::api::Tag;
use crate::api::access::UserAuth;
use crate::api::contract::*;
use crate::api::json_text::JsonText;
use crate::api::schema::{Card, DeletedCard, Shaped};
use crate::api::write::{
    check_idempotency_key, ensure_customer, idempotency_key, store_answer, store_deleted,
};
use crate::app::ApiContext;
use crate::billing::LIVE;
use crate::error::{ApiError, ApiResult};
use crate::store::buckets::Bucket;
use crate::store::objects::{Kind, Page, Stored};
use crate::store::views;
use crate::store::views::card_view;
use crate::stripe::cards::{self as stripe_cards, CardAddress};
use crate::stripe::customers::{self, DefaultCard};
use crate::stripe::json;

/// `{"data": card}`: a card in the shape of Stripe's card object.
#[derive(Object)]
#[oai(example)]
pub struct CardData {
    pub data: Shaped<Card>,
}

impl CardData {
    fn of(card: Value) -> Self {
        CardData {
            data: Shaped::new(card),
        }
    }
}

impl Example for CardData {
    fn example() -> Self {
        CardData {
            data: Shaped::example(),
        }
    }
}

/// `{"data": [card]}`: the bucket's cards, the default card first, then newest first.
#[derive(Object)]
#[oai(example)]
pub struct CardList {
    pub data: Vec<Shaped<Card>>,
}

impl Example for CardList {
    fn example() -> Self {
        CardList {
            data: vec![Shaped::example()],
        }
    }
}

statuses! {
    AttachCreditCard: "successfully added the card" {
        400 => "missing parameters (no token, or not a card token), Stripe refused the token, or an invalid Idempotency-Key",
        401 => UNAUTHORIZED,
        402 => "the card was declined (Stripe's decline_code in the body)",
        403 => FORBIDDEN_ROLE,
        404 => UNKNOWN_BUCKET,
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

// The cards list is read on connections of its own (store::sqlite_read,
// store::pg_read), whose failures, the database being down included, are 500.
statuses! {
    FetchCreditCards: "successfully retrieved the cards" {
        401 => UNAUTHORIZED,
        404 => "the user doesn't have any card (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
    }
}

statuses! {
    FetchCreditCard: "successfully retrieved the card" {
        400 => "missing parameters card_id (not a Stripe card id)",
        401 => UNAUTHORIZED,
        404 => "the bucket has no such card (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    FetchDefaultCreditCard: "successfully retrieved the card" {
        401 => UNAUTHORIZED,
        404 => "the user doesn't have any default card (or no such bucket, or the caller is not a member)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    UpdateCreditCard: "successfully updated the card" {
        400 => "missing parameters, you need to specify a card (id) and at least one valid address field; or an invalid Idempotency-Key",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => "the bucket has no such card (or no such bucket, or the caller is not a member)",
        413 => TOO_LARGE,
        415 => NOT_JSON,
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    DeleteCreditCard: "successfully deleted the card: the card as it was, with deleted: true" {
        400 => "missing parameters card_id (not a Stripe card id), or an invalid Idempotency-Key",
        401 => UNAUTHORIZED,
        403 => "the user must have one card active when having a subscription; or the caller's role may not change billing",
        404 => "the bucket has no such card (or no such bucket, or the caller is not a member)",
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    SetDefaultCard: "successfully set the card as default" {
        400 => "missing parameters card_id (not a Stripe card id), or an invalid Idempotency-Key",
        401 => UNAUTHORIZED,
        403 => FORBIDDEN_ROLE,
        404 => "the bucket has no such card (or no such bucket, or the caller is not a member)",
        500 => STRIPE_ERROR,
        503 => UNAVAILABLE,
    }
}

#[derive(Object)]
pub struct AttachCard {
    /// A Stripe card token (`tok_…`), or a card PaymentMethod id (`pm_…`).
    pub token: OptText,
}

#[derive(Object)]
pub struct UpdateCard {
    /// The card's Stripe id.
    pub id: OptText,
    pub address_line1: OptText,
    pub address_country: OptText,
    pub address_zip: OptText,
    pub address_city: OptText,
}

/// Longest address field accepted (Stripe's own limit is far higher; this catches garbage).
const MAX_FIELD: usize = 200;

/// Is this a Stripe id with one of these prefixes? Ids go into Stripe URL
/// paths, so nothing but letters, digits and `_` may pass.
pub fn valid_stripe_id(id: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| id.starts_with(p))
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_card_id(id: &str) -> ApiResult<()> {
    if id.trim().is_empty() {
        return Err(ApiError::bad_request(
            "missing_card_id",
            "the card id is missing",
        ));
    }
    if !valid_stripe_id(id, &["card_", "pm_", "src_"]) {
        return Err(ApiError::bad_request(
            "invalid_card_id",
            format!("{id:?} is not a Stripe card id (card_… or pm_…)"),
        ));
    }
    Ok(())
}

/// `key:step` for each Stripe write of a route that makes several.
fn step(idem: Option<&str>, name: &str) -> Option<String> {
    idem.map(|k| format!("{k}:{name}"))
}

/// Set `customer` on an object Stripe answered without it (localstripe's
/// sources, detached PaymentMethods), so the cache files it under the bucket.
pub(crate) fn owned_by(mut obj: Value, customer: &str) -> Value {
    if json::id(&obj, "customer").is_none()
        && let Some(map) = obj.as_object_mut()
    {
        map.insert("customer".into(), Value::String(customer.into()));
    }
    obj
}

fn is_card(row: &Stored) -> bool {
    views::is_card(row.status.as_deref(), &row.data)
}

/// The bucket's live cards in the cache, newest first.
pub async fn cached_cards(ctx: &ApiContext, bucket_id: &str) -> ApiResult<Vec<Stored>> {
    let rows = ctx
        .db
        .bucket_objects(Kind::Source, bucket_id, &Page::default())
        .await?;
    Ok(rows.into_iter().filter(is_card).collect())
}

/// One live card of the bucket in the cache (404 for another bucket's card).
async fn cached_card(ctx: &ApiContext, bucket_id: &str, card_id: &str) -> ApiResult<Stored> {
    ctx.db
        .bucket_object(Kind::Source, bucket_id, card_id)
        .await?
        .filter(is_card)
        .ok_or_else(|| {
            ApiError::not_found(
                "card_not_found",
                format!("this bucket has no card {card_id}"),
            )
        })
}

/// The bucket's Stripe customer as cached (None before its first write).
pub async fn cached_customer(ctx: &ApiContext, bucket_id: &str) -> ApiResult<Option<Stored>> {
    match ctx.db.bucket(bucket_id).await? {
        Some(bucket) => customer_of(ctx, &bucket).await,
        None => Ok(None),
    }
}

/// [`cached_customer`] of a bucket already read (by the access check): one query fewer.
pub async fn customer_of(ctx: &ApiContext, bucket: &Bucket) -> ApiResult<Option<Stored>> {
    let Some(customer) = &bucket.stripe_customer_id else {
        return Ok(None);
    };
    Ok(ctx
        .db
        .object(Kind::Customer, customer)
        .await?
        .filter(|c| !c.deleted))
}

/// The default card's id: the customer's `invoice_settings.default_payment_method`
/// (what Stripe charges first), else its `default_source`, if that is one of `cards`.
fn default_card_id(customer: Option<&Stored>, cards: &[Stored]) -> Option<String> {
    let (pm, source) = views::default_ids(&customer?.data);
    views::pick_default([pm, source], |id| cards.iter().any(|card| card.id == id))
        .map(str::to_string)
}

/// The bucket's default card, from the cache.
pub async fn default_card(ctx: &ApiContext, bucket_id: &str) -> ApiResult<Option<Stored>> {
    let cards = cached_cards(ctx, bucket_id).await?;
    let customer = cached_customer(ctx, bucket_id).await?;
    let id = default_card_id(customer.as_ref(), &cards);
    Ok(cards.into_iter().find(|c| Some(&c.id) == id.as_ref()))
}

/// Does the bucket have something Stripe can charge: a default card, or a SEPA
/// bank account? From the cache only (the subscribe route asks this first).
pub async fn has_default_payment_method(ctx: &ApiContext, bucket_id: &str) -> ApiResult<bool> {
    if default_card(ctx, bucket_id).await?.is_some() {
        return Ok(true);
    }
    let banks = ctx
        .db
        .bucket_objects_where(
            Kind::Source,
            bucket_id,
            "status = 'sepa_debit'",
            &Page::default(),
        )
        .await?;
    Ok(!banks.is_empty())
}

/// Make `card` the customer's default and store the customer Stripe answers.
async fn make_default(
    ctx: &ApiContext,
    customer: &str,
    card: &Value,
    idem: Option<String>,
) -> ApiResult<()> {
    let id = json::str(card, "id").unwrap_or_default();
    let target = if json::str(card, "object") == Some("payment_method") {
        DefaultCard::PaymentMethod(id)
    } else {
        // A PaymentMethod default would still win over default_source: clear it.
        let cached = ctx.db.object(Kind::Customer, customer).await?;
        let clear_pm = cached
            .as_ref()
            .and_then(|c| c.data.pointer("/invoice_settings/default_payment_method"))
            .is_some_and(|v| !v.is_null());
        DefaultCard::Source { id, clear_pm }
    };
    let answer = customers::set_default(&ctx.stripe, customer, target, idem).await?;
    store_answer(ctx, &answer, "setDefaultCard").await
}

/// Attach a card to the bucket's customer (created on first need) from a card
/// token (`tok_…`) or a card PaymentMethod (`pm_…`), mirror it (and the
/// customer, when it becomes the default), and return the card as the API shows it.
///
/// `idem` is the route's namespaced idempotency key (from
/// [`idempotency_key`]), or None; each Stripe write gets `{idem}:{step}`.
pub async fn attach_card(
    ctx: &ApiContext,
    bucket: &Bucket,
    token: &str,
    make_default_card: bool,
    idem: Option<&str>,
) -> ApiResult<Value> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "missing_token",
            "token is required (a Stripe card token tok_… or pm_…)",
        ));
    }
    if !valid_stripe_id(token, &["tok_", "pm_"]) {
        return Err(ApiError::bad_request(
            "invalid_token",
            "token must be a Stripe card token (tok_…) or a card PaymentMethod id (pm_…)",
        ));
    }
    let customer = ensure_customer(ctx, bucket).await?;
    let card = if token.starts_with("pm_") {
        let pm = stripe_cards::attach_payment_method(
            &ctx.stripe,
            &customer,
            token,
            step(idem, "attach"),
        )
        .await?;
        if json::str(&pm, "type") != Some("card") {
            // Not a card: undo the attach, and tell the caller.
            stripe_cards::detach_payment_method(
                &ctx.stripe,
                json::str(&pm, "id").unwrap_or(token),
                step(idem, "undo"),
            )
            .await?;
            return Err(ApiError::bad_request(
                "invalid_token",
                "this PaymentMethod is not a card",
            ));
        }
        pm
    } else {
        stripe_cards::attach_source(&ctx.stripe, &customer, token, step(idem, "attach")).await?
    };
    let card = owned_by(card, &customer);
    store_answer(ctx, &card, "attachCreditCard").await?;
    let last4 = card_view(&card)
        .get("last4")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    tracing::info!(bucket = %bucket.id, card = json::str(&card, "id").unwrap_or(""), %last4, "card attached");
    if make_default_card {
        make_default(ctx, &customer, &card, step(idem, "default")).await?;
    }
    Ok(card_view(&card))
}

/// After Stripe removed a card or source: store the customer as Stripe has it
/// now (it picks a new default on its own). localstripe answers the delete with
/// the customer; real Stripe answers the source, so the customer is re-read.
/// A failure here is logged, not answered: the delete itself succeeded, and the
/// reconciler will bring the customer up to date.
pub(crate) async fn refresh_customer(
    ctx: &ApiContext,
    customer: &str,
    delete_answer: Option<&Value>,
    route: &str,
) {
    let fresh = match delete_answer.filter(|a| json::str(a, "object") == Some("customer")) {
        Some(c) => Ok(c.clone()),
        None => customers::retrieve(&ctx.stripe, customer).await,
    };
    let stored = match fresh {
        Ok(c) => store_answer(ctx, &c, route).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = stored {
        tracing::warn!(customer, error = %e, "could not refresh the customer after a delete");
    }
}

fn address_of(body: &UpdateCard) -> ApiResult<CardAddress> {
    let field = |name: &str, v: &OptText| -> ApiResult<Option<String>> {
        match v.as_deref().map(str::trim) {
            Some(s) if s.len() > MAX_FIELD => Err(ApiError::bad_request(
                "invalid_address",
                format!("{name} is longer than {MAX_FIELD} characters"),
            )),
            Some(s) => Ok(Some(s.to_string())),
            None => Ok(None),
        }
    };
    let address = CardAddress {
        line1: field("address_line1", &body.address_line1)?,
        country: field("address_country", &body.address_country)?,
        zip: field("address_zip", &body.address_zip)?,
        city: field("address_city", &body.address_city)?,
    };
    if address.line1.is_none()
        && address.country.is_none()
        && address.zip.is_none()
        && address.city.is_none()
    {
        return Err(ApiError::bad_request(
            "nothing_to_update",
            "give at least one of address_line1, address_country, address_zip, address_city",
        ));
    }
    Ok(address)
}

pub struct CardsApi;

#[OpenApi(tag = "Tag::Payment")]
impl CardsApi {
    /// Add a card to the bucket's Stripe customer. The first card becomes the default.
    #[oai(
        path = "/api/bucket/:id/payment/cards",
        method = "post",
        operation_id = "attachCreditCard"
    )]
    async fn attach(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        body: Json<AttachCard>,
        /// Makes a retried request safe: the same key never attaches twice.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Reply<Json<CardData>, AttachCreditCard> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let token = body.0.token.map(|t| t.0).unwrap_or_default();
        let idem = idempotency_key(
            &access.bucket.id,
            "attachCreditCard",
            idempotency.as_deref(),
        );
        let first = default_card(&ctx, &access.bucket.id).await?.is_none();
        let card = attach_card(&ctx, &access.bucket, &token, first, idem.as_deref()).await?;
        ok(Json(CardData::of(card)))
    }

    /// The bucket's cards, the default first (404 when there are none).
    #[oai(
        path = "/api/bucket/:id/payment/cards",
        method = "get",
        operation_id = "fetchCreditCards"
    )]
    async fn list(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
    ) -> Reply<JsonText<CardList>, FetchCreditCards> {
        // Ready text: from memory, or the cards' stored views joined in one query.
        let Some(body) = auth.read_cards(&ctx, &id).await? else {
            return Err(ApiError::not_found("no_cards", "this bucket has no card").into());
        };
        ok(JsonText::new(body))
    }

    /// One card of the bucket.
    #[oai(
        path = "/api/bucket/:id/payment/card/:card_id",
        method = "get",
        operation_id = "fetchCreditCard"
    )]
    async fn get(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        card_id: Path<String>,
    ) -> Reply<Json<CardData>, FetchCreditCard> {
        let access = auth.read(&ctx, &id).await?;
        check_card_id(&card_id)?;
        let card = cached_card(&ctx, &access.bucket.id, &card_id).await?;
        ok(Json(CardData::of(card_view(&card.data))))
    }

    /// The bucket's default card (404 when it has none).
    #[oai(
        path = "/api/bucket/:id/payment/card",
        method = "get",
        operation_id = "fetchDefaultCreditCard"
    )]
    async fn get_default(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
    ) -> Reply<Json<CardData>, FetchDefaultCreditCard> {
        let access = auth.read(&ctx, &id).await?;
        match default_card(&ctx, &access.bucket.id).await? {
            Some(card) => ok(Json(CardData::of(card_view(&card.data)))),
            None => Err(
                ApiError::not_found("no_default_card", "this bucket has no default card").into(),
            ),
        }
    }

    /// Change a card's billing address.
    #[oai(
        path = "/api/bucket/:id/payment/card",
        method = "put",
        operation_id = "updateCreditCard"
    )]
    async fn update(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        body: Json<UpdateCard>,
        /// Makes a retried request safe.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Reply<Json<CardData>, UpdateCreditCard> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        let card_id = body.id.clone().map(|t| t.0).unwrap_or_default();
        if card_id.trim().is_empty() {
            return Err(ApiError::bad_request(
                "missing_card_id",
                "id (the card to update) is required",
            )
            .into());
        }
        check_card_id(&card_id)?;
        let address = address_of(&body)?;
        let card = cached_card(&ctx, &access.bucket.id, &card_id).await?;
        let customer = ensure_customer(&ctx, &access.bucket).await?;
        let idem = idempotency_key(
            &access.bucket.id,
            "updateCreditCard",
            idempotency.as_deref(),
        );
        let answer = if card.status.as_deref() == Some("payment_method") {
            stripe_cards::update_payment_method(&ctx.stripe, &card.id, &address, idem).await?
        } else {
            stripe_cards::update_card(&ctx.stripe, &customer, &card.id, &address, idem).await?
        };
        let answer = owned_by(answer, &customer);
        store_answer(&ctx, &answer, "updateCreditCard").await?;
        ok(Json(CardData::of(card_view(&answer))))
    }

    /// Remove a card. Refused (403) for the last card of a bucket with a live subscription.
    #[oai(
        path = "/api/bucket/:id/payment/card/:card_id",
        method = "delete",
        operation_id = "deleteCreditCard"
    )]
    async fn delete(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        card_id: Path<String>,
        /// Makes a retried request safe.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Reply<Json<Shaped<DeletedCard>>, DeleteCreditCard> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        check_card_id(&card_id)?;
        let bucket = &access.bucket.id;
        let card = cached_card(&ctx, bucket, &card_id).await?;
        let cards = cached_cards(&ctx, bucket).await?;
        if cards.len() <= 1 && has_live_subscription(&ctx, bucket).await? {
            return Err(ApiError::forbidden(
                "last_card",
                "this is the bucket's last card and the bucket has a live subscription: add another card first",
            )
            .into());
        }
        let customer = ensure_customer(&ctx, &access.bucket).await?;
        let idem = idempotency_key(bucket, "deleteCreditCard", idempotency.as_deref());
        let result = if card.status.as_deref() == Some("payment_method") {
            stripe_cards::detach_payment_method(&ctx.stripe, &card.id, idem).await
        } else {
            stripe_cards::delete_source(&ctx.stripe, &customer, &card.id, idem).await
        };
        let answer = stripe_cards::already_gone_is_ok(result)?;
        store_deleted(&ctx, &card.data, "deleteCreditCard").await?;
        refresh_customer(&ctx, &customer, answer.as_ref(), "deleteCreditCard").await;
        let mut view = card_view(&card.data);
        view["deleted"] = Value::Bool(true);
        ok(Json(Shaped::new(view)))
    }

    /// Make a card the bucket's default.
    #[oai(
        path = "/api/bucket/:id/payment/card/:card_id/default",
        method = "post",
        operation_id = "setDefaultCard"
    )]
    async fn set_default(
        &self,
        ctx: Data<&ApiContext>,
        auth: UserAuth,
        id: Path<String>,
        card_id: Path<String>,
        /// Makes a retried request safe.
        #[oai(name = "Idempotency-Key")]
        idempotency: Header<Option<String>>,
    ) -> Reply<Json<CardData>, SetDefaultCard> {
        let access = auth.write(&ctx, &id).await?;
        check_idempotency_key(idempotency.as_deref())?;
        check_card_id(&card_id)?;
        let card = cached_card(&ctx, &access.bucket.id, &card_id).await?;
        let customer = ensure_customer(&ctx, &access.bucket).await?;
        let idem = idempotency_key(&access.bucket.id, "setDefaultCard", idempotency.as_deref());
        make_default(&ctx, &customer, &card.data, idem).await?;
        ok(Json(CardData::of(card_view(&card.data))))
    }
}

/// Does the cache know of a live subscription of the bucket?
async fn has_live_subscription(ctx: &ApiContext, bucket_id: &str) -> ApiResult<bool> {
    let live = LIVE
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let subs = ctx
        .db
        .bucket_objects_where(
            Kind::Subscription,
            bucket_id,
            &format!("status IN ({live})"),
            &Page {
                limit: Some(1),
                starting_after: None,
            },
        )
        .await?;
    Ok(!subs.is_empty())
}
