//! Per-account failure counter with lock (PSD2 RTS art. 4), and the count of
//! codes requested without a successful validation.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountParams {
    /// Consecutive failures that lock the account.
    pub max_failures: u8,
    /// How long a lock lasts; `None`: until a help-desk reset.
    pub lock_for: Option<Duration>,
    /// Codes requested without a validation before further requests are refused.
    pub max_unverified_sends: u16,
    /// Counts that lock nothing and have seen no activity for this long are
    /// forgotten (bounds memory under floods of one-off accounts).
    pub forget_after: Duration,
}

/// 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountState {
    /// 0: not locked; `u64::MAX`: until a help-desk reset.
    pub locked_until: u64,
    /// Counts that lock nothing are forgotten after this instant.
    pub forget_at: u64,
    pub unverified_sends: u16,
    pub failures: u8,
}

impl AccountState {
    /// `Some(None)`: locked until reset; `Some(Some(d))`: for `d` more.
    pub fn lock(&self, now: u64) -> Option<Option<Duration>> {
        match self.locked_until {
            0 => None,
            u64::MAX => Some(None),
            t if t > now => Some(Some(Duration::from_nanos(t - now))),
            _ => None,
        }
    }

    /// Unverified sends as of `now`.
    pub fn unverified(&self, now: u64) -> u16 {
        if now < self.forget_at {
            self.unverified_sends
        } else {
            0
        }
    }

    fn touch(&mut self, p: &AccountParams, now: u64) {
        self.forget_at = now.saturating_add(p.forget_after.as_nanos() as u64);
    }

    pub fn after_failure(prev: Option<&AccountState>, p: &AccountParams, now: u64) -> AccountState {
        let mut s = prev.copied().unwrap_or_default();
        if now >= s.forget_at && s.lock(now).is_none() {
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        if s.failures >= p.max_failures && s.lock(now).is_none() {
            s.locked_until = match p.lock_for {
                Some(d) => now.saturating_add(d.as_nanos() as u64),
                None => u64::MAX,
            };
        }
        s.touch(p, now);
        s
    }

    /// A success ends the run of failures; it does not lift a lock.
    pub fn after_success(prev: Option<&AccountState>, now: u64) -> AccountState {
        let mut s = prev.copied().unwrap_or_default();
        if s.lock(now).is_none() {
            s.failures = 0;
            s.locked_until = 0;
        }
        s
    }

    pub fn after_send(prev: Option<&AccountState>, p: &AccountParams, now: u64) -> AccountState {
        let mut s = prev.copied().unwrap_or_default();
        s.unverified_sends = s.unverified(now).saturating_add(1);
        s.touch(p, now);
        s
    }

    pub fn after_verified(prev: Option<&AccountState>, now: u64) -> AccountState {
        let mut s = Self::after_success(prev, now);
        s.unverified_sends = 0;
        s
    }

    /// Whether the entry still matters at `now`.
    pub fn in_force(&self, now: u64) -> bool {
        self.lock(now).is_some()
            || ((self.failures > 0 || self.unverified_sends > 0) && now < self.forget_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn p(lock_for: Option<Duration>) -> AccountParams {
        AccountParams {
            max_failures: 5,
            lock_for,
            max_unverified_sends: 10,
            forget_after: Duration::from_secs(30 * 86400),
        }
    }

    #[test]
    fn five_failures_lock_until_reset_and_success_does_not_unlock() {
        let (p, t) = (p(None), 1000 * S);
        let mut s = None;
        for i in 1..=4 {
            s = Some(AccountState::after_failure(s.as_ref(), &p, t));
            assert_eq!(s.unwrap().failures, i);
            assert_eq!(s.unwrap().lock(t), None);
        }
        let locked = AccountState::after_failure(s.as_ref(), &p, t);
        assert_eq!(locked.lock(t + 1_000_000 * S), Some(None));
        let still = AccountState::after_success(Some(&locked), t);
        assert_eq!(still.lock(t), Some(None));
        assert!(still.in_force(t + 365 * 86400 * S));
    }

    #[test]
    fn success_resets_the_run_and_cool_down_ends_the_lock() {
        let (p, t) = (p(Some(Duration::from_secs(900))), 1000 * S);
        let mut s = AccountState::after_failure(None, &p, t);
        s = AccountState::after_failure(Some(&s), &p, t);
        s = AccountState::after_success(Some(&s), t);
        assert_eq!(s.failures, 0);
        for _ in 0..5 {
            s = AccountState::after_failure(Some(&s), &p, t);
        }
        assert_eq!(s.lock(t), Some(Some(Duration::from_secs(900))));
        assert_eq!(s.lock(t + 900 * S), None);
        // After the cool-down a success clears the run.
        let s = AccountState::after_success(Some(&s), t + 900 * S);
        assert_eq!((s.failures, s.locked_until), (0, 0));
    }

    #[test]
    fn unverified_sends_count_until_verified_and_are_forgotten_when_idle() {
        let (p, t) = (p(None), 1000 * S);
        let mut s = AccountState::after_send(None, &p, t);
        s = AccountState::after_send(Some(&s), &p, t);
        assert_eq!(s.unverified(t), 2);
        assert!(s.in_force(t + 29 * 86400 * S));
        assert!(!s.in_force(t + 30 * 86400 * S));
        assert_eq!(s.unverified(t + 30 * 86400 * S), 0);
        s = AccountState::after_verified(Some(&s), t);
        assert_eq!(s.unverified(t), 0);
        assert!(!s.in_force(t));
    }
}
