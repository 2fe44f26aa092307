//! What the hottest read answers, computed once when a row is written.
//!
//! `GET …/payment/cards` is paysync's most frequent request. Parsing each
//! stored card and the customer back into JSON values, reshaping the cards and
//! serializing the answer cost more than the query itself (a quarter of the
//! server's CPU under load), and the result is the same until the row changes.
//! So every write of a source or customer row also stores, in its `view`
//! column, the text the read needs:
//!
//! - a source: the card as the API shows it ([`card_view`]), or `null` when
//!   the source is not a card (SEPA debit, a non-card PaymentMethod), or
//!   [`SAME_AS_DATA`] when Stripe's object already is the card as shown (most
//!   card objects: storing it twice would double the table the read scans);
//! - a customer: its default card ids, `[default_payment_method, default_source]`.
//!
//! Other kinds store no view. A row written before the column existed (or by
//! an older replica during a rolling deploy) has a NULL view; readers then
//! compute it from `data` with the same functions, so no backfill is needed.

use serde_json::Value;
use sqlx::AssertSqlSafe;

use super::Db;
use super::objects::Kind;
use crate::stripe::json;

/// Fill in the views of rows stored without one (before this column existed,
/// or by an older replica), so their reads stop parsing `data`. Run once in
/// the background at start; a row that changed meanwhile is left to its
/// writer. Returns how many rows got a view.
pub async fn fill_missing(db: &Db) -> sqlx::Result<u64> {
    let mut filled = 0;
    for kind in [Kind::Source, Kind::Customer] {
        let table = kind.table();
        let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, status, data FROM {table} WHERE view IS NULL"
        )))
        .fetch_all(&db.pool)
        .await?;
        for chunk in rows.chunks(500) {
            let mut tx = db.pool.begin().await?;
            for (id, status, data) in chunk {
                let Ok(value) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                let view = view_of(kind, status.as_deref(), &value);
                filled += sqlx::query(AssertSqlSafe(format!(
                    "UPDATE {table} SET view = $1 WHERE id = $2 AND view IS NULL AND data = $3"
                )))
                .bind(view)
                .bind(id)
                .bind(data)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        }
    }
    Ok(filled)
}

/// The `view` of a source row whose `data` is already the card as the API shows it.
pub const SAME_AS_DATA: &str = "";

/// The `view` column of a row of `kind` holding `data` (`status` as stored).
pub fn view_of(kind: Kind, status: Option<&str>, data: &Value) -> Option<String> {
    match kind {
        Kind::Source => {
            let view = source_view(status, data);
            Some(if &view == data {
                SAME_AS_DATA.to_string()
            } else {
                view.to_string()
            })
        }
        Kind::Customer => {
            let (pm, source) = default_ids(data);
            Some(serde_json::json!([pm, source]).to_string())
        }
        _ => None,
    }
}

/// A source row's view: the card as the API shows it, or `null` when the row is not a card.
pub fn source_view(status: Option<&str>, data: &Value) -> Value {
    if is_card(status, data) {
        card_view(data)
    } else {
        Value::Null
    }
}

/// Is a source row a card? A card object, or a PaymentMethod of type card.
pub fn is_card(status: Option<&str>, data: &Value) -> bool {
    match status {
        Some("card") => true,
        Some("payment_method") => json::str(data, "type") == Some("card"),
        _ => false,
    }
}

/// A customer's default card candidates: `invoice_settings.default_payment_method`
/// (what Stripe charges first), then `default_source`.
pub fn default_ids(customer: &Value) -> (Option<&str>, Option<&str>) {
    let pm = customer
        .pointer("/invoice_settings/default_payment_method")
        .and_then(|v| match v {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("id").and_then(Value::as_str),
            _ => None,
        });
    (pm, json::id(customer, "default_source"))
}

/// The default card among a bucket's cards: the first of `candidates` (from
/// [`default_ids`]) that `is_one_of_the_cards`.
pub fn pick_default(
    candidates: [Option<&str>; 2],
    is_one_of_the_cards: impl Fn(&str) -> bool,
) -> Option<&str> {
    candidates
        .into_iter()
        .flatten()
        .find(|id| is_one_of_the_cards(id))
}

