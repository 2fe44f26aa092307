//! The cards list answers, kept in memory per bucket.
//!
//! `GET …/payment/cards` is paysync's most frequent request and its answer
//! only changes when a row of the bucket changes. Reading it from the
//! database costs several index descents on SQLite and a round trip on
//! Postgres, several times what serving ready bytes costs. So the rendered
//! answer is kept here, with the users known to be members of the bucket,
//! and dropped when the database says the bucket changed (`store::changes`:
//! triggers on the four tables the answer is made of, whoever writes them).
//!
//! A reader that misses takes a [`Ticket`] *before* it reads the database and
//! may store what it read only if no change to that shard was seen since: a
//! read that raced a change can never be stored after the change's eviction.
//! The shard lock makes "check the ticket, then insert" and "evict" atomic.
//!
//! The cache holds at most `budget` bytes (answer, ids, a fixed overhead per
//! entry); past it, arbitrary entries make room (answers are cheap to read
//! again, and any choice is as good as another for uniformly hot buckets).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

/// A bucket's cards answer: `{"data":[…]}`, or None when it has no card.
pub type Answer = Option<Bytes>;

const SHARDS: usize = 16;
/// Bytes counted per entry besides its strings (map slot, vectors, `Bytes`).
const ENTRY_OVERHEAD: usize = 96;

pub struct CardsCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    budget_per_shard: usize,
    /// False while changes may go unseen (the Postgres listener is down):
    /// then nothing is served from here or stored.
    live: AtomicBool,
}

#[derive(Default)]
struct Shard {
    /// Bumped by every eviction in this shard.
    generation: u64,
    bytes: usize,
    entries: HashMap<Box<str>, Entry>,
}

struct Entry {
    answer: Answer,
    /// Users seen to be members when the answer was read.
    members: Vec<Box<str>>,
}

impl Entry {
    fn weight(&self, bucket: &str) -> usize {
        ENTRY_OVERHEAD
            + bucket.len()
            + self.answer.as_ref().map_or(0, Bytes::len)
            + self.members.iter().map(|m| m.len() + 16).sum::<usize>()
    }
}

/// What a lookup found.
pub enum Lookup {
    /// The answer; the user is a known member of the bucket.
    Hit(Answer),
    /// Read the database, then [`CardsCache::put`] with this ticket.
    Miss(Ticket),
}

/// Taken on a miss before reading the database (see the module doc).
pub struct Ticket {
    shard: usize,
    generation: u64,
}

