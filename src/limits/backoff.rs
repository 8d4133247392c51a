//! Exponential backoff between OTP sends to one number.

use crate::policy::BackoffParams;
use std::time::Duration;

/// Per-number state: 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffState {
    /// No send before this instant (Unix ns).
    pub next_allowed: u64,
    /// After this instant without a send, the run starts over (and the entry can
    /// be evicted). Always >= `next_allowed`.
    pub idle_until: u64,
    /// Sends so far in this run.
    pub level: u32,
}

impl BackoffState {
    /// How long a send at `now` must still wait, if at all.
    pub fn wait(&self, now: u64) -> Option<Duration> {
        (now < self.next_allowed).then(|| Duration::from_nanos(self.next_allowed - now))
    }

    /// The state after a send at `now`.
    pub fn after_send(prev: Option<&BackoffState>, now: u64, p: &BackoffParams) -> BackoffState {
        let level = match prev {
            Some(s) if now < s.idle_until => s.level,
            _ => 0,
        };
        let next_allowed = now + p.delay(level).as_nanos() as u64;
        BackoffState {
            next_allowed,
            idle_until: (now + p.reset_after.as_nanos() as u64).max(next_allowed),
            level: level.saturating_add(1),
        }
    }

    /// Whether the entry still changes any decision at `now`.
    pub fn in_force(&self, now: u64) -> bool {
        now < self.idle_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn params() -> BackoffParams {
        BackoffParams {
            base: Duration::from_secs(30),
            factor: 2.0,
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let p = params();
        let mut now = 10_000 * S;
        let mut s: Option<BackoffState> = None;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let next = BackoffState::after_send(s.as_ref(), now, &p);
            waits.push(next.wait(now).unwrap().as_secs());
            now = next.next_allowed;
            assert_eq!(next.wait(now), None);
            s = Some(next);
        }
        assert_eq!(waits, vec![30, 60, 120, 240, 300, 300]);
    }

    #[test]
    fn starts_over_after_reset_after_without_sends() {
        let p = params();
        let t0 = 10_000 * S;
        let a = BackoffState::after_send(None, t0, &p);
        let b = BackoffState::after_send(Some(&a), t0 + 30 * S, &p);
        assert_eq!(b.level, 2);
        assert!(b.in_force(t0 + 30 * S + 3599 * S));
        assert!(!b.in_force(t0 + 30 * S + 3600 * S));
        let c = BackoffState::after_send(Some(&b), t0 + 30 * S + 3600 * S, &p);
        assert_eq!(c.level, 1);
        assert_eq!(
            c.wait(t0 + 30 * S + 3600 * S),
            Some(Duration::from_secs(30))
        );
    }
}
