//! Signed webhook deliveries posted at a fixed concurrency: a stream of
//! events (Stripe's sign-ups, `signup`, or the compact stream below) taken in
//! order by the connections. Measures accepted events/s, the server's CPU per
//! event, the time until the inbox has applied them all, and, for a sample of
//! new-card events, the delay from the 200 answer to the card being listed by
//! the read route.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use paysync::store::Db;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Mutex;

use crate::load;
use crate::seed::{bucket_id, customer_id};
use crate::standin::{card, customer_object};

pub const PER_CUSTOMER: usize = 10;

pub struct Event {
    pub body: Bytes,
    /// A new card to look for in `GET …/payment/cards` of this bucket after the 200.
    pub watch: Option<(usize, String)>,
}

fn event(run: &str, i: usize, k: usize, ty: &str, created: i64, obj: Value) -> (String, Bytes) {
    let id = format!("evt_bench{run}_{i:06}_{k}");
    let body = json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": created,
        "livemode": false, "pending_webhooks": 1, "type": ty,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": obj},
    });
    (id, Bytes::from(body.to_string()))
}

/// The compact stream (the webhook measure before Stripe's shapes): events
/// of 2024-06-20 shape with a few fields each (~0.5 KB), of customers that
/// already have a bucket, shuffled. Customer `i`'s events: 10 kinds,
/// `created` one second apart (so none ties with another event of the same
/// object), all newer than the seed.
pub fn compact(run: &str, customers: usize, watch_every: usize) -> Vec<Event> {
    let base = paysync::store::now() + 1;
    let mut all: Vec<Event> = (0..customers)
        .flat_map(|i| events(run, i, base, i % watch_every == 0))
        .collect();
    all.shuffle(&mut rand::rng());
    all
}

fn events(run: &str, i: usize, base: i64, watch: bool) -> Vec<Event> {
    let cus = customer_id(i);
    let t = |k: usize| base + k as i64;
    let sub = |status: &str, k: usize| {
        json!({"id": format!("sub_wh{run}{i:06}"), "object": "subscription", "customer": cus,
               "status": status, "created": t(2), "current_period_start": t(2), "current_period_end": t(2) + 2_592_000,
               "cancel_at_period_end": false, "canceled_at": null, "livemode": false, "metadata": {},
               "items": {"object": "list", "data": [{"id": format!("si_wh{run}{i:06}"), "object": "subscription_item",
                   "plan": {"id": "paysync_starter_monthly", "object": "plan", "amount": 1900, "interval": "month"}}]},
               "plan": {"id": "paysync_starter_monthly", "object": "plan", "amount": 1900, "interval": "month"},
               "latest_invoice": format!("in_wh{run}{i:06}"), "updated_marker": k})
    };
    let inv = |status: &str| {
        json!({"id": format!("in_wh{run}{i:06}"), "object": "invoice", "customer": cus, "status": status,
               "subscription": format!("sub_wh{run}{i:06}"), "created": t(3), "amount_due": 1900,
               "amount_paid": if status == "paid" { 1900 } else { 0 }, "currency": "usd", "paid": status == "paid",
               "hosted_invoice_url": "https://invoice.example.com/x", "number": format!("WH{i:06}"),
               "lines": {"object": "list", "data": []}, "livemode": false, "metadata": {}})
    };
    let new_card_id = format!("card_wh{run}{i:06}");
    let mut new_card = card(i, 9, &cus, t(1));
    new_card["id"] = json!(new_card_id);
    let mut cust_a = customer_object(i, t(0) - 86_400, None);
    cust_a["email"] = json!(format!("changed+{i}@example.com"));
    let mut cust_b = cust_a.clone();
    cust_b["metadata"]["vat_number"] = json!("FR40303265045");
    let charge = json!({"id": format!("ch_wh{run}{i:06}"), "object": "charge", "customer": cus, "amount": 1900,
        "currency": "usd", "status": "succeeded", "paid": true, "captured": true, "created": t(5),
        "invoice": format!("in_wh{run}{i:06}"), "receipt_url": "https://pay.example.com/r/x",
        "payment_method": new_card_id, "livemode": false, "metadata": {}});
    let pm = json!({"id": format!("pm_wh{run}{i:06}"), "object": "payment_method", "type": "card",
        "customer": cus, "created": t(8), "livemode": false, "metadata": {},
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031, "country": "US"},
        "billing_details": {"name": "Bench PM"}});
    let specs: Vec<(&str, Value)> = vec![
        ("customer.updated", cust_a),
        ("customer.source.created", new_card),
        ("customer.subscription.created", sub("incomplete", 2)),
        ("invoice.created", inv("draft")),
        ("invoice.finalized", inv("open")),
        ("charge.succeeded", charge),
        ("invoice.paid", inv("paid")),
        ("customer.subscription.updated", sub("active", 7)),
        ("payment_method.attached", pm),
        ("customer.updated", cust_b),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(k, (ty, obj))| {
            // Each object's events carry their own seconds; a later version of an object is a later second.
            let created = match ty {
                "invoice.finalized" => t(4),
                "invoice.paid" => t(6),
                "customer.subscription.updated" => t(7),
                "customer.updated" if k == 9 => t(9),
                _ => t(k),
            };
            let (_, body) = event(run, i, k, ty, created, obj);
            Event {
                body,
                watch: (watch && k == 1).then(|| (i, new_card_id.clone())),
            }
        })
        .collect()
}

