//! A fast Stripe stand-in, for benchmarks only: it serves generated list
//! pages and objects for `customers` customers (`cus_bench000000`…), each
//! with 3 cards, 1 subscription, 2 invoices and 2 charges, all with fixed
//! `created` times so a second full reconcile finds nothing changed. It is
//! not a model of Stripe's behaviour (localstripe is, for the tests); it only
//! answers the reads the full reconcile makes, as fast as it can.

use std::net::SocketAddr;

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Route, Server, handler};
use serde_json::{Value, json};

use crate::seed::{bucket_id, customer_id};

/// The `created` of customer `i`'s objects (fixed, so listings never change).
const BASE: i64 = 1_700_000_000;

pub const CARDS: usize = 3;
pub const SUBSCRIPTIONS: usize = 1;
pub const INVOICES: usize = 2;
pub const CHARGES: usize = 2;

/// Start serving on 127.0.0.1 (a free port); returns the base URL (no `/v1`).
pub async fn start(customers: usize) -> anyhow::Result<String> {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let app = Route::new().at("/*path", serve.data(Customers(customers)));
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok(format!("http://{addr}"))
}

use poem::EndpointExt;

#[derive(Clone, Copy)]
struct Customers(usize);

#[handler]
fn serve(req: &Request, n: poem::web::Data<&Customers>) -> Response {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    match answer(path, query, n.0.0) {
        Some(v) => Response::builder()
            .content_type("application/json")
            .body(v.to_string()),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("application/json")
            .body(
                json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                 "message": format!("No such object: {path}")}})
                .to_string(),
            ),
    }
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// `cus_bench000042` → 42, when below the number of customers.
fn index(id: &str, prefix: &str, n: usize) -> Option<usize> {
    let digits = id.strip_prefix(prefix)?.get(..6)?;
    let i: usize = digits.parse().ok()?;
    (i < n).then_some(i)
}

fn list(url: &str, data: Vec<Value>) -> Value {
    json!({"object": "list", "url": url, "has_more": false, "data": data})
}

