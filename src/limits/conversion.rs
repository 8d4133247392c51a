//! Conversion windows: codes sent and codes verified per destination country
//! and per number range, over a sliding window of fixed buckets, and the
//! automatic protection started when the ratio collapses.

use std::fmt;
use std::time::Duration;

/// Buckets per window: the window slides in steps of window / BUCKETS.
pub const BUCKETS: usize = 12;

/// What a window counts: a country ("FR") or a number range ("+33612").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    pub scope: Scope,
    len: u8,
    bytes: [u8; 16],
}

/// The same fields as `Eq`, in two writes: the derived impl makes four, each
/// a round of the map hasher's buffering.
impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_le_bytes(self.bytes));
        state.write_u16(u16::from(self.scope as u8) << 8 | u16::from(self.len));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Country,
    Prefix,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Country => "country",
            Scope::Prefix => "prefix",
        }
    }
}

impl Label {
    /// `None` for text longer than 16 bytes (a prefix is at most "+" and 15 digits).
    pub fn new(scope: Scope, text: &str) -> Option<Label> {
        let b = text.as_bytes();
        if b.len() > 16 {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..b.len()].copy_from_slice(b);
        Some(Label {
            scope,
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scope.as_str(), self.as_str())
    }
}

/// Counts in the window, and any protection in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConversionStats {
    pub sent: u64,
    pub verified: u64,
    /// 0: not protected.
    pub protected_until: u64,
}

impl ConversionStats {
    pub fn ratio(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            (self.verified as f64 / self.sent as f64).min(1.0)
        }
    }

    pub fn protected(&self, now: u64) -> bool {
        self.protected_until > now
    }
}

/// One label's window: 112 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub label: Label,
    /// Bucket index (now / width) of the newest bucket.
    newest: u64,
    /// Bucket width (window / BUCKETS) last used, in ns.
    width: u64,
    sent: [u32; BUCKETS],
    verified: [u32; BUCKETS],
    pub protected_until: u64,
}

impl Window {
    pub fn new(label: Label) -> Window {
        Window {
            label,
            newest: 0,
            width: 1,
            sent: [0; BUCKETS],
            verified: [0; BUCKETS],
            protected_until: 0,
        }
    }

    fn width(window: Duration) -> u64 {
        (window.as_nanos() as u64 / BUCKETS as u64).max(1)
    }

    /// Moves the window to `now`, zeroing buckets that slid out.
    fn slide(&mut self, now: u64, window: Duration) {
        let width = Self::width(window);
        if width != self.width {
            self.rescale(now, width);
            return;
        }
        let idx = now / self.width;
        if idx <= self.newest {
            return;
        }
        let steps = (idx - self.newest).min(BUCKETS as u64);
        for k in 1..=steps {
            let b = ((self.newest + k) % BUCKETS as u64) as usize;
            self.sent[b] = 0;
            self.verified[b] = 0;
        }
        self.newest = idx;
    }

