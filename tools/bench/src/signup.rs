//! The webhook stream of new customers signing up, as Stripe sends it.
//!
//! Each customer's sign-up comes together, in Stripe's order, several events
//! in the same second: `customer.created` (its `metadata.bucket_id` names an
//! existing bucket, which it links), `payment_method.attached`,
//! `customer.updated` (default payment method), `customer.subscription.created`
//! (incomplete), `invoice.created`, `payment_intent.succeeded`,
//! `charge.succeeded`, `invoice.paid`, `customer.subscription.updated`
//! (active); days later a `customer.updated` (address), which the stream
//! sends among later customers' sign-ups. No object has two versions in one
//! second (Stripe's sign-up spans a few seconds), so no event needs Stripe.
//!
//! The objects are Stripe's shapes with every field, from the fixtures the
//! contract tests use (`fixtures/stripe/<version>/`), filled in per customer
//! (ids, customer, times, states) and pretty-printed as Stripe delivers them.
//! Each event is rendered once as a template with holes, so making a body is
//! a copy of its parts, not a JSON serialization: the load generator runs on
//! the server's cores.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::seed::bucket_id;
use crate::webhooks::Event;

/// Events a customer sends (nine at sign-up, one days later).
pub const PER_CUSTOMER: usize = 10;

/// The address update of customer `i` is sent after the sign-up of customer `i + LATER_BY`.
const LATER_BY: usize = 100;

/// "Days later": the address update's `created`, after the sign-up.
const DAYS_LATER: i64 = 3 * 86_400;

/// The fixture objects the stream is made of (`<kind>.json` of one version).
pub struct Shapes {
    customer: Value,
    payment_method: Value,
    subscription: Value,
    invoice: Value,
    payment_intent: Value,
    charge: Value,
    event: Value,
}

impl Shapes {
    /// Read the fixtures of one API version (a directory of `<kind>.json`).
    pub fn load(dir: &Path) -> anyhow::Result<Shapes> {
        let read = |name: &str| -> anyhow::Result<Value> {
            let path = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        };
        Ok(Shapes {
            customer: read("customer")?,
            payment_method: read("payment_method_card")?,
            subscription: read("subscription")?,
            invoice: read("invoice")?,
            payment_intent: read("payment_intent")?,
            charge: read("charge")?,
            event: read("event")?,
        })
    }
}

/// What differs from one customer (or event) to the next.
#[derive(Clone, Copy)]
enum Hole {
    Event,
    Customer,
    Bucket,
    Email,
    PaymentMethod,
    Subscription,
    Item,
    Invoice,
    Line,
    Intent,
    Charge,
    BalanceTransaction,
    T0,
    T1,
    T2,
    T3,
    Later,
    PeriodEnd,
}

const HOLES: usize = Hole::PeriodEnd as usize + 1;

/// A hole in a template: a JSON string no fixture holds.
fn hole(h: Hole) -> Value {
    Value::String(format!("@@{}@@", h as usize))
}

/// Set `pointer` when its parent exists in the fixture (its shape decides
/// where a field lives at its version); the top-level fields always.
fn put(v: &mut Value, pointer: &str, x: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(Value::Object(map)) = v.pointer_mut(parent) {
        map.insert(key.to_string(), x);
    }
}

