//! The spec is a contract: the statuses each operation documents are exactly
//! the ones it answers. A running server (against localstripe) is made to
//! answer every status of every operation the spec lists; the test fails on a
//! documented status no request brought about, on an answer whose status the
//! spec does not list for its route, and on a 200 whose body does not fit
//! the schema the spec gives it. The spec itself is also checked: every 200
//! has a description and an example that fits its schema.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use paysync::store::buckets::{Role, new_id};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::both;
use crate::common::*;
use crate::stripe_direct::card_token;
use crate::subscriptions::{authenticate, plans};

/// One operation of the spec.
struct Op {
    id: String,
    method: Method,
    /// The path template (`/api/bucket/{id}/payment/card/{card_id}`).
    path: String,
    statuses: BTreeSet<u16>,
    has_body: bool,
}

fn spec() -> Value {
    serde_json::from_str(&paysync::api::spec_json()).expect("the spec is JSON")
}

fn operations(spec: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push(Op {
                id: op["operationId"].as_str().expect("operationId").to_string(),
                method: method.to_uppercase().parse().expect("method"),
                path: path.clone(),
                statuses: op["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .map(|s| s.parse().expect("a status code"))
                    .collect(),
                has_body: op.get("requestBody").is_some(),
            });
        }
    }
    ops
}

/// The JSON schema of an operation's answer with this status.
fn answer_schema<'a>(spec: &'a Value, op_id: &str, status: u16) -> Option<&'a Value> {
    spec["paths"]
        .as_object()?
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|m| m.values()))
        .find(|op| op["operationId"] == op_id)?
        .get("responses")?
        .get(status.to_string())?
        .get("content")?
        .as_object()?
        .values()
        .next()?
        .get("schema")
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &spec["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Does `v` fit `schema` (the OpenAPI 3.0 subset paysync's spec uses)? The
/// first mismatch, with its JSON path.
fn fits(spec: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    if v.is_null() {
        return if schema["nullable"] == true || schema.as_object().is_some_and(|o| o.is_empty()) {
            Ok(())
        } else {
            Err(format!("{at}: null where the schema does not allow it"))
        };
    }
    if let Some(any) = schema["anyOf"].as_array()
        && !any.iter().any(|s| fits(spec, s, v, at).is_ok())
    {
        return Err(format!("{at}: fits none of anyOf"));
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        fits(spec, s, v, at)?;
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("array") => {
            let Some(items) = v.as_array() else {
                return Err(format!("{at}: not an array: {v}"));
            };
            for (i, item) in items.iter().enumerate() {
                fits(spec, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
            true
        }
        Some("object") => {
            let Some(obj) = v.as_object() else {
                return Err(format!("{at}: not an object: {v}"));
            };
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap_or_default();
                if !obj.contains_key(key) {
                    return Err(format!("{at}: required {key} is missing"));
                }
            }
            for (key, value) in obj {
                let at = format!("{at}.{key}");
                match schema["properties"].get(key) {
                    Some(property) => fits(spec, property, value, &at)?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => return Err(format!("{at}: not allowed")),
                        Some(extra) if extra.is_object() => fits(spec, extra, value, &at)?,
                        _ => {}
                    },
                }
            }
            true
        }
        Some(other) => return Err(format!("{at}: unknown schema type {other}")),
    };
    if !ok {
        return Err(format!("{at}: {v} is not a {}", schema["type"]));
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {values:?}"));
    }
    Ok(())
}

#[test]
fn every_success_is_described_with_an_example_that_fits() {
    let spec = spec();
    for op in operations(&spec) {
        for status in op.statuses.iter().filter(|s| (200..300).contains(*s)) {
            let response = spec["paths"][&op.path][op.method.as_str().to_lowercase()]["responses"]
                [status.to_string()]
            .clone();
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{}: the {status} has no description",
                op.id
            );
            let schema = answer_schema(&spec, &op.id, *status).expect("a JSON answer");
            let example = &resolve(&spec, schema)["example"];
            assert!(!example.is_null(), "{}: the {status} has no example", op.id);
            if let Err(e) = fits(&spec, schema, example, "example") {
                panic!(
                    "{}: the {status} example does not fit its schema: {e}",
                    op.id
                );
            }
        }
    }
}

