//! Calls this process made to Stripe, and how many Stripe rate-limited (429),
//! per minute over the last few minutes and since start: what the `/ops`
//! page shows. Per process on purpose: each replica has its own request
//! budget, so its own 429s are what tell whether that budget is too high.
//! (Prometheus has the same counts as `paysync_stripe_requests_total`.)

use std::collections::VecDeque;
use std::sync::Mutex;

/// Minutes kept.
pub const MINUTES: usize = 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Unix time of the minute's start.
    pub start: i64,
    pub calls: u64,
    pub rate_limited: u64,
}

#[derive(Debug, Default)]
struct Counts {
    minutes: VecDeque<Minute>,
    calls: u64,
    rate_limited: u64,
}

static COUNTS: Mutex<Counts> = Mutex::new(Counts {
    minutes: VecDeque::new(),
    calls: 0,
    rate_limited: 0,
});

/// Count one answered or failed attempt (`status` None: no answer).
pub fn record(now: i64, status: Option<u16>) {
    let limited = status == Some(429);
    let mut c = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    c.calls += 1;
    c.rate_limited += u64::from(limited);
    let start = now - now.rem_euclid(60);
    if !c.minutes.iter().any(|m| m.start == start) {
        c.minutes.push_back(Minute {
            start,
            ..Default::default()
        });
        c.minutes.make_contiguous().sort_by_key(|m| m.start);
        while c.minutes.len() > MINUTES {
            c.minutes.pop_front();
        }
    }
    if let Some(m) = c.minutes.iter_mut().find(|m| m.start == start) {
        m.calls += 1;
        m.rate_limited += u64::from(limited);
    }
}

/// Totals since start, and the minutes of the last [`MINUTES`] with calls, oldest first.
pub fn snapshot(now: i64) -> (u64, u64, Vec<Minute>) {
    let c = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let since = now - now.rem_euclid(60) - 60 * (MINUTES as i64 - 1);
    let minutes = c
        .minutes
        .iter()
        .filter(|m| m.start >= since)
        .copied()
        .collect();
    (c.calls, c.rate_limited, minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_and_429s_count() {
        // The counts are process-wide: look at differences only.
        let t = 1_900_000_020;
        let (calls0, limited0, _) = snapshot(t);
        record(t, Some(200));
        record(t + 1, Some(429));
        record(t + 60, None);
        let (calls, limited, minutes) = snapshot(t + 60);
        assert_eq!((calls - calls0, limited - limited0), (3, 1));
        let here: Vec<_> = minutes
            .iter()
            .filter(|m| m.start >= 1_900_000_000)
            .collect();
        assert_eq!(here.len(), 2);
        assert_eq!((here[0].calls, here[0].rate_limited), (2, 1));
        assert_eq!((here[1].calls, here[1].rate_limited), (1, 0));
        // Ten minutes later, those minutes are gone.
        let (_, _, later) = snapshot(t + 60 * 11);
        assert!(later.iter().all(|m| m.start > 1_900_000_060));
    }
}