/// Every string equal to one of the fixtures' own ids becomes that id's hole,
/// wherever the version keeps its links (`invoice.parent…subscription`,
/// `charge.payment_intent`, …); an id inside a string (a URL, a client
/// secret) becomes a hole inside it.
fn link(v: &mut Value, ids: &[(String, Hole)]) {
    match v {
        Value::String(s) => {
            for (id, h) in ids {
                if s.contains(id.as_str()) {
                    *s = s.replace(id.as_str(), &format!("@@{}@@", *h as usize));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| link(x, ids)),
        Value::Object(map) => map.values_mut().for_each(|x| link(x, ids)),
        _ => {}
    }
}

/// A pretty-printed JSON text with holes.
struct Template {
    /// Text before each hole, and the text after the last.
    parts: Vec<String>,
    /// Each hole, and whether it is a whole string (else part of one).
    holes: Vec<(usize, bool)>,
}

/// `v` as Stripe prints it: two-space indent, `id` and `object` first, then
/// the other fields in alphabetical order (serde_json's maps are sorted).
fn pretty(v: &Value, indent: usize, out: &mut String) {
    let pad = |n: usize, out: &mut String| out.extend(std::iter::repeat_n(' ', n));
    match v {
        Value::Object(map) if !map.is_empty() => {
            let first = ["id", "object"]
                .into_iter()
                .filter(|k| map.contains_key(*k));
            let rest = map
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "id" && *k != "object");
            out.push_str("{\n");
            for (n, k) in first.chain(rest).enumerate() {
                if n > 0 {
                    out.push_str(",\n");
                }
                pad(indent + 2, out);
                out.push_str(&Value::from(k).to_string());
                out.push_str(": ");
                pretty(&map[k], indent + 2, out);
            }
            out.push('\n');
            pad(indent, out);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (n, x) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(",\n");
                }
                pad(indent + 2, out);
                pretty(x, indent + 2, out);
            }
            out.push('\n');
            pad(indent, out);
            out.push(']');
        }
        _ => out.push_str(&v.to_string()),
    }
}

impl Template {
    fn new(v: &Value) -> anyhow::Result<Template> {
        let mut text = String::new();
        pretty(v, 0, &mut text);
        let (mut parts, mut holes) = (Vec::new(), Vec::new());
        let mut rest = text.as_str();
        while let Some(start) = rest.find("@@") {
            let after = &rest[start + 2..];
            let end = after.find("@@").context("unclosed hole")?;
            let h: usize = after[..end].parse()?;
            let tail = &after[end + 2..];
            // `"@@n@@"`: the whole string is the value (quotes and all).
            let whole = rest[..start].ends_with('"') && tail.starts_with('"');
            let (before, tail) = match whole {
                true => (&rest[..start - 1], &tail[1..]),
                false => (&rest[..start], tail),
            };
            parts.push(before.to_string());
            holes.push((h, whole));
            rest = tail;
        }
        parts.push(rest.to_string());
        Ok(Template { parts, holes })
    }

    /// The text with each hole filled (`values`: JSON literals, by hole).
    fn render(&self, values: &[String; HOLES]) -> String {
        let len = self.parts.iter().map(String::len).sum::<usize>()
            + self
                .holes
                .iter()
                .map(|(h, _)| values[*h].len())
                .sum::<usize>();
        let mut out = String::with_capacity(len);
        for (part, (h, whole)) in self.parts.iter().zip(&self.holes) {
            out.push_str(part);
            match whole {
                true => out.push_str(&values[*h]),
                false => out.push_str(values[*h].trim_matches('"')),
            }
        }
        out.push_str(self.parts.last().map_or("", String::as_str));
        out
    }
}

/// The ten events of a customer, as templates (in the order they are sent).
pub struct SignUps {
    events: Vec<Template>,
}