#[test]
fn the_schema_check_catches_mismatches() {
    // The checker the tests rely on refuses what it should.
    let spec = spec();
    let card = json!({"$ref": "#/components/schemas/Card"});
    let mut good = resolve(&spec, &card)["example"].clone();
    assert_eq!(fits(&spec, &card, &good, "card"), Ok(()));
    good["extra_field_stripe_added"] = json!({"any": "thing"});
    assert_eq!(fits(&spec, &card, &good, "card"), Ok(()));
    for (field, bad) in [
        ("last4", json!(4242)),
        ("exp_month", json!("12")),
        ("last4", Value::Null),
        ("metadata", json!({"k": 1})),
    ] {
        let mut v = good.clone();
        v[field] = bad;
        assert!(fits(&spec, &card, &v, "card").is_err(), "{field}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("brand");
    assert!(fits(&spec, &card, &missing, "card").is_err());
}

/// Sends requests, records every (operation, status) answered, checks each
/// status is documented for its operation and each success fits its schema.
struct Run<'a> {
    app: &'a TestApp,
    spec: Value,
    ops: Vec<Op>,
    seen: Mutex<BTreeMap<String, BTreeSet<u16>>>,
}

/// Who calls.
#[derive(Clone, Copy)]
enum As<'a> {
    User(&'a str),
    Admin,
    Nobody,
}

/// The ids the routes that need one get when the id does not matter.
const CARD: &str = "card_contract";
const INTENT: &str = "pi_contract";
const EVENT: &str = "evt_contract";

impl<'a> Run<'a> {
    fn new(app: &'a TestApp) -> Self {
        let spec = spec();
        let ops = operations(&spec);
        Run {
            app,
            spec,
            ops,
            seen: Mutex::default(),
        }
    }

    fn op(&self, id: &str) -> &Op {
        self.ops
            .iter()
            .find(|o| o.id == id)
            .unwrap_or_else(|| panic!("the spec has no operation {id}"))
    }

    /// A request of `op` to `app` as `who`, with these path parameters.
    fn request_to(
        &self,
        app: &TestApp,
        op: &str,
        who: As,
        params: &[(&str, &str)],
    ) -> RequestBuilder {
        let op = self.op(op);
        let mut path = op.path.clone();
        for (name, value) in params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !path.contains('{'),
            "{}: a parameter of {path} is missing",
            op.id
        );
        let req = app
            .http
            .request(op.method.clone(), format!("{}{path}", app.url));
        match who {
            As::User(user) => req.bearer_auth(app.token(user)),
            As::Admin => req.bearer_auth(ADMIN_TOKEN),
            As::Nobody => req,
        }
    }

    fn request(&self, op: &str, who: As, params: &[(&str, &str)]) -> RequestBuilder {
        self.request_to(self.app, op, who, params)
    }

    /// A request of `op` on `bucket` that passes parsing ([`body_of`]); the
    /// handler may still refuse it.
    fn plain(&self, op: &str, who: As, bucket: &str) -> RequestBuilder {
        let req = self.request(op, who, &params(bucket));
        match self.op(op).has_body {
            true => req.json(&body_of(op)),
            false => req,
        }
    }

    /// Send; the answer must have status `want`, documented for `op`.
    async fn expect(&self, op: &str, want: u16, req: RequestBuilder) -> Value {
        let (status, body) = call(req).await;
        self.seen
            .lock()
            .unwrap()
            .entry(op.to_string())
            .or_default()
            .insert(status);
        assert!(
            self.op(op).statuses.contains(&status),
            "{op} answered {status}, which its spec does not list: {body}"
        );
        assert_eq!(status, want, "{op}: {body}");
        if (200..300).contains(&status) {
            let schema = answer_schema(&self.spec, op, status).expect("a JSON answer");
            if let Err(e) = fits(&self.spec, schema, &body, "answer") {
                panic!("{op}: the {status} answer does not fit the spec: {e}\n{body}");
            }
        }
        body
    }

    /// Every documented status of every operation was answered.
    fn all_seen(&self) {
        let seen = self.seen.lock().unwrap();
        let mut missing = Vec::new();
        for op in &self.ops {
            let got = seen.get(&op.id).cloned().unwrap_or_default();
            for status in op.statuses.difference(&got) {
                missing.push(format!("{} {status}", op.id));
            }
        }
        assert!(
            missing.is_empty(),
            "documented, but no request brought it about: {missing:?}"
        );
    }
}

