//! A batch of events applied together (`events::apply_local_many`, what the
//! webhook intake and the worker do) ends exactly where applying the same
//! events one by one ends: the same outcome for each event and the same rows.

use paysync::cfg::SyncSettings;
use paysync::store::Db;
use paysync::store::WriteOutcome;
use paysync::store::buckets::{Member, Role, new_id};
use paysync::sync::events::{self, Applied, Event, Local};
use proptest::strategy::{Strategy, ValueTree};
use serde_json::{Value, json};
use sqlx::Row;

use crate::both;
use crate::common::*;
use crate::webhooks::{card, event, history, op_strategy, shuffle};

/// Every mirrored table as text, without the sync time (which differs).
async fn rows(db: &Db) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "stripe_customers",
        "stripe_sources",
        "stripe_subscriptions",
        "stripe_invoices",
        "stripe_charges",
    ] {
        let sql = format!(
            "SELECT id, bucket_id, customer_id, status, parent_id, created, data, deleted, wm_created, wm_event, view \
             FROM {table} ORDER BY id"
        );
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&db.pool)
            .await
            .unwrap()
        {
            out.push(format!(
                "{table} {} bucket={:?} customer={} status={:?} parent={:?} created={} deleted={} wm={}/{} view={:?} data={}",
                r.get::<String, _>("id"),
                r.get::<Option<String>, _>("bucket_id"),
                r.get::<String, _>("customer_id"),
                r.get::<Option<String>, _>("status"),
                r.get::<Option<String>, _>("parent_id"),
                r.get::<i64, _>("created"),
                r.get::<i64, _>("deleted"),
                r.get::<i64, _>("wm_created"),
                r.get::<String, _>("wm_event"),
                r.get::<Option<String>, _>("view"),
                r.get::<String, _>("data"),
            ));
        }
    }
    out
}

/// A database with a bucket linked to each of `customers`, and one more
/// bucket that a customer's own `metadata.bucket_id` will link during the batch.
async fn prepared(b: Backend, customers: &[String], bucket: &str, later: &str) -> (TestDb, Db) {
    let test_db = TestDb::new(b).await;
    let db = Db::open(&test_db.url).await.unwrap();
    let owner = [Member {
        user_id: "alice".into(),
        role: Role::Owner,
    }];
    db.put_bucket(bucket, "batch", &owner).await.unwrap();
    db.put_bucket(later, "linked by metadata", &owner)
        .await
        .unwrap();
    for c in customers {
        // One bucket per customer: the first link wins, so give each its own.
        let own = format!("{bucket}_{c}");
        db.put_bucket(&own, "batch", &owner).await.unwrap();
        db.link_customer(&own, c).await.unwrap();
    }
    (test_db, db)
}

