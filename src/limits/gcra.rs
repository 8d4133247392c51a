//! governor's GCRA over our own key map.
//!
//! governor stores a theoretical arrival time (TAT) per key, relative to the
//! instant its `RateLimiter` was created. We want the TAT to outlive limiters
//! (a policy reload builds new quotas; counters must survive) and to be shared by
//! all rules in one map, so the map holds *absolute* TATs (Unix nanoseconds) and
//! each check runs a short-lived `RateLimiter` whose clock is frozen at the
//! decision's `now`, translating between the two. One decision therefore sees
//! one consistent time, and the GCRA arithmetic stays governor's.

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore as GovernorStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

use super::keyed::KeyedMap;

/// One key's GCRA state: 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Theoretical arrival time, Unix ns.
    pub tat: u64,
    /// Until this instant a one-cell request is refused (`tat - tau`): the key
    /// is throttling, and must not be evicted.
    pub throttled_until: u64,
}

/// Key -> GCRA state in absolute Unix nanoseconds.
pub type TatMap = KeyedMap<Cell>;

/// A clock stopped at one instant: the decision's `now`.
#[derive(Debug, Clone, Copy)]
struct Frozen(u64);

impl Clock for Frozen {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0)
    }
}

/// The map seen from a limiter created at `now`: TATs relative to `now`.
struct AtNow<'a> {
    map: &'a TatMap,
    now: u64,
    /// False: answer without taking a cell (a peek).
    commit: bool,
    /// The quota's burst tolerance in ns: `tat - tau` is when a key stops
    /// throttling.
    tau: u64,
}

impl AtNow<'_> {
    /// A stored TAT as governor sees it; one in the past is the same as a
    /// fresh key.
    fn relative(&self, tat: u64) -> Option<Nanos> {
        tat.checked_sub(self.now)
            .filter(|&r| r > 0)
            .map(Nanos::from)
    }

    fn cell(&self, next: Nanos) -> Cell {
        let tat = self.now + u64::from(next);
        Cell {
            tat,
            throttled_until: tat.saturating_sub(self.tau),
        }
    }
}

impl GovernorStore for AtNow<'_> {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if !self.commit {
            // A peek: the shard's read lock is enough, and a key never seen
            // is not inserted.
            let rel = self.map.get(key).and_then(|c| self.relative(c.tat));
            return f(rel).map(|(t, _)| t);
        }
        // The shard's write lock makes read-decide-write atomic per key; a
        // refusal stores nothing.
        self.map
            .upsert(*key, |c| match f(c.and_then(|c| self.relative(c.tat))) {
                Ok((t, next)) => (Some(self.cell(next)), Ok(t)),
                Err(e) => (None, Err(e)),
            })
    }
}

/// One GCRA check at `now` for `cells` cells. `None`: conforms (and, with
/// `commit`, the cells are taken). `Some(wait)`: does not conform before `wait`
/// has passed.
pub fn check(
    map: &TatMap,
    key: u64,
    quota: Quota,
    now: u64,
    cells: u32,
    commit: bool,
) -> Option<Duration> {
    let limiter: RateLimiter<u64, AtNow<'_>, Frozen, NoOpMiddleware<Nanos>> = RateLimiter::new(
        quota,
        AtNow {
            map,
            now,
            commit,
            tau: tau(quota),
        },
        Frozen(now),
    );
    let result = match NonZeroU32::new(cells) {
        None => return None,
        Some(n) if n.get() == 1 => limiter.check_key(&key),
        Some(n) => match limiter.check_key_n(&key, n) {
            Ok(r) => r,
            // More cells than the burst: never conforms; the policy compiler
            // rejects costs above a cost-weighted limit's burst.
            Err(_) => return Some(quota.burst_size_replenished_in()),
        },
    };
    match result {
        Ok(()) => None,
        Err(not_until) => Some(not_until.wait_time_from(Nanos::from(now))),
    }
}

/// GCRA's burst tolerance: (burst - 1) emission intervals, in ns.
fn tau(q: Quota) -> u64 {
    (q.replenish_interval().as_nanos() as u64).saturating_mul(u64::from(q.burst_size().get() - 1))
}

/// Gives back `cells` cells a conforming check took: governor's update moved
/// the TAT forward by `cells` emission intervals (`max(tat, now) + t * n`),
/// and this moves it back by as much. Takes of other requests in between are
/// kept.
pub fn refund(map: &TatMap, key: u64, quota: Quota, cells: u32) {
    let back = (quota.replenish_interval().as_nanos() as u64).saturating_mul(u64::from(cells));
    if let Some(mut c) = map.get_mut(&key) {
        c.tat = c.tat.saturating_sub(back);
        c.throttled_until = c.tat.saturating_sub(tau(quota));
    }
}

/// Drops keys whose TAT has passed: they are indistinguishable from new keys.
pub fn evict(map: &TatMap, now: u64) -> usize {
    let before = map.len();
    map.retain(|_, c| c.tat > now);
    before - map.len()
}

