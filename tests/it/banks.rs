//! The SEPA bank account and metadata routes against localstripe, on both backends.

use paysync::store::Kind;
use paysync::store::buckets::Role;
use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::cards::attach;
use crate::common::*;
use crate::stripe_direct::*;

fn banks(bucket: &str) -> String {
    format!("/api/bucket/{bucket}/payment/banks")
}
fn meta(bucket: &str) -> String {
    format!("/api/bucket/{bucket}/payment")
}

async fn one_bank_account(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    assert_error(
        &call(app.get(&banks(&bucket), "alice")).await,
        404,
        "no_bank_account",
    );
    assert_error(
        &call(app.delete(&banks(&bucket), "alice")).await,
        404,
        "no_bank_account",
    );

    // Bad input is refused before Stripe is asked, with the reason.
    let post = |body: serde_json::Value| app.post(&banks(&bucket), "alice").json(&body);
    assert_error(
        &call(post(json!({"iban": "DE89370400440532013000", "name": "A"}))).await,
        400,
        "missing_type",
    );
    assert_error(
        &call(post(
            json!({"type": "ach", "iban": "DE89370400440532013000", "name": "A"}),
        ))
        .await,
        400,
        "unsupported_type",
    );
    assert_error(
        &call(post(json!({"type": "sepa", "name": "A"}))).await,
        400,
        "missing_iban",
    );
    assert_error(
        &call(post(
            json!({"type": "sepa", "iban": "DE89370400440532013000"}),
        ))
        .await,
        400,
        "missing_name",
    );
    let bad = call(post(
        json!({"type": "sepa", "iban": "DE89370400440532013001", "name": "A"}),
    ))
    .await;
    assert_error(&bad, 400, "invalid_iban");
    assert!(
        bad.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("check digits"),
        "{:?}",
        bad.1
    );
    let short = call(post(
        json!({"type": "sepa", "iban": "FR14 2004 1010 0505", "name": "A"}),
    ))
    .await;
    assert_error(&short, 400, "invalid_iban");
    assert!(
        short.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("27 characters"),
        "{:?}",
        short.1
    );
    assert!(
        app.ctx
            .db
            .bucket(&bucket)
            .await
            .unwrap()
            .unwrap()
            .stripe_customer_id
            .is_none(),
        "Stripe was not called"
    );

    // Attach, read back.
    let (status, first) = call(post(
        json!({"type": "sepa", "iban": "DE89 3704 0044 0532 0130 00", "name": "Alice"}),
    ))
    .await;
    assert_eq!(status, 200, "{first}");
    let first_id = first["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(first["data"]["type"], "sepa_debit");
    assert_eq!(first["data"]["sepa_debit"]["last4"], "3000");
    let (status, got) = call(app.get(&banks(&bucket), "alice")).await;
    assert_eq!(
        (status, got["data"]["id"].as_str()),
        (200, Some(first_id.as_str()))
    );

    // A second account replaces the first, in Stripe and in the cache.
    let (status, second) = call(post(
        json!({"type": "sepa", "iban": "FR1420041010050500013M02606", "name": "Alice"}),
    ))
    .await;
    assert_eq!(status, 200, "{second}");
    let second_id = second["data"]["id"].as_str().unwrap().to_string();
    let (_, got) = call(app.get(&banks(&bucket), "alice")).await;
    assert_eq!(got["data"]["id"], second_id.as_str());
    assert!(
        app.ctx
            .db
            .object(Kind::Source, &first_id)
            .await
            .unwrap()
            .unwrap()
            .deleted
    );
    let customer = app
        .ctx
        .db
        .bucket(&bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .unwrap();
    let in_stripe = stripe(
        Method::GET,
        &format!("/customers/{customer}?expand[]=sources"),
        &[],
    )
    .await;
    let sources: Vec<&str> = in_stripe["sources"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(sources, vec![second_id.as_str()]);

    // A bank account is not a card, and counts as a way to pay.
    assert_error(
        &call(app.get(&format!("/api/bucket/{bucket}/payment/cards"), "alice")).await,
        404,
        "no_cards",
    );
    assert!(
        paysync::api::cards::has_default_payment_method(&app.ctx, &bucket)
            .await
            .unwrap()
    );

    // Members may not change it; delete removes it.
    app.add_member(&bucket, "mallory", Role::Member).await;
    assert_eq!(call(app.get(&banks(&bucket), "mallory")).await.0, 200);
    assert_error(
        &call(app.delete(&banks(&bucket), "mallory")).await,
        403,
        "insufficient_role",
    );
    let (status, gone) = call(app.delete(&banks(&bucket), "alice")).await;
    assert_eq!(
        (status, gone["id"].as_str(), gone["deleted"].as_bool()),
        (200, Some(second_id.as_str()), Some(true)),
        "{gone}"
    );
    assert_error(
        &call(app.get(&banks(&bucket), "alice")).await,
        404,
        "no_bank_account",
    );
    assert!(
        !paysync::api::cards::has_default_payment_method(&app.ctx, &bucket)
            .await
            .unwrap()
    );
    attach(&app, &bucket, "alice", "4242424242424242").await;
    assert!(
        paysync::api::cards::has_default_payment_method(&app.ctx, &bucket)
            .await
            .unwrap()
    );
}

async fn metadata(b: Backend) {
    let app = TestApp::start(b).await;
    let bucket = app.bucket("alice").await;
    let (status, empty) = call(app.get(&meta(&bucket), "alice")).await;
    assert_eq!((status, empty.clone()), (200, json!({})));

    let put = |body: serde_json::Value| app.put(&meta(&bucket), "alice").json(&body);
    let (status, body) = call(put(json!({"metadata": {
        "vat_number": "FR40303265045", "company_name": "Acme", "receipt_email": "billing@acme.test"
    }})))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["vat_number"], "FR40303265045");
    let (_, got) = call(app.get(&meta(&bucket), "alice")).await;
    assert_eq!(
        (got["company_name"].as_str(), got["receipt_email"].as_str()),
        (Some("Acme"), Some("billing@acme.test"))
    );
    let customer = app
        .ctx
        .db
        .bucket(&bucket)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
        .unwrap();
    let in_stripe = stripe(Method::GET, &format!("/customers/{customer}"), &[]).await;
    assert_eq!(in_stripe["metadata"]["vat_number"], "FR40303265045");

    // An empty string removes a key; the others stay.
    let (status, body) = call(put(json!({"metadata": {"vat_number": ""}}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"].get("vat_number").is_none(), "{body}");
    let (_, got) = call(app.get(&meta(&bucket), "alice")).await;
    assert!(got.get("vat_number").is_none(), "{got}");
    assert_eq!(got["company_name"], "Acme");

    // Refused: unknown keys, a bad e-mail, no key at all, no metadata; nothing changes.
    assert_eq!(
        call(put(json!({"metadata": {"plan": "enterprise"}})))
            .await
            .0,
        400
    );
    assert_error(
        &call(put(json!({"metadata": {"receipt_email": "not-an-email"}}))).await,
        400,
        "invalid_email",
    );
    assert_error(
        &call(put(json!({"metadata": {}}))).await,
        400,
        "missing_metadata",
    );
    assert_error(&call(put(json!({}))).await, 400, "missing_metadata");
    assert_eq!(
        call(put(json!({"metadata": "company_name=x"}))).await.0,
        400
    );
    let (_, after) = call(app.get(&meta(&bucket), "alice")).await;
    assert_eq!(after, got);

    app.add_member(&bucket, "mallory", Role::Member).await;
    assert_eq!(call(app.get(&meta(&bucket), "mallory")).await.0, 200);
    let denied = call(
        app.put(&meta(&bucket), "mallory")
            .json(&json!({"metadata": {"company_name": "X"}})),
    )
    .await;
    assert_error(&denied, 403, "insufficient_role");
    assert_error(
        &call(app.get(&meta(&bucket), "eve")).await,
        404,
        "bucket_not_found",
    );
}

both!(one_bank_account, metadata);
