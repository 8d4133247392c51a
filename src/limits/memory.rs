//! The in-memory state store: sharded maps (dashmap), one process.
//!
//! Keys are already uniformly distributed keyed hashes, so the maps use a
//! pass-through hasher instead of hashing them again.

use super::backoff::BackoffState;
use super::gcra::{self, TatMap};
use super::{CheckBatch, CheckResults, Effects, Remembered, StateStore, StoreError, StoreStats};
use crate::request::AssessmentId;
use dashmap::DashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Hasher for keys that are already hashes: returns the key itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

#[derive(Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys; fold the bytes in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }
}

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

pub struct MemoryStore {
    tats: TatMap,
    backoff: DashMap<u64, BackoffState, PassThrough>,
    assessments: DashMap<u128, Remembered, PassThrough>,
    max_assessments: usize,
    assessments_len: AtomicUsize,
}

impl MemoryStore {
    /// `max_assessments` bounds the assessments remembered for `Report`; past it,
    /// new assessments are not remembered (their reports must then name the
    /// subject instead of the assessment id).
    pub fn new(max_assessments: usize) -> Self {
        MemoryStore {
            tats: DashMap::with_hasher(PassThrough),
            backoff: DashMap::with_hasher(PassThrough),
            assessments: DashMap::with_hasher(PassThrough),
            max_assessments,
            assessments_len: AtomicUsize::new(0),
        }
    }

    fn check_now(&self, batch: &CheckBatch) -> CheckResults {
        let rates = batch
            .rates
            .iter()
            .map(|r| gcra::check(&self.tats, r.key, r.quota, batch.now, r.take))
            .collect();
        let backoff = batch
            .backoff
            .and_then(|k| self.backoff.get(&k).and_then(|s| s.wait(batch.now)));
        if let Some((id, rec)) = batch.remember {
            if self.assessments_len.load(Ordering::Relaxed) < self.max_assessments {
                self.assessments.insert(id.0, rec);
                self.assessments_len
                    .store(self.assessments.len(), Ordering::Relaxed);
            }
        }
        CheckResults { rates, backoff }
    }

    fn apply_now(&self, e: &Effects) {
        if let Some((key, params)) = &e.record_send {
            self.backoff
                .entry(*key)
                .and_modify(|s| *s = BackoffState::after_send(Some(s), e.now, params))
                .or_insert_with(|| BackoffState::after_send(None, e.now, params));
        }
        if let Some(key) = e.reset_backoff {
            self.backoff.remove(&key);
        }
        for r in &e.take {
            gcra::check(&self.tats, r.key, r.quota, e.now, true);
        }
    }
}

impl StateStore for MemoryStore {
    async fn check(&self, batch: &CheckBatch) -> Result<CheckResults, StoreError> {
        Ok(self.check_now(batch))
    }

    async fn apply(&self, effects: &Effects) -> Result<(), StoreError> {
        self.apply_now(effects);
        Ok(())
    }

    async fn recall(&self, id: AssessmentId, now: u64) -> Result<Option<Remembered>, StoreError> {
        Ok(self
            .assessments
            .get(&id.0)
            .map(|r| *r)
            .filter(|r| r.expires_at > now))
    }

    fn evict_idle(&self, now: u64) -> usize {
        let mut gone = gcra::evict(&self.tats, now);
        let before = self.backoff.len();
        self.backoff.retain(|_, s| s.in_force(now));
        gone += before - self.backoff.len();
        let before = self.assessments.len();
        self.assessments.retain(|_, r| r.expires_at > now);
        let after = self.assessments.len();
        self.assessments_len.store(after, Ordering::Relaxed);
        gone + before - after
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            rate_keys: self.tats.len(),
            backoff_keys: self.backoff.len(),
            assessments: self.assessments.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BackoffParams;
    use crate::request::Event;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn params() -> BackoffParams {
        BackoffParams {
            base: Duration::from_secs(30),
            factor: 2.0,
            cap: Duration::from_secs(600),
            reset_after: Duration::from_secs(3600),
        }
    }

    fn batch(now: u64) -> CheckBatch {
        CheckBatch {
            now,
            rates: vec![],
            backoff: Some(9),
            remember: None,
        }
    }

    #[test]
    fn backoff_is_never_evicted_while_in_force() {
        let st = MemoryStore::new(10);
        let t0 = 1_000 * S;
        st.apply_now(&Effects {
            now: t0,
            record_send: Some((9, params())),
            reset_backoff: None,
            take: vec![],
        });
        assert_eq!(
            st.check_now(&batch(t0 + S)).backoff,
            Some(Duration::from_secs(29))
        );
        // Past next_allowed but within reset_after: kept (the next wait doubles).
        assert_eq!(st.evict_idle(t0 + 100 * S), 0);
        assert_eq!(st.stats().backoff_keys, 1);
        assert_eq!(st.evict_idle(t0 + 3600 * S), 1);
        assert_eq!(st.stats().backoff_keys, 0);
    }

    #[test]
    fn reset_clears_backoff() {
        let st = MemoryStore::new(10);
        let t0 = 1_000 * S;
        st.apply_now(&Effects {
            now: t0,
            record_send: Some((9, params())),
            reset_backoff: None,
            take: vec![],
        });
        st.apply_now(&Effects {
            now: t0,
            record_send: None,
            reset_backoff: Some(9),
            take: vec![],
        });
        assert_eq!(st.check_now(&batch(t0)).backoff, None);
    }

    #[test]
    fn remembered_assessments_expire_and_are_bounded() {
        let st = MemoryStore::new(2);
        let t0 = 1_000 * S;
        let rec = Remembered {
            expires_at: t0 + 60 * S,
            event: Event::OtpSend,
            backoff_key: Some(1),
        };
        for i in 0..3u128 {
            let mut b = batch(t0);
            b.remember = Some((AssessmentId(i), rec));
            st.check_now(&b);
        }
        assert_eq!(st.stats().assessments, 2, "bounded at max_assessments");
        let got = futures_lite_block(st.recall(AssessmentId(0), t0));
        assert_eq!(got.unwrap(), Some(rec));
        assert_eq!(
            futures_lite_block(st.recall(AssessmentId(0), t0 + 60 * S)).unwrap(),
            None
        );
        assert_eq!(st.evict_idle(t0 + 60 * S), 2);
    }

    fn futures_lite_block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
