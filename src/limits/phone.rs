//! Per-number state: the backoff between sends and the count of codes sent
//! without a successful validation.

use super::backoff::BackoffState;
use crate::policy::BackoffParams;
use std::time::Duration;

/// 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhoneState {
    pub backoff: Option<BackoffState>,
    /// Forget the unverified count after this instant without sends.
    pub forget_at: u64,
    pub unverified_sends: u16,
}

impl PhoneState {
    pub fn after_send(
        prev: Option<&PhoneState>,
        backoff: Option<&BackoffParams>,
        forget_after: Duration,
        now: u64,
    ) -> PhoneState {
        let mut s = prev.copied().unwrap_or_default();
        if let Some(p) = backoff {
            s.backoff = Some(BackoffState::after_send(s.backoff.as_ref(), now, p));
        }
        s.unverified_sends = if now < s.forget_at {
            s.unverified_sends.saturating_add(1)
        } else {
            1
        };
        s.forget_at = now.saturating_add(forget_after.as_nanos() as u64);
        s
    }

    /// The count as of `now` (forgotten when idle long enough).
    pub fn unverified(&self, now: u64) -> u16 {
        if now < self.forget_at {
            self.unverified_sends
        } else {
            0
        }
    }

    pub fn backoff_wait(&self, now: u64) -> Option<Duration> {
        self.backoff.and_then(|b| b.wait(now))
    }

    pub fn in_force(&self, now: u64) -> bool {
        self.backoff.is_some_and(|b| b.in_force(now)) || self.unverified(now) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn counts_sends_and_keeps_backoff() {
        let p = BackoffParams {
            base: Duration::from_secs(30),
            factor: 2.0,
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(3600),
        };
        let day = Duration::from_secs(86_400);
        let t = 1000 * S;
        let a = PhoneState::after_send(None, Some(&p), day, t);
        let b = PhoneState::after_send(Some(&a), Some(&p), day, t + 30 * S);
        assert_eq!(b.unverified(t + 30 * S), 2);
        assert_eq!(b.backoff_wait(t + 30 * S), Some(Duration::from_secs(60)));
        assert!(b.in_force(t + 30 * S + 86_399 * S));
        assert_eq!(b.unverified(t + 30 * S + 86_400 * S), 0);
        assert!(!b.in_force(t + 30 * S + 86_400 * S));
        let c = PhoneState::after_send(Some(&b), None, day, t + 30 * S + 86_400 * S);
        assert_eq!(c.unverified_sends, 1, "an idle count starts over");
    }
}
