//! The lookup form of an address list: sorted, merged, non-adjacent address
//! ranges (`u32` for IPv4, `u128` for IPv6), searched by bisection.
//!
//! Why not a prefix trie (`prefix-trie`, the well-kept crate for this): on a
//! 50k-network list `benches/signals.rs` measures both, and lookups cost the
//! same (about 30 ns) while the trie takes ten times the memory (3.2 MB against
//! about 0.3 MB: 8 bytes per IPv4 range, 32 per IPv6 one). Membership is all
//! the lists need, and for that two sorted arrays and `partition_point` are
//! enough; the bench keeps the trie as a baseline so the choice can be
//! re-checked.

use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// An address type the ranges are made of.
pub(crate) trait Addr: Copy + Ord {
    fn next(self) -> Option<Self>;
}

impl Addr for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Addr for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

/// Inclusive ranges, sorted and merged, the starts and ends kept apart so the
/// bisection touches only the starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ranges<T> {
    starts: Box<[T]>,
    ends: Box<[T]>,
}

impl<T: Addr> Ranges<T> {
    /// Sorts `ranges` (inclusive `(first, last)` pairs) and merges those that
    /// overlap or touch.
    pub(crate) fn build(mut ranges: Vec<(T, T)>) -> Ranges<T> {
        ranges.sort_unstable();
        let mut starts = Vec::with_capacity(ranges.len());
        let mut ends: Vec<T> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            if let Some(end) = ends.last_mut() {
                // Overlapping, or adjacent: `end + 1 == first`. An `end` at the
                // top of the address space swallows everything after it.
                if end.next().is_none_or(|after| first <= after) {
                    if last > *end {
                        *end = last;
                    }
                    continue;
                }
            }
            starts.push(first);
            ends.push(last);
        }
        Ranges {
            starts: starts.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
        }
    }

    #[inline]
    pub(crate) fn contains(&self, x: T) -> bool {
        // The last range starting at or before `x` is the only candidate.
        let i = self.starts.partition_point(|&s| s <= x);
        i > 0 && self.ends[i - 1] >= x
    }

    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }
}

/// IPv4 and IPv6 ranges together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

/// Collects networks, then [`RangeSetBuilder::build`]s the lookup form.
#[derive(Debug, Default)]
pub(crate) struct RangeSetBuilder {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl RangeSetBuilder {
    /// Adds a network. Host bits in the address are ignored (`10.0.0.1/8` is
    /// `10.0.0.0/8`). An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is
    /// stored as the IPv4 network it maps, since lookups see IPv4 addresses.
    pub(crate) fn insert(&mut self, net: IpNetwork) {
        match net {
            IpNetwork::V4(n) => self.v4.push((n.network().into(), n.broadcast().into())),
            IpNetwork::V6(n) => {
                let (first, last) = (u128::from(n.network()), u128::from(n.broadcast()));
                const MAPPED: u128 = 0xffff_0000_0000;
                if n.prefix() >= 96 && first >> 32 == MAPPED >> 32 {
                    self.v4.push((first as u32, last as u32));
                } else {
                    self.v6.push((first, last));
                }
            }
        }
    }

    /// The number of networks inserted and not exact duplicates of another.
    pub(crate) fn distinct(&mut self) -> usize {
        self.v4.sort_unstable();
        self.v4.dedup();
        self.v6.sort_unstable();
        self.v6.dedup();
        self.v4.len() + self.v6.len()
    }

    pub(crate) fn build(self) -> RangeSet {
        RangeSet {
            v4: Ranges::build(self.v4),
            v6: Ranges::build(self.v6),
        }
    }
}

impl RangeSet {
    /// Whether `ip` lies in one of the ranges. An IPv4-mapped IPv6 address is
    /// looked up as the IPv4 address it maps.
    #[inline]
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// Merged ranges (fewer than the networks listed when some overlap or touch).
    pub(crate) fn range_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let r = Ranges::build(vec![
            (10u32, 20),
            (21, 30),
            (15, 18),
            (40, 50),
            (45, 60),
            (62, 62),
        ]);
        assert_eq!(&*r.starts, [10, 40, 62]);
        assert_eq!(&*r.ends, [30, 60, 62]);
        for (x, inside) in [
            (9, false),
            (10, true),
            (30, true),
            (31, false),
            (39, false),
            (40, true),
            (60, true),
            (61, false),
            (62, true),
            (63, false),
            (0, false),
            (u32::MAX, false),
        ] {
            assert_eq!(r.contains(x), inside, "{x}");
        }
    }

    #[test]
    fn ranges_at_the_ends_of_the_address_space() {
        let r = Ranges::build(vec![(u32::MAX - 1, u32::MAX), (0, 0), (u32::MAX, u32::MAX)]);
        assert_eq!(r.len(), 2);
        assert!(r.contains(0) && !r.contains(1));
        assert!(r.contains(u32::MAX) && r.contains(u32::MAX - 1) && !r.contains(u32::MAX - 2));
        let all = Ranges::build(vec![(0u128, u128::MAX), (5, 9)]);
        assert_eq!(all.len(), 1);
        assert!(all.contains(0) && all.contains(u128::MAX));
        assert!(!Ranges::<u128>::build(vec![]).contains(0));
    }

    #[test]
    fn mapped_networks_are_ipv4() {
        let mut b = RangeSetBuilder::default();
        b.insert("::ffff:192.0.2.0/120".parse().unwrap());
        b.insert("2001:db8::/32".parse().unwrap());
        let set = b.build();
        assert!(set.contains("192.0.2.9".parse().unwrap()));
        assert!(set.contains("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!set.contains("192.0.3.0".parse().unwrap()));
        assert!(set.contains("2001:db8:ffff::1".parse().unwrap()));
        assert_eq!(set.range_count(), 2);
    }
}