fn answer(path: &str, query: &str, n: usize) -> Option<Value> {
    let rest = path.strip_prefix("/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let of_customer = || index(param(query, "customer")?, "cus_bench", n);
    match parts.as_slice() {
        ["customers", id] => {
            let i = index(id, "cus_bench", n)?;
            Some(customer(i))
        }
        ["customers", id, "sources"] => {
            let i = index(id, "cus_bench", n)?;
            Some(list(&format!("/v1/customers/{id}/sources"), cards(i)))
        }
        ["payment_methods"] => {
            of_customer()?;
            Some(list("/v1/payment_methods", vec![]))
        }
        ["subscriptions"] => Some(list(
            "/v1/subscriptions",
            vec![subscription(of_customer()?)],
        )),
        ["invoices"] => {
            let i = of_customer()?;
            Some(list(
                "/v1/invoices",
                (0..INVOICES).rev().map(|k| invoice(i, k)).collect(),
            ))
        }
        ["charges"] => {
            let i = of_customer()?;
            Some(list(
                "/v1/charges",
                (0..CHARGES).rev().map(|k| charge(i, k)).collect(),
            ))
        }
        ["subscriptions", id] => Some(subscription(index(id, "sub_bench", n)?)),
        ["invoices", id] => {
            let i = index(id, "in_bench", n)?;
            Some(invoice(i, id.rsplit('_').next()?.parse().ok()?))
        }
        ["charges", id] => {
            let i = index(id, "ch_bench", n)?;
            Some(charge(i, id.rsplit('_').next()?.parse().ok()?))
        }
        // The catch-up job of a running server asks for events: there are none.
        ["events"] => Some(list("/v1/events", vec![])),
        _ => None,
    }
}

fn created(i: usize) -> i64 {
    BASE + i as i64
}

pub fn card(i: usize, k: usize, customer: &str, created: i64) -> Value {
    json!({
        "id": format!("card_bench{i:06}_{k}"),
        "object": "card",
        "address_city": "Paris", "address_country": "FR", "address_line1": "1 rue de Rivoli",
        "address_line1_check": "pass", "address_line2": null, "address_state": null,
        "address_zip": "75001", "address_zip_check": "pass",
        "brand": "Visa", "country": "US", "customer": customer, "cvc_check": "pass",
        "dynamic_last4": null, "exp_month": 1 + (k % 12), "exp_year": 2030 + k,
        "fingerprint": format!("fp{i:06}{k}"), "funding": "credit",
        "last4": format!("{:04}", 4242 + k), "metadata": {}, "name": "Bench Card",
        "tokenization_method": null, "wallet": null, "created": created,
    })
}

fn cards(i: usize) -> Vec<Value> {
    let cus = customer_id(i);
    (0..CARDS).map(|k| card(i, k, &cus, created(i))).collect()
}

pub fn customer_object(i: usize, created: i64, sources: Option<Vec<Value>>) -> Value {
    let cus = customer_id(i);
    let mut c = json!({
        "id": cus, "object": "customer", "address": null, "balance": 0, "created": created,
        "currency": "usd", "default_source": format!("card_bench{i:06}_0"), "delinquent": false,
        "description": null, "discount": null, "email": format!("billing+{i}@example.com"),
        "invoice_prefix": format!("B{i:06}"),
        "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null},
        "livemode": false,
        "metadata": {"bucket_id": bucket_id(i), "company_name": format!("Bench {i}")},
        "name": format!("Bench {i}"), "phone": null, "preferred_locales": [],
        "shipping": null, "tax_exempt": "none",
    });
    if let Some(sources) = sources {
        c["sources"] = list(&format!("/v1/customers/{cus}/sources"), sources);
    }
    c
}

fn customer(i: usize) -> Value {
    customer_object(i, created(i), Some(cards(i)))
}

fn subscription(i: usize) -> Value {
    let cus = customer_id(i);
    json!({
        "id": format!("sub_bench{i:06}"), "object": "subscription",
        "billing_cycle_anchor": created(i), "cancel_at": null, "cancel_at_period_end": false,
        "canceled_at": null, "collection_method": "charge_automatically", "created": created(i),
        "current_period_end": created(i) + 2_592_000, "current_period_start": created(i),
        "customer": cus, "default_payment_method": null, "discount": null, "ended_at": null,
        "items": {"object": "list", "has_more": false, "data": [{
            "id": format!("si_bench{i:06}"), "object": "subscription_item", "created": created(i),
            "plan": {"id": "paysync_starter_monthly", "object": "plan", "active": true, "amount": 1900,
                     "currency": "usd", "interval": "month", "interval_count": 1, "product": "prod_starter"},
            "quantity": 1, "subscription": format!("sub_bench{i:06}")}]},
        "latest_invoice": format!("in_bench{i:06}_1"), "livemode": false, "metadata": {},
        "plan": {"id": "paysync_starter_monthly", "object": "plan", "amount": 1900, "currency": "usd",
                 "interval": "month", "product": "prod_starter"},
        "quantity": 1, "start_date": created(i), "status": "active", "trial_end": null, "trial_start": null,
    })
}

fn invoice(i: usize, k: usize) -> Value {
    let cus = customer_id(i);
    let t = created(i) + k as i64 * 2_592_000;
    json!({
        "id": format!("in_bench{i:06}_{k}"), "object": "invoice", "account_country": "US",
        "amount_due": 1900, "amount_paid": 1900, "amount_remaining": 0, "attempt_count": 1,
        "attempted": true, "billing_reason": if k == 0 { "subscription_create" } else { "subscription_cycle" },
        "charge": format!("ch_bench{i:06}_{k}"), "collection_method": "charge_automatically",
        "created": t, "currency": "usd", "customer": cus, "customer_email": format!("billing+{i}@example.com"),
        "hosted_invoice_url": format!("https://invoice.example.com/i/{i}/{k}"),
        "invoice_pdf": format!("https://invoice.example.com/i/{i}/{k}/pdf"),
        "lines": {"object": "list", "has_more": false, "data": [{
            "id": format!("il_bench{i:06}_{k}"), "object": "line_item", "amount": 1900, "currency": "usd",
            "description": "1 × Starter (at $19.00 / month)", "period": {"start": t, "end": t + 2_592_000},
            "plan": {"id": "paysync_starter_monthly", "object": "plan"}, "quantity": 1, "type": "subscription"}]},
        "livemode": false, "metadata": {}, "number": format!("B{i:06}-{k:04}"), "paid": true,
        "period_end": t, "period_start": t - 2_592_000, "status": "paid",
        "subscription": format!("sub_bench{i:06}"), "subtotal": 1900, "tax": null, "total": 1900,
    })
}

fn charge(i: usize, k: usize) -> Value {
    let cus = customer_id(i);
    let t = created(i) + k as i64 * 2_592_000;
    json!({
        "id": format!("ch_bench{i:06}_{k}"), "object": "charge", "amount": 1900, "amount_captured": 1900,
        "amount_refunded": 0, "balance_transaction": format!("txn_bench{i:06}_{k}"),
        "billing_details": {"address": {"city": "Paris", "country": "FR", "line1": "1 rue de Rivoli",
                            "postal_code": "75001"}, "email": null, "name": "Bench Card"},
        "captured": true, "created": t, "currency": "usd", "customer": cus, "description": null,
        "disputed": false, "failure_code": null, "failure_message": null,
        "invoice": format!("in_bench{i:06}_{k}"), "livemode": false, "metadata": {},
        "outcome": {"network_status": "approved_by_network", "risk_level": "normal", "seller_message": "Payment complete.", "type": "authorized"},
        "paid": true, "payment_method": format!("card_bench{i:06}_0"),
        "payment_method_details": {"card": {"brand": "visa", "country": "US", "exp_month": 1, "exp_year": 2030,
                                   "funding": "credit", "last4": "4242"}, "type": "card"},
        "receipt_url": format!("https://pay.example.com/receipts/{i}/{k}"), "refunded": false,
        "status": "succeeded",
    })
}
