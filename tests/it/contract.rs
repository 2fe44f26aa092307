//! The contract across Stripe API versions: one customer story, built from
//! the objects of `fixtures/stripe/2024-06-20/` and of the newest version,
//! delivered as signed webhooks; every read route must answer the same facts
//! whichever version Stripe rendered the events in.

use serde_json::{Value, json};

use crate::both;
use crate::common::shapes::{self, *};
use crate::common::*;
use paysync::stripe::version::LEGACY;

/// A story being told to a fresh paysync, one event after another.
struct Story {
    app: TestApp,
    version: &'static str,
    sent: i64,
}

impl Story {
    async fn start(b: Backend, version: &'static str) -> Story {
        let app = TestApp::start(b).await;
        app.bucket_with_id(BUCKET, "alice").await;
        Story {
            app,
            version,
            sent: 0,
        }
    }

    fn object(&self, name: &str) -> Value {
        shapes::object(self.version, name)
    }

    /// Deliver one event (ten seconds after the previous one); it must be taken.
    async fn send(&mut self, ty: &str, object: Value, previous: Option<Value>) {
        self.sent += 1;
        let id = format!("evt_story{:02}", self.sent);
        let body = event(self.version, &id, ty, T0 + 10 * self.sent, object, previous);
        let (status, answer) = self.app.deliver(&body).await;
        assert_eq!(status, 200, "{ty} at {}: {answer}", self.version);
    }

    /// The customer signs up, adds a card, a SEPA account and a card
    /// PaymentMethod, makes them its defaults, subscribes and pays.
    async fn subscribe(&mut self) {
        let mut customer = self.object("customer");
        customer["default_source"] = Value::Null;
        customer["invoice_settings"]["default_payment_method"] = Value::Null;
        self.send("customer.created", customer, None).await;
        self.send("customer.source.created", self.object("card"), None)
            .await;
        self.send(
            "customer.source.created",
            self.object("source_sepa_debit"),
            None,
        )
        .await;
        self.send(
            "payment_method.attached",
            self.object("payment_method_card"),
            None,
        )
        .await;
        let previous =
            json!({"default_source": null, "invoice_settings": {"default_payment_method": null}});
        self.send("customer.updated", self.object("customer"), Some(previous))
            .await;
        self.send(
            "customer.subscription.created",
            self.object("subscription"),
            None,
        )
        .await;
        self.send(
            "payment_intent.succeeded",
            self.object("payment_intent"),
            None,
        )
        .await;
        self.send("charge.succeeded", self.object("charge"), None)
            .await;
        self.send("invoice.paid", self.object("invoice"), None)
            .await;
        if self.version != LEGACY {
            // Since basil the only link between the invoice and its payment.
            self.send("invoice_payment.paid", self.object("invoice_payment"), None)
                .await;
        }
    }

    /// The subscription is set to end with its period (the fixture's event),
    /// and the card gets a new billing address.
    async fn update(&mut self) {
        let fixture = self.object("event");
        let (sub, previous) = (
            fixture["data"]["object"].clone(),
            fixture["data"]["previous_attributes"].clone(),
        );
        self.send("customer.subscription.updated", sub, Some(previous))
            .await;
        let mut card = self.object("card");
        card["address_city"] = "Lyon".into();
        self.send(
            "customer.source.updated",
            card,
            Some(json!({"address_city": "Paris"})),
        )
        .await;
    }

    /// The SEPA account is removed, the PaymentMethod detached, and the
    /// subscription canceled at once.
    async fn delete(&mut self) {
        self.send(
            "customer.source.deleted",
            self.object("source_sepa_debit"),
            None,
        )
        .await;
        let mut pm = self.object("payment_method_card");
        pm["customer"] = Value::Null;
        self.send("payment_method.detached", pm, None).await;
        let mut customer = self.object("customer");
        customer["invoice_settings"]["default_payment_method"] = Value::Null;
        self.send("customer.updated", customer, None).await;
        let mut sub = self.object("subscription");
        sub["status"] = "canceled".into();
        sub["canceled_at"] = (T0 + 7200).into();
        sub["ended_at"] = (T0 + 7200).into();
        self.send("customer.subscription.deleted", sub, None).await;
    }

