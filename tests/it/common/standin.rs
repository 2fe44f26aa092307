//! A Stripe stand-in that speaks the newest API version the tests cover
//! (`version::DEFAULT`), fed from the objects of `fixtures/stripe/<newest>/`.
//!
//! It keeps an account's objects by id and answers what paysync asks of
//! Stripe: an object by id, lists filtered the way Stripe filters them
//! (newest first), subscription writes. It expands what Stripe expands (ids
//! of the account's objects, an invoice's includable `payments` and
//! `confirmation_secret`, a customer's `sources`), and refuses, as Stripe
//! does, to expand a field the object does not have at this version: HTTP
//! 400 `invalid_request_error`, "This property cannot be expanded
//! (payment_intent)." A call without `Stripe-Version: <newest>` is refused
//! too, so a test also shows every call is pinned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::shapes::NEWEST;

#[derive(Default)]
struct Account {
    objects: BTreeMap<String, Value>,
    /// What `POST /v1/subscriptions` creates.
    to_create: Option<Value>,
    /// Expansions refused (`path expand`).
    refused: Vec<String>,
}

pub struct StandIn {
    pub server: MockServer,
    account: Arc<Mutex<Account>>,
}

impl StandIn {
    /// A stand-in holding these objects.
    pub async fn start(objects: impl IntoIterator<Item = Value>) -> StandIn {
        let account = Arc::new(Mutex::new(Account::default()));
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(Responder(account.clone()))
            .mount(&server)
            .await;
        let standin = StandIn { server, account };
        for obj in objects {
            standin.put(obj);
        }
        standin
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Add or replace an object (by its id).
    pub fn put(&self, obj: Value) {
        let id = obj["id"]
            .as_str()
            .expect("an object with an id")
            .to_string();
        self.account.lock().unwrap().objects.insert(id, obj);
    }

    /// The object `POST /v1/subscriptions` will create.
    pub fn creates(&self, subscription: Value) {
        self.account.lock().unwrap().to_create = Some(subscription);
    }

    /// The expansions refused so far.
    pub fn refused(&self) -> Vec<String> {
        self.account.lock().unwrap().refused.clone()
    }

    /// Every request received.
    pub async fn requests(&self) -> Vec<Seen> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| Seen {
                method: r.method.to_string(),
                path: r.url.path().to_string(),
                params: params(r),
            })
            .collect()
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
}

impl Seen {
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.params.iter().any(|(k, v)| k == key && v == value)
    }

    /// The `expand` values.
    pub fn expansions(&self) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(k, _)| k.starts_with("expand["))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The parameters of a request: its query, and its form body.
pub fn params(req: &Request) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    out.extend(url::form_urlencoded::parse(&req.body).into_owned());
    out
}

struct Responder(Arc<Mutex<Account>>);

fn error(status: u16, message: &str, code: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {
        "type": "invalid_request_error", "code": code, "message": message}}))
}

