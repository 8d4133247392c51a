//! Injected time.
//!
//! Everything that counts or expires reads time through [`Clock`], so tests
//! advance a [`FakeClock`] instead of sleeping. Time is nanoseconds since the Unix
//! epoch (not since process start) so that replicas sharing a store agree on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time, in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_nanos(&self) -> u64;
}

/// The clock handle passed around the engine.
pub type SharedClock = Arc<dyn Clock>;

/// Wall time read once at start, then advanced by the monotonic clock: it never
/// goes backwards when NTP steps the system time.
pub struct SystemClock {
    wall_at_start: u64,
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        SystemClock {
            wall_at_start: wall.as_nanos() as u64,
            start: Instant::now(),
        }
    }

    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        self.wall_at_start + self.start.elapsed().as_nanos() as u64
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone)]
pub struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    /// Starts at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        FakeClock(Arc::new(AtomicU64::new(1_767_225_600 * 1_000_000_000)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for FakeClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_advanced_and_clones_share_time() {
        let c = FakeClock::new();
        let c2 = c.clone();
        let t0 = c.now_nanos();
        assert_eq!(c.now_nanos(), t0);
        c2.advance(Duration::from_secs(30));
        assert_eq!(c.now_nanos() - t0, 30_000_000_000);
    }

    #[test]
    fn system_clock_is_unix_time_and_monotonic() {
        let c = SystemClock::new();
        let a = c.now_nanos();
        let b = c.now_nanos();
        assert!(b >= a);
        // After 2020-01-01: it is Unix time, not time since start.
        assert!(a > 1_577_836_800 * 1_000_000_000);
    }
}