/// `t=…,v1=…` over `"{t}.{body}"`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let t = paysync::store::now();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The events to post, in order, and how many there are.
pub struct Stream {
    pub events: Box<dyn Iterator<Item = Event> + Send>,
    pub total: usize,
    /// Their ids start with `evt_bench{run}_`.
    pub run: String,
}

pub struct Params<'a> {
    pub addr: SocketAddr,
    pub secret: &'a str,
    pub concurrency: usize,
    /// The server under test (its CPU time is measured).
    pub server: u32,
    /// Read route of a bucket's cards, with `{id}` (None: look in the cache table instead).
    pub cards_path: Option<String>,
    pub token: Arc<dyn Fn(usize) -> String + Send + Sync>,
}

/// A run's id part of its event ids (`evt_bench{run}_…`).
pub fn run_id() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xffffff)
}

pub async fn run(db: &Db, p: Params<'_>, stream: Stream) -> anyhow::Result<Value> {
    let Stream { events, total, run } = stream;
    let queue = Arc::new(Mutex::new(events));
    let accepted = Arc::new(AtomicUsize::new(0));
    let visible = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        600_000_000,
        3,
    )?));
    let not_seen = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut post_hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let started = Instant::now();
    let cpu_before = load::cpu_seconds(p.server);
    let pg_before = postgres_cpu(db).await?;
    let mut workers = Vec::new();
    let watchers = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..p.concurrency {
        let (queue, accepted, first_error) = (queue.clone(), accepted.clone(), first_error.clone());
        let (visible, not_seen, watchers) = (visible.clone(), not_seen.clone(), watchers.clone());
        let (addr, secret) = (p.addr, p.secret.to_string());
        let cards_path = p.cards_path.clone();
        let token = p.token.clone();
        let db = db.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("hist");
            let mut sender = load::connect::<Full<Bytes>>(addr).await?;
            loop {
                let Some(ev) = queue.lock().await.next() else {
                    break;
                };
                let sig = signature(&secret, &ev.body);
                let t = Instant::now();
                let mut tries = 0;
                let status = loop {
                    tries += 1;
                    match load::post(
                        &mut sender,
                        "/webhooks/stripe",
                        &[("stripe-signature", &sig)],
                        ev.body.clone(),
                    )
                    .await
                    {
                        Ok((200, _)) => break 200,
                        Ok((s, body)) => {
                            first_error.lock().await.get_or_insert_with(|| {
                                format!("{s}: {}", String::from_utf8_lossy(&body))
                            });
                            // Stripe retries a 5xx later; so do we, a few times.
                            if s >= 500 && tries < 5 {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                            break s;
                        }
                        Err(e) => {
                            first_error
                                .lock()
                                .await
                                .get_or_insert_with(|| e.to_string());
                            sender = load::connect::<Full<Bytes>>(addr).await?;
                            if tries < 5 {
                                continue;
                            }
                            break 0;
                        }
                    }
                };
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                if status != 200 {
                    continue;
                }
                accepted.fetch_add(1, Ordering::Relaxed);
                if let Some((bucket, card_id)) = ev.watch {
                    let acked = Instant::now();
                    let (visible, not_seen) = (visible.clone(), not_seen.clone());
                    let (cards_path, token, db) = (cards_path.clone(), token.clone(), db.clone());
                    watchers.lock().await.push(tokio::spawn(async move {
                        let seen = watch(
                            addr,
                            &db,
                            cards_path.as_deref(),
                            bucket,
                            &token(bucket),
                            &card_id,
                        )
                        .await;
                        match seen {
                            true => {
                                let _ = visible
                                    .lock()
                                    .await
                                    .record(acked.elapsed().as_micros().max(1) as u64);
                            }
                            false => {
                                not_seen.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }));
                }
            }
            anyhow::Ok(hist)
        }));
    }
    for w in workers {
        post_hist.add(&w.await??)?;
    }
    let posted_in = started.elapsed();
    let cpu_posting = cpu_before
        .zip(load::cpu_seconds(p.server))
        .map(|(a, b)| b - a);
    let accepted = accepted.load(Ordering::Relaxed);
    // Everything accepted is applied once the inbox holds nothing pending or
    // failed (an index-only count; the bodies are not read).
    let deadline = Instant::now() + Duration::from_secs(300);
    let all_applied_in = loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM stripe_events WHERE state IN ('pending', 'failed')",
        )
        .fetch_one(&db.pool)
        .await?;
        if waiting == 0 {
            break Some(started.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let cpu_all = cpu_before
        .zip(load::cpu_seconds(p.server))
        .map(|(a, b)| b - a);
    let pg_cpu = match (pg_before, postgres_cpu(db).await?) {
        (Some(before), Some(after)) => Some(
            after
                .iter()
                .map(|(pid, cpu)| cpu - before.get(pid).unwrap_or(&0.0))
                .sum::<f64>(),
        ),
        _ => None,
    };
    // This run's events by state (a range of the primary key).
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*) FROM stripe_events WHERE id > $1 AND id < $2 GROUP BY state",
    )
    .bind(format!("evt_bench{run}_"))
    .bind(format!("evt_bench{run}`"))
    .fetch_all(&db.pool)
    .await?;
    let applied: i64 = rows
        .iter()
        .filter(|(s, _)| s == "applied")
        .map(|(_, n)| *n)
        .sum();
    let states = json!(
        rows.into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
    );
    let per_event_us =
        |cpu: Option<f64>| cpu.map(|c| (c * 1e6 / accepted.max(1) as f64 * 10.0).round() / 10.0);
    let pending_watchers: Vec<_> = std::mem::take(&mut *watchers.lock().await);
    for w in pending_watchers {
        let _ = w.await;
    }
    let vis = visible.lock().await;
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    Ok(json!({
        "events": total,
        "accepted": accepted,
        "accepted_per_s": (accepted as f64 / posted_in.as_secs_f64()).round(),
        "post_seconds": posted_in.as_secs_f64(),
        "post_p50_ms": q(&post_hist, 0.5),
        "post_p99_ms": q(&post_hist, 0.99),
        "applied": applied,
        "inbox_states": states,
        "all_applied_seconds": all_applied_in.map(|d| d.as_secs_f64()),
        "applied_per_s": all_applied_in.map(|d| (applied as f64 / d.as_secs_f64()).round()),
        // Less noisy than events/s on a shared machine: what one event costs the server.
        "server_cpu_us_per_event_posting": per_event_us(cpu_posting),
        "server_cpu_us_per_event_until_applied": per_event_us(cpu_all),
        // Postgres: its backends serving this database (the server's
        // connections, the bench's few polls), which a server CPU alone misses.
        "postgres_cpu_us_per_event_until_applied": per_event_us(pg_cpu),
        // The server's VmHWM so far (its peak RSS, any earlier measure included).
        "server_peak_rss_mib": crate::server::memory(p.server).1,
        "visible_samples": vis.len(),
        "visible_not_seen": not_seen.load(Ordering::Relaxed),
        "visible_p50_ms": q(&vis, 0.5),
        "visible_p99_ms": q(&vis, 0.99),
        "visible_max_ms": vis.max() as f64 / 1000.0,
        "first_error": first_error.lock().await.clone(),
    }))
}