/// The object type a collection path lists.
fn object_of(collection: &str) -> Option<&'static str> {
    Some(match collection {
        "customers" => "customer",
        "subscriptions" => "subscription",
        "invoices" => "invoice",
        "invoice_payments" => "invoice_payment",
        "payment_intents" => "payment_intent",
        "charges" => "charge",
        "payment_methods" => "payment_method",
        "sources" => "source",
        _ => return None,
    })
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let version = req
            .headers
            .get("Stripe-Version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if version != NEWEST {
            return error(
                400,
                &format!("this stand-in answers Stripe-Version {NEWEST} only, not {version:?}"),
                None,
            );
        }
        let params = params(req);
        let param = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let expand: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k.starts_with("expand["))
            .map(|(_, v)| v.as_str())
            .collect();
        let segs: Vec<&str> = req
            .url
            .path()
            .trim_start_matches("/v1/")
            .split('/')
            .collect();
        let mut account = self.0.lock().unwrap();
        let method = req.method.as_str();
        let found = match (method, segs.as_slice()) {
            ("GET", [collection, id]) => match account.objects.get(*id) {
                Some(o) if object_of(collection) == o["object"].as_str() => o.clone(),
                _ => {
                    return error(
                        404,
                        &format!("No such object: '{id}'"),
                        Some("resource_missing"),
                    );
                }
            },
            ("GET", [collection]) => {
                let Some(kind) = object_of(collection) else {
                    return error(404, "Unrecognized request URL", None);
                };
                let matches = |o: &Value| {
                    o["object"] == kind
                        && param("customer").is_none_or(|c| o["customer"] == c)
                        && param("invoice").is_none_or(|i| o["invoice"] == i)
                        && param("payment[payment_intent]")
                            .is_none_or(|p| o["payment"]["payment_intent"] == p)
                        && param("type").is_none_or(|t| o["type"] == t)
                };
                let mut data: Vec<Value> = account
                    .objects
                    .values()
                    .filter(|o| matches(o))
                    .cloned()
                    .collect();
                data.sort_by_key(|o| std::cmp::Reverse(o["created"].as_i64()));
                json!({"object": "list", "data": data, "has_more": false, "url": req.url.path()})
            }
            ("POST", ["subscriptions"]) => {
                let Some(created) = account.to_create.clone() else {
                    return error(
                        400,
                        "the test gave the stand-in no subscription to create",
                        None,
                    );
                };
                let id = created["id"].as_str().unwrap_or_default().to_string();
                account.objects.insert(id, created.clone());
                created
            }
            ("POST", ["subscriptions", id]) => match account.objects.get(*id) {
                Some(o) => o.clone(),
                None => {
                    return error(
                        404,
                        &format!("No such subscription: '{id}'"),
                        Some("resource_missing"),
                    );
                }
            },
            _ => return error(404, "Unrecognized request URL", None),
        };
        let mut answer = found;
        for path in expand {
            let segs: Vec<&str> = path.split('.').collect();
            if let Err(field) = expand_into(&account.objects, &mut answer, &segs) {
                account.refused.push(format!("{} {path}", req.url.path()));
                return error(
                    400,
                    &format!("This property cannot be expanded ({field})."),
                    None,
                );
            }
        }
        ResponseTemplate::new(200).set_body_json(answer)
    }
}

/// An includable field of `obj` (one Stripe sends only when expanded).
fn includable(objects: &BTreeMap<String, Value>, obj: &Value, field: &str) -> Option<Value> {
    let id = &obj["id"];
    let list = |data: Vec<Value>| json!({"object": "list", "data": data, "has_more": false});
    let of = |kind: &str, key: &str| -> Vec<Value> {
        objects
            .values()
            .filter(|o| o["object"] == kind && &o[key] == id)
            .cloned()
            .collect()
    };
    match (obj["object"].as_str()?, field) {
        ("invoice", "payments") => Some(list(of("invoice_payment", "invoice"))),
        ("invoice", "confirmation_secret") => {
            let payments = of("invoice_payment", "invoice");
            let intent = payments.first()?["payment"]["payment_intent"]
                .as_str()?
                .to_string();
            let secret = objects.get(&intent)?["client_secret"].clone();
            Some(json!({"client_secret": secret, "type": "payment_intent"}))
        }
        ("customer", "sources") => {
            let mut sources = of("card", "customer");
            sources.extend(of("source", "customer"));
            Some(list(sources))
        }
        _ => None,
    }
}

/// Expand `segs` (`latest_invoice.payments`) in `value`, Stripe's way; the
/// field that cannot be expanded on error.
fn expand_into(
    objects: &BTreeMap<String, Value>,
    value: &mut Value,
    segs: &[&str],
) -> Result<(), String> {
    let Some((first, rest)) = segs.split_first() else {
        return Ok(());
    };
    if let Some(items) = value.as_array_mut() {
        for item in items {
            expand_into(objects, item, segs)?;
        }
        return Ok(());
    }
    if value.get(*first).is_none() {
        let field = includable(objects, value, first).ok_or_else(|| first.to_string())?;
        value[*first] = field;
    }
    let field = &mut value[*first];
    match field {
        Value::String(id) => {
            if let Some(obj) = objects.get(id.as_str()) {
                *field = obj.clone();
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Some(obj) = item.as_str().and_then(|id| objects.get(id)) {
                    *item = obj.clone();
                }
            }
        }
        _ => {}
    }
    expand_into(objects, field, rest)
}
