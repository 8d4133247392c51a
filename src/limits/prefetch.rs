//! Software prefetch of the store's entries, so the lookups of one decision
//! wait for memory together instead of one after another.
//!
//! With a million tracked keys the entries a decision reaches are rarely in
//! cache: each lookup waits for its control bytes, then for its bucket. The
//! lookups cannot overlap by themselves, because each takes its shard's lock
//! and no load after a locked instruction starts before it. So the store
//! first asks the CPU for the lines of every entry a decision will reach (when
//! the engine announces the batch, before its IP lookups: `StateStore::expect`),
//! then looks them up. A report's entries and the assessment ring's slot are
//! hinted the same way. In the decision bench this took allowed sends from ~3.2 to
//! ~2.1 times the cost of reaching their entries one by one, and their p99
//! from 9–34 µs to 7–11 µs. Where an entry sits comes from the geometry its
//! map publishes ([`KeyedMap::probe_start`]): no lock is taken for a hint.
//!
//! This is the crate's only `unsafe`: `_mm_prefetch` needs SSE (an `unsafe fn`
//! before Rust 1.86, a target-feature function since), which every x86_64 CPU
//! has; a prefetch dereferences nothing and never faults, whatever the address
//! (the nightly `core::hint::prefetch_read` is safe for that reason). A wrong
//! or stale address costs a wasted load, nothing else. On other targets
//! [`entry`] and [`value`] do nothing.

use super::keyed::KeyedMap;

/// The size of one entry of a map of `V`'s tables.
#[cfg(any(target_arch = "x86_64", test))]
const fn entry_size<V>() -> usize {
    std::mem::size_of::<(u64, dashmap::SharedValue<V>)>()
}

/// The address of bucket `index` of a table of `size`-byte entries whose
/// control bytes are at `ctrl`: hashbrown stores bucket `i` `i + 1` entries
/// below them (the layout dashmap's shards use).
/// `tests::keys_sit_where_their_probe_starts` compares this with where
/// hashbrown's own lookup finds each key.
#[cfg(any(target_arch = "x86_64", test))]
fn bucket(ctrl: usize, index: usize, size: usize) -> usize {
    ctrl.wrapping_sub((index + 1) * size)
}

/// Starts loading what a lookup of `key` in `map` will read, without waiting
/// for it.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn entry<V>(map: &KeyedMap<V>, key: u64) {
    hint_entry(map.probe_start(key), entry_size::<V>());
}

/// Elsewhere there are no hints, and the check's lookups wait for memory one
/// after another.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn entry<V>(_: &KeyedMap<V>, _: u64) {}

/// Starts loading the cache lines `v` lies on, without waiting for them.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn value<T>(v: &T) {
    let start = std::ptr::from_ref(v) as usize;
    let end = start + std::mem::size_of::<T>();
    let mut line = start & !63;
    while line < end {
        hint(line);
        line += 64;
    }
}

/// Elsewhere there are no hints.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn value<T>(_: &T) {}

/// Starts loading, without waiting for it, what a lookup starting at
/// `(ctrl, index, mask)` in a table of `size`-byte entries will read: the
/// group of 16 control bytes where its probe starts, and the lines of the
/// first three buckets there (two in three keys sit in the first, nearly all
/// in one of the three: see the test). Hints to one line cost about nothing
/// after the first.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn hint_entry((ctrl, index, mask): (usize, usize, usize), size: usize) {
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

    /// For each key: the bucket hashbrown's own lookup finds it in, as an
    /// offset from the bucket [`KeyedMap::probe_start`] and [`bucket`] compute
    /// for it (0: the computed bucket itself; `None`: not among the 65 from
    /// there).
    fn offsets<V>(map: &KeyedMap<V>, keys: &[u64]) -> Vec<Option<usize>> {
        keys.iter()
            .map(|&k| {
                let (ctrl, start, mask) = map.probe_start(k);
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
            let cells: KeyedMap<[u64; 2]> = KeyedMap::default();
            let states: KeyedMap<[u64; 5]> = KeyedMap::default();
            for &k in &keys {
                cells.update(k, |_| [k, 0]);
                states.update(k, |_| [k; 5]);
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
