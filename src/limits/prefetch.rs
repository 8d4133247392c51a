//! Software prefetch of the store's entries, so the lookups of one decision
//! wait for memory together instead of one after another.
//!
//! With a million tracked keys the entries a decision reaches are rarely in
//! cache: each lookup waits for its control bytes, then for its bucket. The
//! lookups cannot overlap by themselves, because each takes its shard's lock
//! and no load after a locked instruction starts before it. So the check
//! first asks the CPU for the lines of every entry it is about to reach, then
//! looks them up. In the decision bench this took allowed sends from ~3.2 to
//! ~2.1 times the cost of reaching their entries one by one, and their p99
//! from 9–34 µs to 7–11 µs.
//!
//! This is the crate's only `unsafe`: `_mm_prefetch` needs SSE (an `unsafe fn`
//! before Rust 1.86, a target-feature function since), which every x86_64 CPU
//! has; a prefetch dereferences nothing and never faults, whatever the address
//! (the nightly `core::hint::prefetch_read` is safe for that reason). A wrong
//! address costs a wasted load, nothing else. Other targets build a
//! [`Prefetch`] that does nothing.

use super::memory::Map;

/// The table position a lookup of `key` starts at: the address of the
/// shard's control bytes (buckets are stored downwards from there), the index
/// of the first bucket probed and the table's bucket mask. `None` while the
/// shard is being written (a hint is not worth waiting for). The read guard
/// is what makes reading the table's geometry race-free; the addresses may go
/// stale once it is dropped, which only a dereference would mind.
///
/// This follows hashbrown's table layout (the one dashmap's shards use): the
/// probe starts at `hash & (buckets - 1)`, and bucket `i` sits `i + 1` entries
/// below the control bytes. The key is its own hash
/// ([`super::memory::PassThrough`]). `tests::keys_sit_where_their_probe_starts`
/// compares both with where hashbrown's own lookup finds each key.
#[cfg(any(target_arch = "x86_64", test))]
fn probe_start<V>(map: &Map<V>, key: u64) -> Option<(usize, usize, usize)> {
    let shard = &map.shards()[map.determine_shard(key as usize)];
    let table = shard.try_read()?;
    let mask = table.buckets() - 1;
    Some((
        table.data_end().as_ptr() as usize,
        key as usize & mask,
        mask,
    ))
}

/// The size of one entry of `map`'s tables.
#[cfg(any(target_arch = "x86_64", test))]
const fn entry_size<V>() -> usize {
    std::mem::size_of::<(u64, dashmap::SharedValue<V>)>()
}

/// The address of bucket `index` of a table of `size`-byte entries whose
/// control bytes are at `ctrl`.
#[cfg(any(target_arch = "x86_64", test))]
fn bucket(ctrl: usize, index: usize, size: usize) -> usize {
    ctrl.wrapping_sub((index + 1) * size)
}

/// The entries one decision is about to reach, gathered first and hinted
/// together by [`Prefetch::issue`]. Gathering takes and drops each shard's
/// read lock (two atomic read-modify-writes, each a full barrier on x86); the
/// hints come after all of them rather than between them. Measured in the
/// decision bench against hinting each entry as its lock is dropped (medians
/// of eight alternating runs of the ratio of a send's median to the floor):
/// cold sends 2.08 -> 1.97, sends to tracked subjects 1.87 -> 1.80.
#[cfg(target_arch = "x86_64")]
#[derive(Default)]
pub struct Prefetch {
    /// Control-bytes address, first bucket index, bucket mask, entry size.
    starts: [(usize, usize, usize, usize); Self::MAX],
    len: usize,
}

#[cfg(target_arch = "x86_64")]
impl Prefetch {
    /// More entries than a decision of the default policy reaches (13 on an
    /// OTP send); past this, entries are hinted at once as they come.
    const MAX: usize = 24;

    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds what a lookup of `key` in `map` will read.
    #[inline]
    pub fn entry<V>(&mut self, map: &Map<V>, key: u64) {
        if let Some((ctrl, index, mask)) = probe_start(map, key) {
            let start = (ctrl, index, mask, entry_size::<V>());
            if self.len == Self::MAX {
                hint_entry(start);
            } else {
                self.starts[self.len] = start;
                self.len += 1;
            }
        }
    }