/// The events of several generated histories plus the cases that leave the
/// plain path: a customer of no bucket, a customer linked by its metadata
/// mid-batch, a detached payment method (no customer in the object), a
/// customer deletion followed by its card's update, and a type not mirrored.
fn events(seed: u64, customers: &[String], (bucket, later): (&str, &str)) -> Vec<String> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut all = Vec::new();
    let t0 = 1_700_000_000;
    for (case, customer) in customers.iter().enumerate() {
        let ops = proptest::collection::vec(op_strategy(), 0..25)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        all.extend(history(seed * 100 + case as u64, customer, &ops, t0).events);
    }
    let gone = &customers[0];
    let taken = format!("{bucket}_{}", customers[1]);
    let evt = |n: &str| format!("evt_x{seed}_{n}");
    // A customer's sign-up naming a bucket, and its card a second later.
    let named = |n: &str, customer: &str, bucket: &str| {
        [
            event(
                &evt(n),
                "customer.created",
                t0,
                json!({"id": customer, "object": "customer", "metadata": {"bucket_id": bucket}}),
            ),
            event(
                &evt(&format!("{n}_card")),
                "customer.source.created",
                t0 + 1,
                card(&customer.replace("cus_", "card_"), customer, n),
            ),
        ]
    };
    all.extend(named("meta", "cus_meta", later));
    // Names the same bucket as cus_meta: the first of the two in the batch links it.
    all.extend(named("rival", "cus_rival", later));
    // Names a bucket that has a customer already: no link.
    all.extend(named("taken", "cus_taken", &taken));
    all.extend([
        event(
            &evt("stranger"),
            "customer.source.created",
            t0,
            card("card_stranger", "cus_stranger", "s"),
        ),
        event(
            &evt("pm"),
            "payment_method.attached",
            t0,
            json!({"id": "pm_x", "object": "payment_method", "customer": gone, "type": "card"}),
        ),
        event(
            &evt("pm_gone"),
            "payment_method.detached",
            t0 + 2,
            json!({"id": "pm_x", "object": "payment_method", "customer": null, "type": "card"}),
        ),
        event(
            &evt("gone"),
            "customer.deleted",
            t0 + 30,
            json!({"id": gone, "object": "customer", "deleted": true}),
        ),
        event(
            &evt("late"),
            "customer.source.updated",
            t0 + 31,
            card("card_late", gone, "late"),
        ),
        event(
            &evt("other"),
            "balance.available",
            t0,
            json!({"object": "balance"}),
        ),
    ]);
    shuffle(&mut all, seed);
    all
}

