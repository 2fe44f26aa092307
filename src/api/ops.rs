//! Sync health for the admin token (`GET /admin/ops`, what the `/ops` page
//! shows) and the replay of a failed or dead event. Everything shared by the
//! replicas (inbox, cursors, the last reconcile's drift) is read from the
//! database, so every replica answers the same; only the Stripe call counts
//! are this process's own (each replica has its own request budget).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use crate::api::Tag;
use crate::api::access::AdminAuth;
use crate::api::contract::*;
use crate::app::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::store::{Db, now};
use crate::stripe::stats;
use crate::sync::{catchup, reconcile};

/// Minutes of history shown (deliveries, apply lag, Stripe calls).
const MINUTES: i64 = stats::MINUTES as i64;
/// Failed and dead events listed at most.
const PROBLEMS: i64 = 100;

/// When this process started (the Stripe counts are since then).
static STARTED: LazyLock<i64> = LazyLock::new(now);

/// Note the process start (called when the app is built).
pub fn mark_start() {
    LazyLock::force(&STARTED);
}

/// One minute of a per-minute series.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct MinuteCount {
    /// Unix time of the minute's start.
    pub start: i64,
    pub count: i64,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct InboxHealth {
    /// Events stored and not applied yet (pending, or failed and waiting for a retry).
    pub depth: i64,
    /// Receive time of the oldest of them.
    pub oldest_unapplied_at: Option<i64>,
    /// Its age in seconds (0 when nothing waits).
    pub oldest_unapplied_seconds: i64,
    /// Events whose apply failed and will be retried.
    pub failed: i64,
    /// Events given up on after `PAYSYNC_EVENT_MAX_ATTEMPTS`; replay them.
    pub dead: i64,
}

/// From receipt to applied, over the events received in the window and applied
/// (0 s for events applied in the delivery's own transaction; whole seconds).
#[derive(Object, Debug, Clone)]
pub struct ApplyLag {
    pub window_seconds: i64,
    pub applied: i64,
    pub average_seconds: f64,
    pub max_seconds: i64,
}

/// An event that failed to apply.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ProblemEvent {
    pub id: String,
    #[oai(rename = "type")]
    pub r#type: String,
    /// `failed` (will be retried at `next_attempt_at`) or `dead` (replay it).
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub next_attempt_at: i64,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct CatchupHealth {
    /// When the Events-API catch-up last completed.
    pub last_run_at: Option<i64>,
    /// Its cursor: the newest event time it has seen.
    pub cursor: Option<i64>,
    /// How far behind now the cursor is, in seconds (alert when it keeps growing).
    pub cursor_age_seconds: Option<i64>,
}

#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ReconcileHealth {
    /// When the last full reconcile completed.
    pub last_success_at: Option<i64>,
    /// Rows it had to write or tombstone, per kind (drift: what webhooks missed).
    pub drift: BTreeMap<String, u64>,
    /// A full reconcile under way or interrupted: the last bucket it finished.
    pub in_progress_after: Option<String>,
}

/// One minute of Stripe calls of this process (0 where none were made).
#[derive(Object, Debug, Clone)]
pub struct StripeMinute {
    pub start: i64,
    pub calls: u64,
    pub rate_limited: u64,
}

/// This process's calls to Stripe (each replica counts its own).
#[derive(Object, Debug, Clone)]
pub struct StripeHealth {
    /// The API version every call is pinned to (`Stripe-Version`).
    pub api_version: String,
    /// Counting since (this process's start).
    pub since: i64,
    pub calls: u64,
    /// Calls Stripe answered 429 (rate limited).
    pub rate_limited: u64,
    /// Per minute, the last minutes, oldest first.
    pub minutes: Vec<StripeMinute>,
}

/// Sync health: the inbox, the apply worker, the catch-up and reconcile jobs, Stripe.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct SyncHealth {
    /// Unix time of this answer.
    pub now: i64,
    /// Events stored from webhook deliveries per minute, the last minutes, oldest first.
    pub webhooks_per_minute: Vec<MinuteCount>,
    pub inbox: InboxHealth,
    pub apply_lag: ApplyLag,
    /// Failed and dead events (dead first), newest first within each.
    pub problems: Vec<ProblemEvent>,
    pub catchup: CatchupHealth,
    pub reconcile: ReconcileHealth,
    pub stripe: StripeHealth,
}

