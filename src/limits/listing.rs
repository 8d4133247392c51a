//! Admin blocks and the safe list: subjects put there by a person, with a
//! reason and an optional end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What kind of subject a listing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Phone,
    /// A number range: "+" and leading digits.
    Prefix,
    Account,
    Device,
    Ip,
    /// A CIDR network.
    Network,
    /// A destination country.
    Country,
}

impl ListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Phone => "phone",
            ListKind::Prefix => "prefix",
            ListKind::Account => "account",
            ListKind::Device => "device",
            ListKind::Ip => "ip",
            ListKind::Network => "network",
            ListKind::Country => "country",
        }
    }
}

/// One block or safe-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// `u64::MAX`: until removed.
    pub until: u64,
    pub reason: Arc<str>,
}

impl Listing {
    pub fn new(now: u64, duration: Option<Duration>, reason: &str) -> Listing {
        Listing {
            until: duration.map_or(u64::MAX, |d| now.saturating_add(d.as_nanos() as u64)),
            reason: reason.into(),
        }
    }

    pub fn active(&self, now: u64) -> bool {
        self.until > now
    }

    /// `None` when permanent.
    pub fn remaining(&self, now: u64) -> Option<Duration> {
        (self.until != u64::MAX).then(|| Duration::from_nanos(self.until.saturating_sub(now)))
    }
}

/// Which prefix lengths have listings, so a request looks up only those
/// (a prefix of any length can be blocked; most lengths have none). Lengths
/// 0 to 128: an IPv6 network may be a /128.
#[derive(Debug, Default)]
pub struct LengthSet([AtomicU64; 3]);

impl LengthSet {
    pub fn insert(&self, len: u8) {
        let word = usize::from(len / 64).min(2);
        self.0[word].fetch_or(1 << (len % 64), Ordering::Relaxed);
    }

    /// The lengths present, ascending.
    pub fn lengths(&self) -> impl Iterator<Item = u8> {
        let w = |i: usize| self.0[i].load(Ordering::Relaxed);
        // Set bits lowest first: as many steps as lengths present (usually
        // none), not 129.
        let bits = |mut w: u64, base: u8| {
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let l = w.trailing_zeros() as u8;
                    w &= w - 1;
                    base + l
                })
            })
        };
        bits(w(0), 0).chain(bits(w(1), 64)).chain(bits(w(2), 128))
    }
}

/// Which kinds of subject have ever been listed, so a request computes and
/// looks up only the keys that could be on a list (most deployments list a
/// few numbers or networks, and most requests find nothing).
#[derive(Debug, Default)]
pub struct KindSet(AtomicU64);

impl KindSet {
    pub fn insert(&self, kind: ListKind) {
        self.0.fetch_or(1 << kind as u32, Ordering::Relaxed);
    }

    pub fn contains(&self, kind: ListKind) -> bool {
        self.0.load(Ordering::Relaxed) >> (kind as u32) & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_end_or_stay() {
        let l = Listing::new(100, Some(Duration::from_nanos(50)), "fraud ticket 7");
        assert!(l.active(149) && !l.active(150));
        assert_eq!(l.remaining(120), Some(Duration::from_nanos(30)));
        let p = Listing::new(100, None, "x");
        assert!(p.active(u64::MAX - 1));
        assert_eq!(p.remaining(5), None);
    }

    #[test]
    fn length_set_reports_what_was_inserted() {
        let s = LengthSet::default();
        assert_eq!(s.lengths().count(), 0);
        for l in [6, 0, 64, 128, 127, 24] {
            s.insert(l);
        }
        assert_eq!(
            s.lengths().collect::<Vec<_>>(),
            vec![0, 6, 24, 64, 127, 128]
        );
    }
}
