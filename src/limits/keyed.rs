//! The store's maps of hashed keys: a dashmap whose shards publish where their
//! tables sit, so [`super::prefetch`] can hint an entry without taking the
//! shard's lock.
//!
//! Reading a table's geometry under the shard's read lock costs two atomic
//! read-modify-writes (each a full barrier on x86), and on a server whose
//! cores share the store, a transfer of the lock's line from the other core:
//! for the thirteen entries of an OTP send that was more lock traffic than
//! the lookups themselves. So every write that can move a table (an insert:
//! tables grow, they never shrink here) publishes its control-bytes address
//! and bucket mask in plain atomics, and prefetch reads those. Published
//! values may be stale or torn between the two words; a hint to a wrong
//! address only wastes a load, and nothing here dereferences them.

use dashmap::{DashMap, SharedValue};
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::memory::PassThrough;

/// Hashed keys (already uniform: [`PassThrough`]) to `V`, sharded as dashmap
/// shards, with each shard's table geometry published. Reads, removals and
/// scans go through the dashmap ([`Deref`]); writes that may insert go
/// through [`KeyedMap::upsert`] so the geometry follows the table. (An insert
/// through dashmap's own calls, as the admin lists make, is as correct; it
/// only leaves that shard's hints stale until the next upsert there.)
pub struct KeyedMap<V> {
    map: DashMap<u64, V, PassThrough>,
    /// Per shard: the table's control-bytes address and its bucket mask.
    geometry: Box<[[AtomicUsize; 2]]>,
}

impl<V> Default for KeyedMap<V> {
    fn default() -> Self {
        let map = DashMap::with_hasher(PassThrough);
        let geometry = map
            .shards()
            .iter()
            .map(|s| {
                let t = s.read();
                [
                    AtomicUsize::new(t.data_end().as_ptr() as usize),
                    AtomicUsize::new(t.buckets() - 1),
                ]
            })
            .collect();
        KeyedMap { map, geometry }
    }
}

impl<V> Deref for KeyedMap<V> {
    type Target = DashMap<u64, V, PassThrough>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V> KeyedMap<V> {
    /// The hash dashmap files `key` under (the key itself), and its shard.
    fn locate(&self, key: u64) -> (u64, usize) {
        let hash = self.map.hash_usize(&key);
        (hash as u64, self.map.determine_shard(hash))
    }

    /// Under the write lock of `key`'s shard: `f` sees the value (`None` when
    /// absent) and returns what to store (`None`: leave it as it is, insert
    /// nothing) and a result. Read-decide-write is atomic per key.
    pub fn upsert<R>(&self, key: u64, f: impl FnOnce(Option<&V>) -> (Option<V>, R)) -> R {
        let (hash, shard) = self.locate(key);
        let mut table = self.map.shards()[shard].write();
        match table.get_mut(hash, |(k, _)| *k == key) {
            Some((_, v)) => {
                let (new, r) = f(Some(v.get()));
                if let Some(new) = new {
                    *v.get_mut() = new;
                }
                r
            }
            None => {
                let (new, r) = f(None);
                if let Some(new) = new {
                    let map = &self.map;
                    table.insert_entry(hash, (key, SharedValue::new(new)), |(k, _)| {
                        map.hash_usize(k) as u64
                    });
                    // Publish only a change: the line stays shared between
                    // the cores that read it.
                    let [ctrl, mask] = &self.geometry[shard];
                    let (c, m) = (table.data_end().as_ptr() as usize, table.buckets() - 1);
                    if ctrl.load(Ordering::Relaxed) != c || mask.load(Ordering::Relaxed) != m {
                        ctrl.store(c, Ordering::Relaxed);
                        mask.store(m, Ordering::Relaxed);
                    }
                }
                r
            }
        }
    }

    /// Applies `f` to the value of `key`, starting from `V::default()` when
    /// absent.
    pub fn update(&self, key: u64, f: impl FnOnce(&V) -> V)
    where
        V: Default,
    {
        self.upsert(key, |v| {
            let new = match v {
                Some(v) => f(v),
                None => f(&V::default()),
            };
            (Some(new), ())
        })
    }

    /// Where a lookup of `key` starts, as last published: the control-bytes
    /// address of its shard's table (buckets are stored downwards from
    /// there), the first bucket probed and the bucket mask. hashbrown's probe
    /// starts at `hash & mask`; the hash is the key.
    #[inline]
    pub fn probe_start(&self, key: u64) -> (usize, usize, usize) {
        let (hash, shard) = self.locate(key);
        let [ctrl, mask] = &self.geometry[shard];
        let mask = mask.load(Ordering::Relaxed);
        (ctrl.load(Ordering::Relaxed), hash as usize & mask, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_geometry_follows_the_tables_as_they_grow() {
        let m: KeyedMap<u64> = KeyedMap::default();
        let mut grew = 0;
        for i in 0..50_000u64 {
            let k = crate::request::mix(i);
            let before = m.probe_start(k);
            m.update(k, |v| v + 1);
            let (ctrl, start, mask) = m.probe_start(k);
            let (hash, shard) = m.locate(k);
            let t = m.shards()[shard].read();
            assert_eq!(ctrl, t.data_end().as_ptr() as usize, "key {i}");
            assert_eq!(mask, t.buckets() - 1, "key {i}");
            assert_eq!(start, hash as usize & mask);
            grew += usize::from(before.0 != ctrl);
        }
        assert!(grew > 10, "the tables grew {grew} times");
        assert_eq!(m.len(), 50_000);
    }

    #[test]
    fn upsert_inserts_updates_and_leaves_alone() {
        let m: KeyedMap<u32> = KeyedMap::default();
        assert_eq!(m.upsert(7, |v| (None, v.copied())), None);
        assert!(m.get(&7).is_none(), "nothing stored: nothing inserted");
        assert_eq!(m.upsert(7, |v| (Some(3), v.copied())), None);
        assert_eq!(m.upsert(7, |v| (Some(v.unwrap() * 2), v.copied())), Some(3));
        assert_eq!(*m.get(&7).unwrap(), 6);
        m.update(7, |v| v + 1);
        m.update(8, |v| v + 1);
        assert_eq!((*m.get(&7).unwrap(), *m.get(&8).unwrap()), (7, 1));
        // dashmap's own calls find what upsert stored, and the other way round.
        m.insert(9, 40);
        m.update(9, |v| v + 2);
        assert_eq!(m.remove(&9), Some((9, 42)));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn dashmap_and_upsert_agree_on_where_keys_live() {
        // Enough keys over every shard that tables span many groups: a key
        // filed under another hash or shard than dashmap's would be missed.
        let m: KeyedMap<u64> = KeyedMap::default();
        let keys: Vec<u64> = (0..20_000).map(crate::request::mix).collect();
        for (i, &k) in keys.iter().enumerate() {
            if i % 2 == 0 {
                m.update(k, |_| k);
            } else {
                m.insert(k, k);
            }
        }
        for &k in &keys {
            assert_eq!(m.get(&k).map(|v| *v), Some(k), "dashmap finds {k:#x}");
            assert_eq!(
                m.upsert(k, |v| (None, v.copied())),
                Some(k),
                "upsert finds {k:#x}"
            );
        }
        assert_eq!(m.len(), keys.len(), "no key stored twice");
        let (even, odd): (Vec<u64>, Vec<u64>) = keys.iter().partition(|k| *k % 2 == 0);
        for k in &even {
            assert!(m.remove(k).is_some());
        }
        assert_eq!(m.len(), odd.len());
    }
}