/// Apply `evs` one by one (each in its own transaction, then what the inbox
/// does once a customer is linked by its metadata: its events that were
/// ignored before the link are applied again) and as one batch, on two
/// databases prepared alike; assert the same outcome for each event and the
/// same rows. Returns the batch's outcomes and rows.
async fn compare(
    b: Backend,
    case: &str,
    customers: &[String],
    (bucket, later): (&str, &str),
    evs: &[Event<'_>],
) -> (Vec<Local>, Vec<String>) {
    let sync = SyncSettings::default();
    let (_one_db, one) = prepared(b, customers, bucket, later).await;
    let mut each = Vec::new();
    for e in evs {
        let mut tx = one.begin_write().await.unwrap();
        let mut known = events::read_ahead(&mut tx, std::slice::from_ref(e))
            .await
            .unwrap();
        each.push(
            events::apply_local(&mut tx, &sync, e, &mut known)
                .await
                .unwrap(),
        );
        tx.commit().await.unwrap();
    }
    for (e, outcome) in evs.iter().zip(each.iter_mut()) {
        let customer = paysync::sync::apply::customer_of(e.object);
        if *outcome == Local::Done(Applied::Ignored)
            && let Some(c) = customer
            && one.bucket_of_customer(c).await.unwrap().is_some()
        {
            let mut tx = one.begin_write().await.unwrap();
            *outcome = events::apply_local(&mut tx, &sync, e, &mut Default::default())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }

    let (_many_db, many) = prepared(b, customers, bucket, later).await;
    let mut tx = many.begin_write().await.unwrap();
    let mut known = events::read_ahead(&mut tx, evs).await.unwrap();
    let together = events::apply_local_many(&mut tx, &sync, evs, &mut known)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for ((e, a), b) in evs.iter().zip(&each).zip(&together) {
        assert_eq!(a, b, "{case}: outcome of {} {}", e.id, e.r#type);
    }
    assert_eq!(each.len(), together.len());
    let (want, got) = (rows(&one).await, rows(&many).await);
    assert_eq!(want, got, "{case}: the same rows");
    (together, got)
}

fn parsed(bodies: &[String]) -> Vec<Value> {
    bodies
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect()
}

async fn a_batch_ends_where_one_by_one_ends(b: Backend) {
    let mut outcomes = Vec::new();
    for seed in 1..=4u64 {
        let customers: Vec<String> = (0..6).map(|i| format!("cus_b{seed}_{i}")).collect();
        let (bucket, later) = (new_id(), new_id());
        let values = parsed(&events(seed, &customers, (&bucket, &later)));
        let evs: Vec<Event> = values.iter().map(|v| Event::parse(v).unwrap()).collect();
        let case = format!("seed {seed}");
        let (together, got) = compare(b, &case, &customers, (&bucket, &later), &evs).await;
        assert!(got.len() > customers.len() * 3, "the histories stored rows");
        // cus_meta and cus_rival name the same bucket: the first in the batch gets it.
        let linked_card = match got
            .iter()
            .any(|r| r.starts_with("stripe_customers cus_meta "))
        {
            true => "stripe_sources card_meta ",
            false => "stripe_sources card_rival ",
        };
        assert!(
            got.iter().any(|r| r.starts_with(linked_card)),
            "seed {seed}: the card of the customer linked by the batch is stored, whichever came first"
        );
        let linked = got
            .iter()
            .filter(|r| {
                r.starts_with("stripe_customers cus_meta ")
                    || r.starts_with("stripe_customers cus_rival ")
            })
            .count();
        assert_eq!(
            linked, 1,
            "seed {seed}: one of two customers naming the same bucket gets it"
        );
        assert!(
            !got.iter()
                .any(|r| r.starts_with("stripe_customers cus_taken ")),
            "seed {seed}: a customer naming a bucket that has one is not stored"
        );
        outcomes.extend(together);
    }
    // The batches held what makes the paths differ: rows written, rows left
    // stale, ties only Stripe can order, events the plain path does not take.
    for (what, seen) in [
        (
            "written",
            outcomes.contains(&Local::Done(Applied::Stored(WriteOutcome::Written))),
        ),
        (
            "stale",
            outcomes.contains(&Local::Done(Applied::Stored(WriteOutcome::Stale))),
        ),
        ("a tie", outcomes.contains(&Local::NeedsStripe)),
        ("ignored", outcomes.contains(&Local::Done(Applied::Ignored))),
        (
            "not mirrored",
            outcomes.contains(&Local::Done(Applied::NotMirrored)),
        ),
    ] {
        assert!(seen, "no event came out {what}");
    }
}

both!(a_batch_ends_where_one_by_one_ends);

/// An object that changes customer within a batch keeps its order: a
/// payment method attached to a customer of a bucket, then to a customer of
/// no bucket (or to one the batch links after): the batch writes nothing of
/// a customer it has no bucket for ahead of its pending rows, except that
/// object's earlier version, which must be in its table first.
async fn an_object_moved_to_another_customer_keeps_its_order(b: Backend) {
    let customers = vec!["cus_mover".to_string()];
    let (bucket, later) = (new_id(), new_id());
    let t0 = 1_700_000_000;
    let pm = |customer: &str| {
        json!({"id": "pm_moved", "object": "payment_method", "customer": customer, "type": "card",
               "card": {"brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2031}})
    };
    let cases = [
        vec![
            event("evt_m1", "payment_method.attached", t0, pm("cus_mover")),
            event(
                "evt_m2",
                "payment_method.attached",
                t0 + 1,
                pm("cus_nobody"),
            ),
        ],
        vec![
            event("evt_m1", "payment_method.attached", t0, pm("cus_mover")),
            event("evt_m2", "payment_method.attached", t0 + 1, pm("cus_meta")),
            event(
                "evt_m3",
                "customer.created",
                t0,
                json!({"id": "cus_meta", "object": "customer", "metadata": {"bucket_id": later}}),
            ),
        ],
    ];
    for (n, bodies) in cases.iter().enumerate() {
        let values = parsed(bodies);
        let evs: Vec<Event> = values.iter().map(|v| Event::parse(v).unwrap()).collect();
        let (_, got) = compare(b, &format!("case {n}"), &customers, (&bucket, &later), &evs).await;
        let row = got
            .iter()
            .find(|r| r.starts_with("stripe_sources pm_moved "))
            .unwrap();
        assert!(row.contains("wm=1700000001/evt_m2"), "case {n}: {row}");
    }
}

both!(an_object_moved_to_another_customer_keeps_its_order);