/// Every path parameter, on `bucket`: a route takes those it names.
fn params(bucket: &str) -> [(&'static str, &str); 4] {
    [
        ("id", bucket),
        ("card_id", CARD),
        ("paymentIntent", INTENT),
        ("event_id", EVENT),
    ]
}

/// A body of `op` that passes its parsing (the handler may still refuse it).
fn body_of(op: &str) -> Value {
    match op {
        "attachCreditCard" => json!({"token": "tok_contract"}),
        "updateCreditCard" => json!({"id": CARD, "address_city": "Paris"}),
        "updateMetadata" => json!({"metadata": {"company_name": "Acme"}}),
        "attachBankAccount" => {
            json!({"type": "sepa", "iban": "DE89370400440532013000", "name": "Jane Doe"})
        }
        "subscribe" | "paymentIntentSucceed" | "startTrial" => json!({"plan": "starter"}),
        "adminCreateBucket" | "adminPutBucket" => json!({"name": "Contract", "members": []}),
        other => panic!("no body known for {other}"),
    }
}

/// A billing page's path through the API on one bucket, with the refusals
/// the seed documents for each route on the way.
async fn billing_story(run: &Run<'_>, bucket: &str) {
    let alice = As::User("alice");
    let on = |op: &str, params: &[(&str, &str)]| {
        let mut all = vec![("id", bucket)];
        all.extend_from_slice(params);
        run.request(op, alice, &all)
    };
    run.expect("listBuckets", 200, run.request("listBuckets", alice, &[]))
        .await;
    run.expect("getBucket", 200, on("getBucket", &[])).await;
    run.expect("fetchMetadata", 200, on("fetchMetadata", &[]))
        .await;
    for op in [
        "fetchCreditCards",
        "fetchDefaultCreditCard",
        "fetchBankAccount",
        "getSubcription",
        "getSubcriptionState",
        "getInvoices",
        "getReceipts",
    ] {
        run.expect(op, 404, on(op, &[])).await;
    }

    // Cards.
    let attach = |token: String| on("attachCreditCard", &[]).json(&json!({"token": token}));
    let first = run
        .expect(
            "attachCreditCard",
            200,
            attach(card_token("4242424242424242").await),
        )
        .await;
    let second = run
        .expect(
            "attachCreditCard",
            200,
            attach(card_token("5555555555554444").await),
        )
        .await;
    let (first, second) = (
        first["data"]["id"].as_str().expect("card id").to_string(),
        second["data"]["id"].as_str().expect("card id").to_string(),
    );
    run.expect("attachCreditCard", 400, attach(String::new()))
        .await;
    run.expect(
        "attachCreditCard",
        402,
        attach(card_token("4000000000000002").await),
    )
    .await;
    run.expect("fetchCreditCards", 200, on("fetchCreditCards", &[]))
        .await;
    run.expect(
        "fetchDefaultCreditCard",
        200,
        on("fetchDefaultCreditCard", &[]),
    )
    .await;
    for (card, status) in [(first.as_str(), 200), ("nope", 400), ("card_unknown", 404)] {
        run.expect(
            "fetchCreditCard",
            status,
            on("fetchCreditCard", &[("card_id", card)]),
        )
        .await;
    }
    let update = |body: Value| on("updateCreditCard", &[]).json(&body);
    run.expect(
        "updateCreditCard",
        200,
        update(json!({"id": first, "address_city": "Paris", "address_country": "FR"})),
    )
    .await;
    run.expect("updateCreditCard", 400, update(json!({}))).await;
    run.expect(
        "updateCreditCard",
        404,
        update(json!({"id": "card_unknown", "address_city": "Paris"})),
    )
    .await;
    for (card, status) in [(second.as_str(), 200), ("nope", 400)] {
        run.expect(
            "setDefaultCard",
            status,
            on("setDefaultCard", &[("card_id", card)]),
        )
        .await;
    }
    for (card, status) in [
        (second.as_str(), 200),
        ("nope", 400),
        (second.as_str(), 404),
    ] {
        run.expect(
            "deleteCreditCard",
            status,
            on("deleteCreditCard", &[("card_id", card)]),
        )
        .await;
    }

    // Metadata and the SEPA account.
    let metadata = |m: Value| on("updateMetadata", &[]).json(&json!({"metadata": m}));
    run.expect(
        "updateMetadata",
        200,
        metadata(json!({"company_name": "Acme", "receipt_email": "billing@acme.test"})),
    )
    .await;
    run.expect(
        "updateMetadata",
        400,
        metadata(json!({"receipt_email": "not an address"})),
    )
    .await;
    let meta = run
        .expect("fetchMetadata", 200, on("fetchMetadata", &[]))
        .await;
    assert_eq!(meta["company_name"], "Acme");
    let bank = |iban: &str| {
        on("attachBankAccount", &[])
            .json(&json!({"type": "sepa", "iban": iban, "name": "Jane Doe"}))
    };
    run.expect("attachBankAccount", 200, bank("DE89370400440532013000"))
        .await;
    run.expect("attachBankAccount", 400, bank("DE89370400440532013001"))
        .await;
    run.expect("fetchBankAccount", 200, on("fetchBankAccount", &[]))
        .await;
    let long_key = "k".repeat(201);
    run.expect(
        "deleteBankAccount",
        400,
        on("deleteBankAccount", &[]).header("idempotency-key", long_key),
    )
    .await;
    run.expect("deleteBankAccount", 200, on("deleteBankAccount", &[]))
        .await;
    run.expect("deleteBankAccount", 404, on("deleteBankAccount", &[]))
        .await;

    // The subscription, its invoices and receipts.
    let subscribe = |plan: &str| on("subscribe", &[]).json(&json!({"plan": plan}));
    run.expect("subscribe", 400, subscribe("nope")).await;
    run.expect("subscribe", 403, subscribe("enterprise")).await;
    run.expect("subscribe", 200, subscribe("starter")).await;
    run.expect("getSubcription", 200, on("getSubcription", &[]))
        .await;
    let state = run
        .expect("getSubcriptionState", 200, on("getSubcriptionState", &[]))
        .await;
    assert_eq!(state["status"], "active");
    for op in ["getInvoices", "getReceipts"] {
        run.expect(op, 200, on(op, &[])).await;
        run.expect(op, 400, on(op, &[]).query(&[("limit", "0")]))
            .await;
    }
    // The last card of a bucket with a live subscription stays.
    run.expect(
        "deleteCreditCard",
        403,
        on("deleteCreditCard", &[("card_id", &first)]),
    )
    .await;
    // Cancel at period end, and take it back.
    let cancel = run
        .expect("cancelSubscription", 200, on("cancelSubscription", &[]))
        .await;
    assert_eq!(cancel["subscription"]["cancel_at_period_end"], true);
    let bad_at = on("cancelSubscription", &[]).query(&[("at", "tomorrow")]);
    run.expect("cancelSubscription", 400, bad_at).await;
    let long_key = "k".repeat(201);
    let resume = || on("resumeSubscription", &[]);
    run.expect(
        "resumeSubscription",
        400,
        resume().header("idempotency-key", long_key),
    )
    .await;
    let resumed = run.expect("resumeSubscription", 200, resume()).await;
    assert_eq!(resumed["subscription"]["cancel_at_period_end"], false);
    run.expect("listPlans", 200, run.request("listPlans", alice, &[]))
        .await;
    run.expect(
        "startTrial",
        400,
        on("startTrial", &[]).json(&json!({"plan": "business"})),
    )
    .await;
}

/// Subscribing with a card whose first payment fails, or with none; a trial;
/// the 3-D Secure confirmation.
async fn other_buckets(run: &Run<'_>) {
    let alice = As::User("alice");
    let fresh = async || run.app.bucket("alice").await;
    let subscribe = |bucket: &str, body: Value| {
        run.request("subscribe", alice, &[("id", bucket)])
            .json(&body)
    };

    let declined = fresh().await;
    let token = card_token("4000000000000341").await;
    run.expect(
        "subscribe",
        402,
        subscribe(&declined, json!({"plan": "starter", "stripe_token": token})),
    )
    .await;
    run.expect(
        "subscribe",
        403,
        subscribe(&fresh().await, json!({"plan": "starter"})),
    )
    .await;

    let trial = fresh().await;
    let start = |plan: &str| {
        run.request("startTrial", alice, &[("id", &trial)])
            .json(&json!({"plan": plan}))
    };
    run.expect("startTrial", 400, start("nope")).await;
    run.expect("startTrial", 200, start("business")).await;

    let secure = fresh().await;
    let token = card_token("4000002760003184").await;
    let answer = run
        .expect(
            "subscribe",
            200,
            subscribe(&secure, json!({"plan": "starter", "stripe_token": token})),
        )
        .await;
    let intent = answer["payment_intent"].clone();
    let pi = intent["id"]
        .as_str()
        .expect("a 3-D Secure payment intent")
        .to_string();
    let confirm = |pi: &str| {
        run.request(
            "paymentIntentSucceed",
            alice,
            &[("id", &secure), ("paymentIntent", pi)],
        )
        .json(&json!({"plan": "starter"}))
    };
    run.expect("paymentIntentSucceed", 400, confirm(&pi)).await;
    authenticate(&intent, true).await;
    run.expect("paymentIntentSucceed", 400, confirm("nope"))
        .await;
    run.expect("paymentIntentSucceed", 200, confirm(&pi)).await;
}

async fn admin_and_health(run: &Run<'_>, backend: Backend) {
    let id = new_id();
    let put = |id: &str, name: &str| {
        run.request("adminPutBucket", As::Admin, &[("id", id)])
            .json(&json!({"name": name, "members": [{"user_id": "carol", "role": "owner"}]}))
    };
    run.expect("adminPutBucket", 201, put(&id, "Carol's")).await;
    run.expect("adminPutBucket", 200, put(&id, "Carol's team"))
        .await;
    run.expect("adminPutBucket", 400, put("nope", "x")).await;
    let create = |name: &str| {
        run.request("adminCreateBucket", As::Admin, &[])
            .json(&json!({"name": name}))
    };
    run.expect("adminCreateBucket", 201, create("Dave's")).await;
    run.expect("adminCreateBucket", 400, create("")).await;
    for op in ["adminGetBucket", "adminDeleteBucket"] {
        run.expect(op, 200, run.request(op, As::Admin, &[("id", &id)]))
            .await;
    }
    for op in ["adminGetBucket", "adminDeleteBucket"] {
        run.expect(op, 404, run.request(op, As::Admin, &[("id", &id)]))
            .await;
    }
    // With the admin API off, its routes are not there.
    let off = TestApp::start_with(
        backend,
        Options {
            admin_token: None,
            ..Options::default()
        },
    )
    .await;
    for op in [
        "adminCreateBucket",
        "adminPutBucket",
        "adminSyncHealth",
        "adminReplayEvent",
    ] {
        let req = run.request_to(&off, op, As::Admin, &[("id", &id), ("event_id", EVENT)]);
        let req = match run.op(op).has_body {
            true => req.json(&body_of(op)),
            false => req,
        };
        run.expect(op, 404, req).await;
    }
    // An event in the inbox can be put back in line (this one was applied:
    // nothing to do), one that is not there cannot.
    let event = json!({
        "id": EVENT, "object": "event", "type": "customer.created", "created": paysync::store::now(),
        "livemode": false, "data": {"object": {"id": "cus_contract", "object": "customer", "metadata": {}}},
    });
    assert_eq!(run.app.deliver(&event.to_string()).await.0, 200);
    let replay = |event: &str| run.request("adminReplayEvent", As::Admin, &[("event_id", event)]);
    let replayed = run.expect("adminReplayEvent", 200, replay(EVENT)).await;
    assert_eq!(replayed["requeued"], false);
    run.expect("adminReplayEvent", 404, replay("evt_unknown"))
        .await;
    run.expect(
        "adminSyncHealth",
        200,
        run.request("adminSyncHealth", As::Admin, &[]),
    )
    .await;
    run.expect("healthz", 200, run.request("healthz", As::Nobody, &[]))
        .await;
    run.expect("readyz", 200, run.request("readyz", As::Nobody, &[]))
        .await;
}

/// What every operation answers the same way: no credentials, a bucket that
/// is not the caller's, a member where an owner is needed, a body too large
/// or not JSON. Sent to the operations whose spec lists the status.
async fn common_statuses(run: &Run<'_>, bucket: &str) {
    let unknown = new_id();
    for op in &run.ops {
        let id = op.id.as_str();
        let admin = op.path.starts_with("/admin");
        let caller = if admin { As::Admin } else { As::User("alice") };
        if op.statuses.contains(&401) {
            run.expect(id, 401, run.plain(id, As::Nobody, bucket)).await;
        }
        // The admin API has no roles, and its 404s are its own (admin_and_health).
        if op.statuses.contains(&403) && !admin {
            run.expect(id, 403, run.plain(id, As::User("bob"), bucket))
                .await;
        }
        if op.statuses.contains(&404) && op.path.contains("{id}") && !admin {
            run.expect(id, 404, run.plain(id, caller, &unknown)).await;
        }
        let params = params(bucket);
        if op.statuses.contains(&413) {
            let huge = json!({"name": "x".repeat(Options::default().max_body)}).to_string();
            let req = run
                .request(id, caller, &params)
                .header("content-type", "application/json")
                .body(huge);
            run.expect(id, 413, req).await;
        }
        if op.statuses.contains(&415) {
            let req = run
                .request(id, caller, &params)
                .header("content-type", "text/plain")
                .body(body_of(id).to_string());
            run.expect(id, 415, req).await;
        }
    }
}

/// The database failing (tables gone: 500), then unreachable (503). Last:
/// the server is of no more use after.
async fn database_trouble(run: &Run<'_>) {
    // A bucket nobody read yet: no answer of it is kept in memory.
    let bucket = run.app.bucket("alice").await;
    // Every bucket route reads the members first; the sync-health routes, the inbox.
    for table in ["members", "stripe_events"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(&run.app.ctx.db.pool)
            .await
            .expect("drop a table");
    }
    for status in [500, 503] {
        if status == 503 {
            run.app.ctx.db.pool.close().await;
        }
        for op in run.ops.iter().filter(|o| o.statuses.contains(&status)) {
            let who = if op.path.starts_with("/admin") {
                As::Admin
            } else {
                As::User("alice")
            };
            run.expect(&op.id, status, run.plain(&op.id, who, &bucket))
                .await;
        }
    }
}

async fn every_documented_status_is_answered(b: Backend) {
    let app = TestApp::start(b).await;
    plans(&app).await;
    let run = Run::new(&app);
    let bucket = app.bucket("alice").await;
    app.add_member(&bucket, "bob", Role::Member).await;
    billing_story(&run, &bucket).await;
    other_buckets(&run).await;
    admin_and_health(&run, b).await;
    common_statuses(&run, &bucket).await;
    database_trouble(&run).await;
    run.all_seen();
}

both!(every_documented_status_is_answered);