/// Under memory pressure: drops every key that is not throttling now. A
/// dropped key's subject gets a fresh bucket, never a refusal it did not earn,
/// and every key that is refusing requests stays.
pub fn relieve(map: &TatMap, now: u64) -> usize {
    let before = map.len();
    map.retain(|_, c| c.throttled_until > now);
    before - map.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn map() -> TatMap {
        TatMap::default()
    }

    /// 5 per minute (one every 12 s), burst 3.
    fn five_a_minute_burst_3() -> Quota {
        Quota::per_minute(NonZeroU32::new(5).unwrap()).allow_burst(NonZeroU32::new(3).unwrap())
    }

    #[test]
    fn burst_then_steady_rate_with_exact_waits() {
        let m = map();
        let q = five_a_minute_burst_3();
        let t0 = 1_000 * S;
        assert_eq!(check(&m, 1, q, t0, 1, true), None);
        assert_eq!(check(&m, 1, q, t0, 1, true), None);
        assert_eq!(check(&m, 1, q, t0, 1, true), None);
        assert_eq!(check(&m, 1, q, t0, 1, true), Some(Duration::from_secs(12)));
        // Another key is independent.
        assert_eq!(check(&m, 2, q, t0, 1, true), None);
        assert_eq!(
            check(&m, 1, q, t0 + 11 * S, 1, true),
            Some(Duration::from_secs(1))
        );
        assert_eq!(check(&m, 1, q, t0 + 12 * S, 1, true), None);
        assert_eq!(
            check(&m, 1, q, t0 + 12 * S, 1, true),
            Some(Duration::from_secs(12))
        );
    }

    #[test]
    fn a_refund_gives_back_exactly_what_was_taken() {
        let m = map();
        let q = five_a_minute_burst_3();
        let t0 = 1_000 * S;
        assert_eq!(check(&m, 1, q, t0, 2, true), None);
        let before = *m.get(&1).unwrap();
        assert_eq!(check(&m, 1, q, t0, 1, true), None);
        refund(&m, 1, q, 1);
        assert_eq!(*m.get(&1).unwrap(), before);
        // Given back from a fresh key: the whole burst is there again.
        refund(&m, 1, q, 2);
        for _ in 0..3 {
            assert_eq!(check(&m, 1, q, t0, 1, true), None);
        }
        assert!(check(&m, 1, q, t0, 1, true).is_some());
        // A key never taken is not created by a refund.
        refund(&m, 9, q, 1);
        assert!(m.get(&9).is_none());
    }

    #[test]
    fn a_peek_takes_no_cell() {
        let m = map();
        let q = Quota::per_hour(NonZeroU32::new(1).unwrap());
        let t0 = 5_000 * S;
        assert_eq!(check(&m, 3, q, t0, 1, false), None);
        assert_eq!(check(&m, 3, q, t0, 1, false), None);
        assert!(m.is_empty());
        assert_eq!(check(&m, 3, q, t0, 1, true), None);
        assert_eq!(
            check(&m, 3, q, t0, 1, false),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn state_survives_a_new_quota_object() {
        // A reload builds new quotas and new limiters; the map carries the state.
        let m = map();
        let q = Quota::per_hour(NonZeroU32::new(1).unwrap());
        let t0 = 5_000 * S;
        assert_eq!(check(&m, 7, q, t0, 1, true), None);
        let q2 = Quota::per_hour(NonZeroU32::new(1).unwrap());
        assert_eq!(
            check(&m, 7, q2, t0 + 60 * S, 1, true),
            Some(Duration::from_secs(3540))
        );
    }

    #[test]
    fn relief_keeps_exactly_the_throttling_keys() {
        let m = map();
        // Burst 3 per hour: 3 cells then throttled.
        let q =
            Quota::per_hour(NonZeroU32::new(1).unwrap()).allow_burst(NonZeroU32::new(3).unwrap());
        let t0 = 5_000 * S;
        for _ in 0..3 {
            check(&m, 1, q, t0, 1, true);
        }
        check(&m, 2, q, t0, 1, true);
        assert!(check(&m, 1, q, t0, 1, false).is_some());
        assert!(check(&m, 2, q, t0, 1, false).is_none());
        assert_eq!(relieve(&m, t0), 1);
        assert!(
            check(&m, 1, q, t0, 1, false).is_some(),
            "the throttling key stays"
        );
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn eviction_keeps_throttling_keys() {
        let m = map();
        let q = Quota::per_hour(NonZeroU32::new(1).unwrap());
        let t0 = 5_000 * S;
        check(&m, 1, q, t0, 1, true);
        check(&m, 2, q, t0 + 1800 * S, 1, true);
        // At t0 + 1h key 1 is fully replenished; key 2 is not.
        assert_eq!(evict(&m, t0 + 3600 * S), 1);
        assert_eq!(m.len(), 1);
        assert!(check(&m, 2, q, t0 + 3600 * S, 1, true).is_some());
    }
}