#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct Replayed {
    pub id: String,
    /// The event's state now (`pending` when it was put back in line).
    pub state: String,
    /// False when the event was neither failed nor dead (applied already, say): nothing done.
    pub requeued: bool,
}

impl Example for SyncHealth {
    fn example() -> Self {
        let t = 1_722_855_330;
        SyncHealth {
            now: t,
            webhooks_per_minute: vec![
                MinuteCount {
                    start: t - 90,
                    count: 12,
                },
                MinuteCount {
                    start: t - 30,
                    count: 3,
                },
            ],
            inbox: InboxHealth {
                depth: 1,
                oldest_unapplied_at: Some(t - 4),
                oldest_unapplied_seconds: 4,
                failed: 0,
                dead: 1,
            },
            apply_lag: ApplyLag {
                window_seconds: 60 * MINUTES,
                applied: 15,
                average_seconds: 0.2,
                max_seconds: 2,
            },
            problems: vec![ProblemEvent {
                id: "evt_1PkQAdLz2mXv8Rb4cE5fG6hI".into(),
                r#type: "invoice.paid".into(),
                state: "dead".into(),
                attempts: 8,
                last_error: Some("stripe error: connection refused".into()),
                received_at: t - 3600,
                next_attempt_at: t - 60,
            }],
            catchup: CatchupHealth {
                last_run_at: Some(t - 20),
                cursor: Some(t - 25),
                cursor_age_seconds: Some(25),
            },
            reconcile: ReconcileHealth {
                last_success_at: Some(t - 40_000),
                drift: BTreeMap::from([
                    ("invoice".to_string(), 1),
                    ("subscription".to_string(), 0),
                ]),
                in_progress_after: None,
            },
            stripe: StripeHealth {
                api_version: "2024-06-20".into(),
                since: t - 86_400,
                calls: 412,
                rate_limited: 0,
                minutes: vec![StripeMinute {
                    start: t - 30,
                    calls: 2,
                    rate_limited: 0,
                }],
            },
        }
    }
}

impl Example for Replayed {
    fn example() -> Self {
        Replayed {
            id: "evt_1PkQAdLz2mXv8Rb4cE5fG6hI".into(),
            state: "pending".into(),
            requeued: true,
        }
    }
}