/// The cards list answer, `{"data":[…]}` with the default card first then
/// newest first, or None when the bucket has no card.
pub fn cards_answer(found: super::reads::BucketCards) -> super::cards_cache::Answer {
    let mut cards = found.cards;
    if cards.is_empty() {
        return None;
    }
    let (pm, source) = &found.defaults;
    let default = pick_default([pm.as_deref(), source.as_deref()], |id| {
        cards.iter().any(|card| card.id == id)
    });
    if let Some(default) = default {
        // Stable: the others keep their newest-first order.
        cards.sort_by_key(|c| c.id != default);
    }
    let mut body =
        String::with_capacity(12 + cards.iter().map(|c| c.json.len() + 1).sum::<usize>());
    body.push_str("{\"data\":[");
    for (i, card) in cards.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&card.json);
    }
    body.push_str("]}");
    Some(body.into())
}

/// A customer row's stored view back as (default payment method, default source).
pub fn parse_default_ids(view: &str) -> (Option<String>, Option<String>) {
    serde_json::from_str(view).unwrap_or((None, None))
}

/// A card as the API shows it: a Stripe card object. `exp_month`/`exp_year`
/// are numbers even when Stripe (or a stand-in) sent strings; a card
/// PaymentMethod is reshaped into the card object's fields.
pub fn card_view(obj: &Value) -> Value {
    let mut card = if json::str(obj, "object") == Some("payment_method") {
        pm_as_card(obj)
    } else {
        obj.clone()
    };
    for key in ["exp_month", "exp_year"] {
        if let Some(n) = json::int(&card, key) {
            card[key] = Value::from(n);
        }
    }
    card
}

fn pm_as_card(pm: &Value) -> Value {
    let c = pm.get("card").cloned().unwrap_or(Value::Null);
    let addr = pm
        .pointer("/billing_details/address")
        .cloned()
        .unwrap_or(Value::Null);
    let brand = match json::str(&c, "brand").unwrap_or("unknown") {
        "visa" => "Visa",
        "mastercard" => "MasterCard",
        "amex" => "American Express",
        "discover" => "Discover",
        "jcb" => "JCB",
        "diners" => "Diners Club",
        "unionpay" => "UnionPay",
        _ => "Unknown",
    };
    serde_json::json!({
        "id": pm.get("id"),
        "object": "card",
        "payment_method": true,
        "brand": brand,
        "last4": c.get("last4"),
        "exp_month": c.get("exp_month"),
        "exp_year": c.get("exp_year"),
        "country": c.get("country"),
        "funding": c.get("funding"),
        "fingerprint": c.get("fingerprint"),
        "name": pm.pointer("/billing_details/name"),
        "address_line1": addr.get("line1"),
        "address_line2": addr.get("line2"),
        "address_city": addr.get("city"),
        "address_state": addr.get("state"),
        "address_zip": addr.get("postal_code"),
        "address_country": addr.get("country"),
        "customer": pm.get("customer"),
        "created": pm.get("created"),
        "metadata": pm.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
        "livemode": pm.get("livemode"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_source_view_is_the_card_or_null() {
        let card = json!({"id": "card_1", "object": "card", "exp_month": "4", "exp_year": 2031});
        let view = view_of(Kind::Source, Some("card"), &card).unwrap();
        let view: Value = serde_json::from_str(&view).unwrap();
        assert_eq!(view["exp_month"], json!(4));
        let shown = json!({"id": "card_1", "object": "card", "exp_month": 4, "exp_year": 2031});
        assert_eq!(
            view_of(Kind::Source, Some("card"), &shown).as_deref(),
            Some(SAME_AS_DATA)
        );
        let sepa = json!({"id": "src_1", "object": "source", "type": "sepa_debit"});
        assert_eq!(
            view_of(Kind::Source, Some("sepa_debit"), &sepa).as_deref(),
            Some("null")
        );
        let pm = json!({"id": "pm_1", "object": "payment_method", "type": "sepa_debit"});
        assert_eq!(
            view_of(Kind::Source, Some("payment_method"), &pm).as_deref(),
            Some("null")
        );
    }

    #[test]
    fn a_customer_view_round_trips_its_default_ids() {
        let c = json!({"id": "cus_1", "default_source": "card_2",
            "invoice_settings": {"default_payment_method": {"id": "pm_3"}}});
        let view = view_of(Kind::Customer, None, &c).unwrap();
        assert_eq!(
            parse_default_ids(&view),
            (Some("pm_3".into()), Some("card_2".into()))
        );
        let none = view_of(Kind::Customer, None, &json!({"id": "cus_2"})).unwrap();
        assert_eq!(parse_default_ids(&none), (None, None));
        assert_eq!(view_of(Kind::Invoice, None, &c), None);
    }
}