impl SignUps {
    pub fn new(s: &Shapes) -> anyhow::Result<SignUps> {
        let id = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        let ids: Vec<(String, Hole)> = [
            (id(&s.customer, "/id"), Hole::Customer),
            (id(&s.payment_method, "/id"), Hole::PaymentMethod),
            (id(&s.subscription, "/id"), Hole::Subscription),
            (id(&s.subscription, "/items/data/0/id"), Hole::Item),
            (id(&s.invoice, "/id"), Hole::Invoice),
            (id(&s.invoice, "/lines/data/0/id"), Hole::Line),
            (id(&s.payment_intent, "/id"), Hole::Intent),
            (id(&s.charge, "/id"), Hole::Charge),
            (
                id(&s.charge, "/balance_transaction"),
                Hole::BalanceTransaction,
            ),
            (id(&s.customer, "/metadata/bucket_id"), Hole::Bucket),
            (id(&s.customer, "/email"), Hole::Email),
        ]
        .into_iter()
        .filter_map(|(id, h)| Some((id?, h)))
        .collect();
        let object = |v: &Value| {
            let mut v = v.clone();
            link(&mut v, &ids);
            v
        };

        let customer = |stage: u8| {
            let mut c = object(&s.customer);
            put(&mut c, "/id", hole(Hole::Customer));
            put(&mut c, "/created", hole(Hole::T0));
            put(&mut c, "/email", hole(Hole::Email));
            put(
                &mut c,
                "/metadata",
                json!({"bucket_id": hole(Hole::Bucket)}),
            );
            let pm = if stage > 0 {
                hole(Hole::PaymentMethod)
            } else {
                Value::Null
            };
            put(&mut c, "/invoice_settings/default_payment_method", pm);
            put(&mut c, "/default_source", Value::Null);
            let address = json!({"city": "Lyon", "country": "FR", "line1": "2 place Bellecour",
                                 "line2": null, "postal_code": "69002", "state": null});
            put(
                &mut c,
                "/address",
                if stage > 1 { address } else { Value::Null },
            );
            c
        };
        let mut pm = object(&s.payment_method);
        put(&mut pm, "/id", hole(Hole::PaymentMethod));
        put(&mut pm, "/customer", hole(Hole::Customer));
        put(&mut pm, "/created", hole(Hole::T1));
        let subscription = |status: &str| {
            let mut sub = object(&s.subscription);
            put(&mut sub, "/id", hole(Hole::Subscription));
            put(&mut sub, "/customer", hole(Hole::Customer));
            put(&mut sub, "/status", json!(status));
            for p in ["/created", "/start_date", "/billing_cycle_anchor"] {
                put(&mut sub, p, hole(Hole::T2));
            }
            put(&mut sub, "/latest_invoice", hole(Hole::Invoice));
            put(
                &mut sub,
                "/default_payment_method",
                hole(Hole::PaymentMethod),
            );
            put(
                &mut sub,
                "/items/data/0/current_period_start",
                hole(Hole::T2),
            );
            put(
                &mut sub,
                "/items/data/0/current_period_end",
                hole(Hole::PeriodEnd),
            );
            put(&mut sub, "/current_period_start", hole(Hole::T2));
            put(&mut sub, "/current_period_end", hole(Hole::PeriodEnd));
            sub
        };
        let invoice = |paid: bool| {
            let mut inv = object(&s.invoice);
            put(&mut inv, "/id", hole(Hole::Invoice));
            put(&mut inv, "/customer", hole(Hole::Customer));
            put(&mut inv, "/created", hole(Hole::T2));
            put(
                &mut inv,
                "/status",
                json!(if paid { "paid" } else { "draft" }),
            );
            let amount = inv.get("amount_due").cloned().unwrap_or(json!(1900));
            put(
                &mut inv,
                "/amount_paid",
                if paid { amount } else { json!(0) },
            );
            // A subscription's first invoice is created as a draft, finalized and paid.
            let (finalized_at, paid_at) = match paid {
                true => (hole(Hole::T2), hole(Hole::T3)),
                false => (Value::Null, Value::Null),
            };
            put(&mut inv, "/status_transitions/finalized_at", finalized_at);
            put(&mut inv, "/status_transitions/paid_at", paid_at);
            inv
        };
        let mut intent = object(&s.payment_intent);
        put(&mut intent, "/id", hole(Hole::Intent));
        put(&mut intent, "/customer", hole(Hole::Customer));
        put(&mut intent, "/created", hole(Hole::T2));
        put(&mut intent, "/status", json!("succeeded"));
        put(&mut intent, "/payment_method", hole(Hole::PaymentMethod));
        let mut charge = object(&s.charge);
        put(&mut charge, "/id", hole(Hole::Charge));
        put(&mut charge, "/customer", hole(Hole::Customer));
        put(&mut charge, "/created", hole(Hole::T3));
        put(&mut charge, "/status", json!("succeeded"));
        put(&mut charge, "/payment_intent", hole(Hole::Intent));
        put(&mut charge, "/payment_method", hole(Hole::PaymentMethod));

        let event = |ty: &str, at: Hole, obj: Value, previous: Option<Value>| {
            let mut e = s.event.clone();
            put(&mut e, "/id", hole(Hole::Event));
            put(&mut e, "/type", json!(ty));
            put(&mut e, "/created", hole(at));
            // Made by Stripe's billing, not by one API request of ours.
            put(
                &mut e,
                "/request",
                json!({"id": null, "idempotency_key": null}),
            );
            let mut data = json!({ "object": obj });
            if let Some(p) = previous {
                data["previous_attributes"] = p;
            }
            put(&mut e, "/data", data);
            Template::new(&e)
        };
        let events = vec![
            event("customer.created", Hole::T0, customer(0), None)?,
            event("payment_method.attached", Hole::T1, pm, None)?,
            event(
                "customer.updated",
                Hole::T1,
                customer(1),
                Some(json!({"invoice_settings": {"default_payment_method": null}})),
            )?,
            event(
                "customer.subscription.created",
                Hole::T2,
                subscription("incomplete"),
                None,
            )?,
            event("invoice.created", Hole::T2, invoice(false), None)?,
            event("payment_intent.succeeded", Hole::T3, intent, None)?,
            event("charge.succeeded", Hole::T3, charge, None)?,
            event("invoice.paid", Hole::T3, invoice(true), None)?,
            event(
                "customer.subscription.updated",
                Hole::T3,
                subscription("active"),
                Some(json!({"status": "incomplete"})),
            )?,
            event(
                "customer.updated",
                Hole::Later,
                customer(2),
                Some(json!({"address": null})),
            )?,
        ];
        Ok(SignUps { events })
    }