    /// Starts loading every entry added, without waiting for any.
    #[inline]
    pub fn issue(&self) {
        for &start in &self.starts[..self.len] {
            hint_entry(start);
        }
    }
}

/// Elsewhere there are no hints: no geometry is gathered (no shard locked for
/// it) and the check's lookups wait for memory one after another.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Default)]
pub struct Prefetch;

#[cfg(not(target_arch = "x86_64"))]
impl Prefetch {
    #[inline]
    pub fn new() -> Self {
        Prefetch
    }

    #[inline]
    pub fn entry<V>(&mut self, _: &Map<V>, _: u64) {}

    #[inline]
    pub fn issue(&self) {}
}

/// Starts loading, without waiting for it, what a lookup starting at
/// `(ctrl, index, mask)` in a table of `size`-byte entries will read: the
/// group of 16 control bytes where its probe starts, and the lines of the
/// first three buckets there (two in three keys sit in the first, nearly all
/// in one of the three: see the test). Hints to one line cost about nothing
/// after the first.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn hint_entry((ctrl, index, mask, size): (usize, usize, usize, usize)) {
    hint(ctrl.wrapping_add(index));
    hint(ctrl.wrapping_add(index + 15));
    // Buckets `index`, `index + 1`, `index + 2` lie downwards from the end
    // of bucket `index`; a table of fewer buckets wraps to its top.
    hint(bucket(ctrl, index, size).wrapping_add(size - 1));
    for i in 0..3 {
        hint(bucket(ctrl, (index + i) & mask, size));
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn hint(address: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: `_mm_prefetch` requires SSE, part of the x86_64 baseline; it
    // never dereferences its address or faults, and `address` is only
    // computed, never dereferenced here either.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(address as *const i8) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::memory::PassThrough;
    use dashmap::DashMap;

    /// For each key: the bucket hashbrown's own lookup finds it in, as an
    /// offset from the bucket [`probe_start`] and [`bucket`] compute for it
    /// (0: the computed bucket itself; `None`: not among the 65 from there).
    fn offsets<V>(map: &Map<V>, keys: &[u64]) -> Vec<Option<usize>> {
        keys.iter()
            .map(|&k| {
                let (ctrl, start, mask) = probe_start(map, k).expect("no writer");
                let table = map.shards()[map.determine_shard(k as usize)].read();
                let found = table
                    .find(k, |(key, _)| *key == k)
                    .expect("hashbrown finds the key under its own hash")
                    .as_ptr() as usize;
                (0..=mask.min(64))
                    .find(|&i| bucket(ctrl, (start + i) & mask, entry_size::<V>()) == found)
            })
            .collect()
    }

    fn keys(n: u64) -> Vec<u64> {
        // Uniform like the store's keyed hashes.
        (0..n).map(crate::request::mix).collect()
    }

    #[test]
    fn keys_sit_where_their_probe_starts() {
        // Two entry sizes the store uses (a GCRA cell, a small state), at
        // table sizes from a few keys a shard to a busy one.
        for n in [100, 10_000, 200_000] {
            let keys = keys(n);
            let cells: Map<[u64; 2]> = DashMap::with_hasher(PassThrough);
            let states: Map<[u64; 5]> = DashMap::with_hasher(PassThrough);
            for &k in &keys {
                cells.insert(k, [k, 0]);
                states.insert(k, [k; 5]);
            }
            for (what, offsets) in [
                ("cells", offsets(&cells, &keys)),
                ("states", offsets(&states, &keys)),
            ] {
                let total = offsets.len() as f64;
                let share = |ok: fn(usize) -> bool| {
                    offsets.iter().filter(|o| o.is_some_and(ok)).count() as f64 / total
                };
                let first = share(|o| o == 0);
                let hinted = share(|o| o <= 2);
                // Measured 62–70 % in the first bucket (more in tiny tables),
                // 84–91 % in the three hinted. A start or a bucket address one
                // off puts no key, or few, where the hints point.
                assert!(
                    first > 0.5 && hinted > 0.75,
                    "{what}, {n} keys: {first:.2} in the computed bucket, {hinted:.2} in the hinted three"
                );
            }
        }
    }
}