    /// What every read route answers, reduced to the facts a caller uses.
    async fn facts(&self) -> Value {
        let app = &self.app;
        let get = |path: String| call(app.get(&path, "alice"));
        let route = |path: &str| get(format!("/api/bucket/{BUCKET}{path}"));
        let card = |c: &Value| {
            json!({"id": c["id"], "brand": c["brand"], "last4": c["last4"], "exp_month": c["exp_month"],
                   "exp_year": c["exp_year"], "address_city": c["address_city"], "name": c["name"]})
        };
        let each = |list: &Value, f: &dyn Fn(&Value) -> Value| {
            list.as_array()
                .map(|items| items.iter().map(f).collect::<Vec<_>>())
        };

        let (_, buckets) = get("/api/bucket".into()).await;
        let (status, bucket) = route("").await;
        let bucket = json!({"status": status, "plan": bucket["plan"], "subscription": bucket["subscription"],
                            "listed_plan": buckets[0]["plan"]});
        let (status, cards) = route("/payment/cards").await;
        let cards = json!({"status": status, "data": each(&cards["data"], &card)});
        let (status, default) = route("/payment/card").await;
        let default = json!({"status": status, "card": card(&default["data"])});
        let (status, one) = route(&format!("/payment/card/{CARD}")).await;
        let one = json!({"status": status, "card": card(&one["data"])});
        let (status, metadata) = route("/payment").await;
        let metadata = json!({"status": status, "metadata": metadata});
        let (status, bank) = route("/payment/banks").await;
        let bank = &bank["data"];
        let bank = json!({"status": status, "id": bank["id"], "type": bank["type"],
                          "last4": bank["sepa_debit"]["last4"], "state": bank["status"]});
        let (status, sub) = route("/payment/subscription").await;
        let sub = json!({"status": status, "id": sub["id"], "state": sub["status"],
            "current_period_start": sub["current_period_start"], "current_period_end": sub["current_period_end"],
            "cancel_at_period_end": sub["cancel_at_period_end"], "cancel_at": sub["cancel_at"],
            "canceled_at": sub["canceled_at"], "plan": sub["items"]["data"][0]["plan"]["id"]});
        let (status, state) = route("/payment/subscription/state").await;
        let state = json!({"status": status, "state": state});
        let (status, invoices) = route("/payment/invoices").await;
        let invoice = |i: &Value| {
            json!({"id": i["id"], "status": i["status"], "paid": i["paid"], "subscription": i["subscription"],
                   "payment_intent": i["payment_intent"], "charge": i["charge"], "amount_paid": i["amount_paid"],
                   "total": i["total"], "number": i["number"], "hosted_invoice_url": i["hosted_invoice_url"]})
        };
        let invoices = json!({"status": status, "data": each(&invoices, &invoice)});
        let (status, receipts) = route("/payment/receipts").await;
        let receipt = |r: &Value| {
            json!({"id": r["id"], "invoice": r["invoice"], "payment_intent": r["payment_intent"],
                   "receipt_url": r["receipt_url"], "amount": r["amount"], "status": r["status"]})
        };
        let receipts = json!({"status": status, "data": each(&receipts, &receipt)});
        json!({"getBucket": bucket, "fetchCreditCards": cards, "fetchDefaultCreditCard": default,
               "fetchCreditCard": one, "fetchMetadata": metadata, "fetchBankAccount": bank,
               "getSubcription": sub, "getSubcriptionState": state, "getInvoices": invoices,
               "getReceipts": receipts})
    }
}