    /// The stream of `customers` sign-ups: customer `i` links bucket
    /// `first_bucket + i`; its sign-up starts at `base + i` seconds. The
    /// payment method of every `watch_every`-th customer is watched.
    pub fn stream(
        self,
        run: String,
        customers: usize,
        first_bucket: usize,
        base: i64,
        watch_every: usize,
    ) -> impl Iterator<Item = Event> + Send {
        let last = PER_CUSTOMER - 1;
        // Sign-up of customer i, then the address update of customer i - LATER_BY.
        let order = (0..customers + LATER_BY).flat_map(move |i| {
            let signup = (i < customers).then(|| (0..last).map(move |k| (i, k)));
            let later = i.checked_sub(LATER_BY).map(|j| (j, last));
            signup.into_iter().flatten().chain(later)
        });
        order.map(move |(i, k)| {
            let values = values(&run, i, first_bucket + i, base + i as i64, k);
            let body = Bytes::from(self.events[k].render(&values));
            let watched = k == 1 && i % watch_every == 0;
            Event {
                body,
                watch: watched.then(|| {
                    (
                        first_bucket + i,
                        unquote(&values[Hole::PaymentMethod as usize]),
                    )
                }),
            }
        })
    }
}

/// The holes' values of event `k` of customer `i` (JSON literals).
fn values(run: &str, i: usize, bucket: usize, t: i64, k: usize) -> [String; HOLES] {
    let s = |x: String| format!("\"{x}\"");
    let own = |prefix: &str| s(format!("{prefix}_{}", stripe_id(run, i, prefix)));
    let mut v: [String; HOLES] = Default::default();
    v[Hole::Event as usize] = s(format!("evt_bench{run}_{i:07}_{k}"));
    v[Hole::Customer as usize] = own("cus");
    v[Hole::Bucket as usize] = s(bucket_id(bucket));
    v[Hole::Email as usize] = s(format!("signup+{run}{i}@example.com"));
    v[Hole::PaymentMethod as usize] = own("pm");
    v[Hole::Subscription as usize] = own("sub");
    v[Hole::Item as usize] = own("si");
    v[Hole::Invoice as usize] = own("in");
    v[Hole::Line as usize] = own("il");
    v[Hole::Intent as usize] = own("pi");
    v[Hole::Charge as usize] = own("ch");
    v[Hole::BalanceTransaction as usize] = own("txn");
    for (h, dt) in [(Hole::T0, 0), (Hole::T1, 1), (Hole::T2, 2), (Hole::T3, 3)] {
        v[h as usize] = (t + dt).to_string();
    }
    v[Hole::Later as usize] = (t + DAYS_LATER).to_string();
    v[Hole::PeriodEnd as usize] = (t + 2 + 30 * 86_400).to_string();
    v
}