/// Postgres: the CPU seconds so far of each backend connected to the
/// database, by pid (a backend started since counts from zero). None on SQLite.
async fn postgres_cpu(db: &Db) -> anyhow::Result<Option<std::collections::HashMap<i32, f64>>> {
    if db.backend != paysync::store::Backend::Postgres {
        return Ok(None);
    }
    let pids: Vec<(i32,)> = sqlx::query_as(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND backend_type = 'client backend'",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(Some(
        pids.into_iter()
            .filter_map(|(pid,)| Some((pid, load::cpu_seconds(pid as u32)?)))
            .collect(),
    ))
}

/// Poll until the card is listed (true), or give up after 60 s (false).
async fn watch(
    addr: SocketAddr,
    db: &Db,
    cards_path: Option<&str>,
    bucket: usize,
    token: &str,
    card_id: &str,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = cards_path.map(|p| p.replace("{id}", &bucket_id(bucket)));
    let mut sender = None;
    while Instant::now() < deadline {
        let seen = match &path {
            Some(path) => {
                if sender.is_none() {
                    sender = load::connect::<http_body_util::Empty<Bytes>>(addr)
                        .await
                        .ok();
                }
                match sender.as_mut() {
                    Some(s) => {
                        let req = hyper::Request::get(path.as_str())
                            .header("host", "127.0.0.1")
                            .header("authorization", format!("Bearer {token}"))
                            .body(http_body_util::Empty::new());
                        match req {
                            Ok(req) => match async {
                                s.ready().await?;
                                let resp = s.send_request(req).await?;
                                use http_body_util::BodyExt;
                                anyhow::Ok(resp.into_body().collect().await?.to_bytes())
                            }
                            .await
                            {
                                Ok(body) => {
                                    body.windows(card_id.len()).any(|w| w == card_id.as_bytes())
                                }
                                Err(_) => {
                                    sender = None;
                                    false
                                }
                            },
                            Err(_) => false,
                        }
                    }
                    None => false,
                }
            }
            None => matches!(
                db.object(paysync::store::Kind::Source, card_id).await,
                Ok(Some(row)) if !row.deleted
            ),
        };
        if seen {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}