statuses! {
    AdminSyncHealth: "sync health, as the /ops page shows it" {
        401 => ADMIN_UNAUTHORIZED,
        404 => ADMIN_OFF,
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

statuses! {
    AdminReplayEvent: "the event, back in line when it was failed or dead" {
        401 => ADMIN_UNAUTHORIZED,
        404 => "no such event in the inbox, or the admin API is off (PAYSYNC_ADMIN_TOKEN is not set)",
        500 => DATABASE_ERROR,
        503 => UNAVAILABLE,
    }
}

/// The starts of the last `MINUTES` minutes (the current one last).
fn minute_starts(t: i64) -> impl Iterator<Item = i64> {
    let current = t - t.rem_euclid(60);
    (0..MINUTES).rev().map(move |i| current - 60 * i)
}

/// The last `MINUTES` minutes, oldest first, with 0 where nothing was counted.
fn per_minute(t: i64, counted: &[(i64, i64)]) -> Vec<MinuteCount> {
    minute_starts(t)
        .map(|start| MinuteCount {
            start,
            count: counted
                .iter()
                .filter(|(m, _)| *m == start)
                .map(|(_, n)| n)
                .sum(),
        })
        .collect()
}

fn int_cursor(c: Option<(String, i64)>) -> Option<(i64, i64)> {
    c.and_then(|(v, at)| Some((v.parse().ok()?, at)))
}

pub async fn health(db: &Db, api_version: &str) -> ApiResult<SyncHealth> {
    let t = now();
    let first_minute = t - t.rem_euclid(60) - 60 * (MINUTES - 1);
    let webhooks = db.webhook_minutes(first_minute).await?;
    let (depth, oldest) = db.inbox_backlog().await?;
    let lag_window = 60 * MINUTES;
    let lag = db.apply_lag(t - lag_window).await?;
    let catchup = int_cursor(db.cursor(catchup::CURSOR).await?);
    let last_reconcile = int_cursor(db.cursor(reconcile::CURSOR_LAST_SUCCESS).await?);
    let drift = db
        .cursor(reconcile::CURSOR_LAST_DRIFT)
        .await?
        .and_then(|(v, _)| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let (calls, rate_limited, minutes) = stats::snapshot(t);
    Ok(SyncHealth {
        now: t,
        webhooks_per_minute: per_minute(t, &webhooks),
        inbox: InboxHealth {
            depth,
            oldest_unapplied_at: oldest,
            oldest_unapplied_seconds: oldest.map(|o| (t - o).max(0)).unwrap_or(0),
            failed: db.count_events("failed").await?,
            dead: db.count_events("dead").await?,
        },
        apply_lag: ApplyLag {
            window_seconds: lag_window,
            applied: lag.applied,
            average_seconds: if lag.applied > 0 {
                lag.total_seconds as f64 / lag.applied as f64
            } else {
                0.0
            },
            max_seconds: lag.max_seconds,
        },
        problems: db
            .problem_events(PROBLEMS)
            .await?
            .into_iter()
            .map(|p| ProblemEvent {
                id: p.id,
                r#type: p.r#type,
                state: p.state,
                attempts: p.attempts,
                last_error: p.last_error,
                received_at: p.received_at,
                next_attempt_at: p.next_attempt_at,
            })
            .collect(),
        catchup: CatchupHealth {
            last_run_at: catchup.map(|(_, at)| at),
            cursor: catchup.map(|(c, _)| c),
            cursor_age_seconds: catchup.map(|(c, _)| (t - c).max(0)),
        },
        reconcile: ReconcileHealth {
            last_success_at: last_reconcile.map(|(v, _)| v),
            drift,
            in_progress_after: db.cursor(reconcile::CURSOR_PROGRESS).await?.map(|(v, _)| v),
        },
        stripe: StripeHealth {
            api_version: api_version.to_string(),
            since: *STARTED,
            calls,
            rate_limited,
            minutes: minute_starts(t)
                .map(|start| {
                    let m = minutes.iter().find(|m| m.start == start);
                    StripeMinute {
                        start,
                        calls: m.map_or(0, |m| m.calls),
                        rate_limited: m.map_or(0, |m| m.rate_limited),
                    }
                })
                .collect(),
        },
    })
}

pub struct OpsApi;

#[OpenApi(tag = "Tag::Admin")]
impl OpsApi {
    /// Sync health: webhook deliveries per minute, the inbox (depth, oldest
    /// unapplied event, failed and dead events), apply lag, the last catch-up
    /// and full reconcile (with its drift per kind), and this process's Stripe
    /// calls and 429s. What the `/ops` page shows.
    #[oai(path = "/admin/ops", method = "get", operation_id = "adminSyncHealth")]
    async fn health(
        &self,
        ctx: Data<&ApiContext>,
        _admin: AdminAuth,
    ) -> Reply<Json<SyncHealth>, AdminSyncHealth> {
        ok(Json(health(&ctx.db, ctx.stripe.api_version()).await?))
    }

    /// Put a failed or dead event back in line with its attempts reset, and wake
    /// the apply worker. An event in another state is left alone (`requeued: false`).
    #[oai(
        path = "/admin/events/:event_id/replay",
        method = "post",
        operation_id = "adminReplayEvent"
    )]
    async fn replay(
        &self,
        ctx: Data<&ApiContext>,
        _admin: AdminAuth,
        event_id: Path<String>,
    ) -> Reply<Json<Replayed>, AdminReplayEvent> {
        let requeued = ctx.db.requeue_event(&event_id).await?;
        let event =
            ctx.db.event(&event_id).await?.ok_or_else(|| {
                ApiError::not_found("event_not_found", "no such event in the inbox")
            })?;
        if requeued {
            tracing::info!(event = %event.id, r#type = %event.r#type, "event put back in line from /ops");
            ctx.wake.notify_one();
        }
        ok(Json(Replayed {
            id: event.id,
            state: event.state,
            requeued,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_zero_filled_oldest_first() {
        let t = 1_800_000_030; // 30 s into a minute
        let m = t - 30;
        let got = per_minute(t, &[(m, 4), (m - 120, 2), (m - 3600, 9)]);
        assert_eq!(got.len(), MINUTES as usize);
        assert_eq!(got.last(), Some(&MinuteCount { start: m, count: 4 }));
        assert_eq!(got[got.len() - 3].count, 2);
        assert_eq!(got.iter().map(|c| c.count).sum::<i64>(), 6);
        assert!(got.windows(2).all(|w| w[1].start - w[0].start == 60));
    }
}
