//! Changes made straight in localstripe, as if in Stripe's dashboard or by its
//! billing cycle: the tests of webhook-free sync use these to change Stripe
//! behind paysync's back.

#![allow(dead_code)]

use serde_json::Value;

use crate::common::localstripe_url;

pub async fn stripe(method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
    let resp = reqwest::Client::new()
        .request(method, format!("{}/v1{path}", localstripe_url()))
        .basic_auth("sk_test_paysync", Some(""))
        .form(form)
        .send()
        .await
        .expect("localstripe answers");
    let status = resp.status();
    let body: Value = resp.json().await.expect("localstripe JSON");
    assert!(status.is_success(), "localstripe {path}: {status} {body}");
    body
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// A card token for a test card number.
pub async fn card_token(number: &str) -> String {
    let t = stripe(
        reqwest::Method::POST,
        "/tokens",
        &[
            ("card[number]", number),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2030"),
            ("card[cvc]", "123"),
        ],
    )
    .await;
    id(&t)
}

/// A customer made in Stripe for a bucket (`metadata.bucket_id`), as another tool would.
pub async fn customer_for(bucket: &str) -> String {
    let c = stripe(
        reqwest::Method::POST,
        "/customers",
        &[("metadata[bucket_id]", bucket), ("name", "made in stripe")],
    )
    .await;
    id(&c)
}

/// Make sure a plan with this id exists (products and plans survive between tests).
pub async fn ensure_plan(plan: &str, amount: &str) {
    let url = format!("{}/v1/plans/{plan}", localstripe_url());
    let found = reqwest::Client::new()
        .get(url)
        .basic_auth("sk_test_paysync", Some(""))
        .send()
        .await
        .expect("localstripe");
    if found.status().is_success() {
        return;
    }
    let product = format!("prod_{plan}");
    let _ = reqwest::Client::new()
        .post(format!("{}/v1/products", localstripe_url()))
        .basic_auth("sk_test_paysync", Some(""))
        .form(&[("id", product.as_str()), ("name", plan)])
        .send()
        .await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/plans", localstripe_url()))
        .basic_auth("sk_test_paysync", Some(""))
        .form(&[
            ("id", plan),
            ("amount", amount),
            ("currency", "usd"),
            ("interval", "month"),
            ("product", product.as_str()),
        ])
        .send()
        .await
        .expect("localstripe");
    // Another test may have created it meanwhile (localstripe answers 400 or
    // 409 to the second creation, depending on its version).
    assert!(
        resp.status().is_success() || [400, 409].contains(&resp.status().as_u16()),
        "create plan {plan}: {}",
        resp.status()
    );
}