impl CardsCache {
    /// A cache of at most `budget` bytes; `live` says whether it may serve yet.
    pub fn new(budget: usize, live: bool) -> CardsCache {
        CardsCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            budget_per_shard: budget / SHARDS,
            live: AtomicBool::new(live),
        }
    }

    fn shard_of(&self, bucket: &str) -> usize {
        (self.hasher.hash_one(bucket) as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock leaves a consistent map (every
        // mutation is a single insert/remove): keep using it.
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Start or stop serving. Either way everything is dropped: while not
    /// live, changes may have gone unseen.
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        self.clear();
    }

    pub fn get(&self, bucket: &str, user: &str) -> Lookup {
        let shard = self.shard_of(bucket);
        let guard = self.lock(shard);
        match guard.entries.get(bucket) {
            Some(entry) if self.is_live() && entry.members.iter().any(|m| &**m == user) => {
                Lookup::Hit(entry.answer.clone())
            }
            _ => Lookup::Miss(Ticket {
                shard,
                generation: guard.generation,
            }),
        }
    }

    /// Keep what a reader holding `ticket` read for `user`, unless the shard
    /// changed since the ticket was taken (then the read may be stale).
    pub fn put(&self, ticket: Ticket, bucket: &str, user: &str, answer: &Answer) {
        if !self.is_live() {
            return;
        }
        let mut guard = self.lock(ticket.shard);
        let shard = &mut *guard;
        if shard.generation != ticket.generation {
            return;
        }
        let before = shard.entries.get(bucket).map_or(0, |e| e.weight(bucket));
        let entry = shard.entries.entry(bucket.into()).or_insert_with(|| Entry {
            answer: answer.clone(),
            members: Vec::new(),
        });
        if !entry.members.iter().any(|m| &**m == user) {
            entry.members.push(user.into());
        }
        let after = entry.weight(bucket);
        shard.bytes = shard.bytes + after - before;
        while shard.bytes > self.budget_per_shard {
            let Some(victim) = shard.entries.keys().next().cloned() else {
                break;
            };
            if let Some(gone) = shard.entries.remove(&victim) {
                shard.bytes -= gone.weight(&victim);
            }
        }
    }

    /// The bucket changed: drop its answer.
    pub fn evict(&self, bucket: &str) {
        let mut guard = self.lock(self.shard_of(bucket));
        guard.generation += 1;
        if let Some(gone) = guard.entries.remove(bucket) {
            guard.bytes -= gone.weight(bucket);
        }
    }

    /// Changes may have been missed: drop everything.
    pub fn clear(&self) {
        for shard in 0..SHARDS {
            let mut guard = self.lock(shard);
            guard.generation += 1;
            guard.entries.clear();
            guard.bytes = 0;
        }
    }

    /// Bytes held (by the count above).
    pub fn bytes(&self) -> usize {
        (0..SHARDS).map(|s| self.lock(s).bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(s: &'static str) -> Answer {
        Some(Bytes::from_static(s.as_bytes()))
    }

    fn miss(cache: &CardsCache, bucket: &str, user: &str) -> Ticket {
        match cache.get(bucket, user) {
            Lookup::Miss(t) => t,
            Lookup::Hit(_) => panic!("expected a miss for {bucket}/{user}"),
        }
    }

    fn hit(cache: &CardsCache, bucket: &str, user: &str) -> Answer {
        match cache.get(bucket, user) {
            Lookup::Hit(a) => a,
            Lookup::Miss(_) => panic!("expected a hit for {bucket}/{user}"),
        }
    }

    #[test]
    fn an_answer_is_served_only_to_users_seen_as_members() {
        let cache = CardsCache::new(1 << 20, true);
        let t = miss(&cache, "b1", "alice");
        cache.put(t, "b1", "alice", &answer("{\"data\":[1]}"));
        assert_eq!(hit(&cache, "b1", "alice"), answer("{\"data\":[1]}"));
        // Bob was never seen as a member: his membership must be read.
        let t = miss(&cache, "b1", "bob");
        cache.put(t, "b1", "bob", &answer("{\"data\":[1]}"));
        assert_eq!(hit(&cache, "b1", "bob"), answer("{\"data\":[1]}"));
        cache.evict("b1");
        miss(&cache, "b1", "alice");
        miss(&cache, "b1", "bob");
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = CardsCache::new(1 << 20, true);
        let before = miss(&cache, "b1", "alice");
        // The bucket changes (and is evicted) while the reader reads the old rows.
        cache.evict("b1");
        cache.put(before, "b1", "alice", &answer("old"));
        let t = miss(&cache, "b1", "alice");
        cache.put(t, "b1", "alice", &answer("new"));
        assert_eq!(hit(&cache, "b1", "alice"), answer("new"));
    }

    #[test]
    fn nothing_is_served_or_kept_while_not_live() {
        let cache = CardsCache::new(1 << 20, true);
        let t = miss(&cache, "b1", "alice");
        cache.put(t, "b1", "alice", &None);
        assert_eq!(hit(&cache, "b1", "alice"), None);
        cache.set_live(false);
        let t = miss(&cache, "b1", "alice");
        cache.put(t, "b1", "alice", &None);
        miss(&cache, "b1", "alice");
    }

    #[test]
    fn the_budget_holds() {
        let budget = 64 * 1024;
        let cache = CardsCache::new(budget, true);
        let body: Answer = Some(Bytes::from(vec![b'x'; 1000]));
        for i in 0..1000 {
            let bucket = format!("bucket{i}");
            let t = miss(&cache, &bucket, "u");
            cache.put(t, &bucket, "u", &body);
        }
        assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        assert!(cache.bytes() > budget / 2, "the cache should fill up");
    }
}