/// The story at one version: the facts after each chapter.
async fn told(b: Backend, version: &'static str) -> Vec<(&'static str, Value)> {
    let mut story = Story::start(b, version).await;
    story.subscribe().await;
    let subscribed = story.facts().await;
    story.update().await;
    let updated = story.facts().await;
    story.delete().await;
    let deleted = story.facts().await;
    vec![
        ("subscribed", subscribed),
        ("updated", updated),
        ("deleted", deleted),
    ]
}

/// The ids of the card list, in its order.
fn card_ids(facts: &Value) -> Vec<&str> {
    facts["fetchCreditCards"]["data"]
        .as_array()
        .expect("cards")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect()
}

async fn every_read_route_answers_the_same_facts_at_both_versions(b: Backend) {
    let legacy = told(b, LEGACY).await;
    let newest = told(b, NEWEST).await;
    for ((chapter, old), (_, new)) in legacy.iter().zip(&newest) {
        for (route, facts) in old.as_object().expect("facts") {
            assert_eq!(
                &new[route], facts,
                "{route} after {chapter}: {NEWEST} (left) differs from {LEGACY} (right)"
            );
        }
    }

    // And they are the story's facts.
    let facts = &legacy[0].1;
    let summary = &facts["getBucket"]["subscription"];
    assert_eq!(facts["getBucket"]["plan"], "starter", "{facts}");
    assert_eq!(facts["getBucket"]["listed_plan"], "starter");
    assert_eq!(
        (summary["id"].as_str(), summary["status"].as_str()),
        (Some(SUBSCRIPTION), Some("active"))
    );
    assert_eq!(summary["current_period_end"], PERIOD_END);
    assert_eq!(
        facts["getSubcription"]["current_period_start"],
        PERIOD_START
    );
    assert_eq!(
        facts["getSubcriptionState"]["state"],
        json!({"status": "active", "plan": "starter", "canceled_at": null})
    );
    assert_eq!(
        card_ids(facts),
        [PM, CARD],
        "the default PaymentMethod first"
    );
    assert_eq!(facts["fetchDefaultCreditCard"]["card"]["last4"], "4444");
    assert_eq!(facts["fetchBankAccount"]["last4"], "3000");
    assert_eq!(facts["fetchMetadata"]["status"], 200);
    let invoice = &facts["getInvoices"]["data"][0];
    assert_eq!(
        invoice,
        &json!({"id": INVOICE, "status": "paid", "paid": true, "subscription": SUBSCRIPTION,
                "payment_intent": INTENT, "charge": CHARGE, "amount_paid": 1900, "total": 1900,
                "number": "PSYNC01-0001", "hosted_invoice_url": invoice["hosted_invoice_url"]})
    );
    let receipt = &facts["getReceipts"]["data"][0];
    assert_eq!(
        (&receipt["id"], &receipt["invoice"], &receipt["amount"]),
        (&json!(CHARGE), &json!(INVOICE), &json!(1900))
    );
    assert!(receipt["receipt_url"].is_string());

    let updated = &legacy[1].1;
    assert_eq!(updated["getSubcription"]["cancel_at_period_end"], true);
    assert_eq!(
        updated["getBucket"]["subscription"]["cancel_at_period_end"],
        true
    );
    assert_eq!(updated["fetchCreditCard"]["card"]["address_city"], "Lyon");

    let deleted = &legacy[2].1;
    assert_eq!(deleted["getBucket"]["plan"], "free");
    assert_eq!(
        deleted["getSubcriptionState"]["state"]["status"],
        "canceled"
    );
    assert_eq!(deleted["fetchBankAccount"]["status"], 404);
    assert_eq!(
        card_ids(deleted),
        [CARD],
        "the detached PaymentMethod is gone"
    );
    assert_eq!(deleted["getReceipts"]["data"][0]["invoice"], INVOICE);
}

both!(every_read_route_answers_the_same_facts_at_both_versions);