/// An object id's part after its prefix, in Stripe's style (14 random
/// letters and digits: ids do not arrive in index order): derived from the
/// run, the customer and the prefix, so the events of one object agree.
fn stripe_id(run: &str, i: usize, prefix: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut seed = i as u64;
    for b in run.bytes().chain(prefix.bytes()) {
        seed = seed.rotate_left(5) ^ u64::from(b);
    }
    // splitmix64
    let mut next = || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (a, b) = (next(), next());
    (0..14)
        .map(|n| {
            let x = if n < 7 {
                a >> (n * 9)
            } else {
                b >> ((n - 7) * 9)
            };
            DIGITS[(x % 62) as usize] as char
        })
        .collect()
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The newest version's fixtures of the repository.
    fn shapes() -> Shapes {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Shapes::load(&crate::newest_shapes(&root).unwrap()).unwrap()
    }

    #[test]
    fn a_sign_up_is_stripes_events_of_one_new_customer() {
        let events: Vec<Event> = SignUps::new(&shapes())
            .unwrap()
            .stream("abc".into(), 3, 40, 1_790_000_000, 2)
            .collect();
        assert_eq!(events.len(), 3 * PER_CUSTOMER);
        let parsed: Vec<Value> = events
            .iter()
            .map(|e| {
                serde_json::from_slice(&e.body)
                    .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&e.body)))
            })
            .collect();
        let first: Vec<&str> = parsed[..9]
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            first,
            [
                "customer.created",
                "payment_method.attached",
                "customer.updated",
                "customer.subscription.created",
                "invoice.created",
                "payment_intent.succeeded",
                "charge.succeeded",
                "invoice.paid",
                "customer.subscription.updated"
            ]
        );
        let mut customers = Vec::new();
        for (e, v) in events.iter().zip(&parsed) {
            let text = std::str::from_utf8(&e.body).unwrap();
            assert!(
                text.starts_with("{\n  \"id\": \"evt_"),
                "pretty-printed, id first"
            );
            assert!((700..8_000).contains(&text.len()), "{} bytes", text.len());
            // The account's id is the same for every customer.
            let own = text.replace("acct_1TfPsyncTestAcct", "");
            assert!(!own.contains("TfPsync"), "a fixture id left: {text}");
            let object = &v["data"]["object"];
            let customer = match object["object"].as_str() {
                Some("customer") => &object["id"],
                _ => &object["customer"],
            };
            customers.push(customer.as_str().unwrap().to_string());
        }
        // Each customer's nine sign-up events, then (here, 3 < LATER_BY) its address update.
        let of = |j: usize| if j < 27 { j / 9 } else { j - 27 };
        for (j, c) in customers.iter().enumerate() {
            assert_eq!(c, &customers[of(j) * 9], "event {j}");
            assert!(
                c.len() == 18 && c[4..].bytes().all(|b| b.is_ascii_alphanumeric()),
                "{c}"
            );
        }
        assert!(customers[0] != customers[9] && customers[9] != customers[18]);
        let created = &parsed[0]["data"]["object"];
        assert_eq!(created["metadata"]["bucket_id"], bucket_id(40));
        assert_eq!(parsed[3]["data"]["object"]["status"], "incomplete");
        assert_eq!(parsed[8]["data"]["object"]["status"], "active");
        // Customer 1's sign-up follows customer 0's; the address updates come last here.
        assert_eq!(
            parsed[9]["data"]["object"]["metadata"]["bucket_id"],
            bucket_id(41)
        );
        let later = &parsed[27];
        assert_eq!(later["type"], "customer.updated");
        assert_eq!(
            later["created"].as_i64().unwrap() - parsed[0]["created"].as_i64().unwrap(),
            DAYS_LATER
        );
        assert!(later["data"]["object"]["address"].is_object());
        // The payment method of every second customer is watched.
        let watched: Vec<usize> = events
            .iter()
            .filter_map(|e| e.watch.as_ref().map(|w| w.0))
            .collect();
        assert_eq!(watched, [40, 42]);
    }
}