    /// A policy reload changed the window's length: bucket indices in the old
    /// width mean nothing in the new one. The counts so far are kept, folded
    /// into `now`'s bucket, so the ratio carries over and they age out within
    /// one new window. Rare (a reload, or a window's first use): kept out of
    /// line so that `slide` stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn rescale(&mut self, now: u64, width: u64) {
        let sent = self.sent.iter().fold(0u32, |a, &x| a.saturating_add(x));
        let verified = self.verified.iter().fold(0u32, |a, &x| a.saturating_add(x));
        self.sent = [0; BUCKETS];
        self.verified = [0; BUCKETS];
        self.width = width;
        self.newest = now / width;
        let b = (self.newest % BUCKETS as u64) as usize;
        self.sent[b] = sent;
        self.verified[b] = verified;
    }

    /// The bucket `now` falls in, at buckets `width` wide, while it is still
    /// in the window. The window may already be past `now`: another thread's
    /// check, with a later clock, moved it on in between.
    fn bucket_at(&self, now: u64, width: u64) -> Option<usize> {
        let idx = now / width;
        (idx <= self.newest && self.newest - idx < BUCKETS as u64)
            .then_some((idx % BUCKETS as u64) as usize)
    }

    pub fn record_sent(&mut self, now: u64, window: Duration) {
        self.slide(now, window);
        if let Some(b) = self.bucket_at(now, self.width) {
            self.sent[b] = self.sent[b].saturating_add(1);
        }
    }

    pub fn record_verified(&mut self, now: u64, window: Duration) {
        self.slide(now, window);
        if let Some(b) = self.bucket_at(now, self.width) {
            self.verified[b] = self.verified[b].saturating_add(1);
        }
    }

    /// The counts before this send, then the send counted in `now`'s bucket:
    /// what the store's check does for an OTP send, so that it reaches the
    /// window once.
    pub fn take_sent(&mut self, now: u64, window: Duration) -> ConversionStats {
        let before = self.stats(now, window);
        self.record_sent(now, window);
        before
    }

    /// Gives back a send [`take_sent`](Self::take_sent) counted at `now` and
    /// the decision did not allow, from the bucket it was counted in. Does not
    /// slide the window: if it already moved past `now`'s bucket, that count
    /// is gone anyway.
    pub fn give_back_sent(&mut self, now: u64, window: Duration) {
        // After a reload changed the window's length the send was folded
        // with the rest (see `rescale`): left counted.
        if Self::width(window) != self.width {
            return;
        }
        if let Some(b) = self.bucket_at(now, self.width) {
            self.sent[b] = self.sent[b].saturating_sub(1);
        }
    }

    pub fn stats(&mut self, now: u64, window: Duration) -> ConversionStats {
        self.slide(now, window);
        ConversionStats {
            sent: self.sent.iter().map(|&x| u64::from(x)).sum(),
            verified: self.verified.iter().map(|&x| u64::from(x)).sum(),
            protected_until: self.protected_until,
        }
    }

    /// Stats over the window width last used.
    pub fn current(&mut self, now: u64) -> ConversionStats {
        let window = Duration::from_nanos(self.width * BUCKETS as u64);
        self.stats(now, window)
    }

    /// Nothing counted and no protection: the entry can go.
    pub fn idle(&mut self, now: u64) -> bool {
        let s = self.current(now);
        s.sent == 0 && s.verified == 0 && !s.protected(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn counts_slide_out_of_the_window() {
        let mut w = Window::new(Label::new(Scope::Country, "FR").unwrap());
        let t = 1_000_000 * S;
        for _ in 0..10 {
            w.record_sent(t, HOUR);
        }
        w.record_verified(t + 60 * S, HOUR);
        assert_eq!(
            w.stats(t + 60 * S, HOUR),
            ConversionStats {
                sent: 10,
                verified: 1,
                protected_until: 0
            }
        );
        assert!((w.stats(t, HOUR).ratio() - 0.1).abs() < 1e-9);
        // 30 minutes later a new send; an hour after the first they have gone.
        w.record_sent(t + 1800 * S, HOUR);
        let s = w.stats(t + 3600 * S + 300 * S, HOUR);
        assert_eq!((s.sent, s.verified), (1, 0));
        assert!(!w.idle(t + 3600 * S + 300 * S));
        assert!(w.idle(t + 2 * 3600 * S));
    }

    #[test]
    fn a_long_gap_clears_everything() {
        let mut w = Window::new(Label::new(Scope::Prefix, "+33612").unwrap());
        let t = 1_000_000 * S;
        w.record_sent(t, HOUR);
        let s = w.stats(t + 100 * 3600 * S, HOUR);
        assert_eq!((s.sent, s.verified), (0, 0));
        assert_eq!(w.label.as_str(), "+33612");
    }

    #[test]
    fn a_send_taken_at_the_check_is_given_back_in_its_own_bucket() {
        let mut w = Window::new(Label::new(Scope::Country, "FR").unwrap());
        let t = 1_000_000 * S;
        w.record_sent(t, HOUR);
        // The counts before the send, then the send counted.
        assert_eq!(w.take_sent(t, HOUR).sent, 1);
        assert_eq!(w.stats(t, HOUR).sent, 2);
        w.give_back_sent(t, HOUR);
        assert_eq!(w.stats(t, HOUR).sent, 1);
        // Another check, with a later clock, moved the window on before this
        // one counted its send at `t`: the send goes to `t`'s bucket, and is
        // given back from it, not from the later one.
        let later = t + 600 * S;
        w.take_sent(later, HOUR);
        w.take_sent(t, HOUR);
        w.give_back_sent(t, HOUR);
        assert_eq!(w.stats(later, HOUR).sent, 2);
        // An hour after `t`, its bucket has slid out and `later`'s has not:
        // `later`'s one send is left.
        assert_eq!(w.stats(t + 3600 * S, HOUR).sent, 1);
        // Given back once its bucket slid out of the window: nothing to take.
        let gone = t + 2 * 3600 * S;
        w.take_sent(gone, HOUR);
        w.give_back_sent(t, HOUR);
        assert_eq!(w.stats(gone, HOUR).sent, 1);
        // Never below zero.
        w.give_back_sent(gone, HOUR);
        w.give_back_sent(gone, HOUR);
        assert_eq!(w.stats(gone, HOUR).sent, 0);
        // A send whose clock is already out of the window is not counted.
        w.take_sent(t, HOUR);
        assert_eq!(w.stats(gone, HOUR).sent, 0);
    }

    #[test]
    fn a_reload_that_changes_the_window_keeps_the_counts_and_lets_them_age_out() {
        let mut w = Window::new(Label::new(Scope::Prefix, "+33612").unwrap());
        let t = 1_000_000 * S;
        for _ in 0..4 {
            w.record_sent(t, HOUR);
        }
        w.record_verified(t, HOUR);
        // A send taken under the old length, then the window made 2 h long.
        w.take_sent(t, HOUR);
        let two_hours = 2 * HOUR;
        let s = w.stats(t + 60 * S, two_hours);
        assert_eq!((s.sent, s.verified), (5, 1));
        // Its give-back comes with the old length: the count was folded with
        // the rest, so it stays.
        w.give_back_sent(t, HOUR);
        assert_eq!(w.stats(t + 60 * S, two_hours).sent, 5);
        // The window goes on counting and sliding in the new length.
        w.record_sent(t + 1800 * S, two_hours);
        w.record_verified(t + 1800 * S, two_hours);
        let s = w.stats(t + 1800 * S, two_hours);
        assert_eq!((s.sent, s.verified), (6, 2));
        // Two hours on, the folded counts are out, the later ones still in.
        let s = w.stats(t + 7200 * S + 600 * S, two_hours);
        assert_eq!((s.sent, s.verified), (1, 1));
        assert!(w.idle(t + 3 * 7200 * S));
        // Made shorter again: still folded, not wiped.
        w.record_sent(t + 3 * 7200 * S, two_hours);
        assert_eq!(w.stats(t + 3 * 7200 * S + S, HOUR).sent, 1);
    }

    #[test]
    fn labels_are_bounded() {
        assert!(Label::new(Scope::Prefix, "+123456789012345").is_some());
        assert!(Label::new(Scope::Prefix, "+1234567890123456").is_none());
    }
}
