//! The in-memory state store: sharded maps (dashmap), one process.
//!
//! Keys are already uniformly distributed keyed hashes, so the maps use a
//! pass-through hasher instead of hashing them again.

use super::account::AccountState;
use super::conversion::Scope;
use super::conversion::{ConversionStats, Label, Window};
use super::gcra::{self, TatMap};
use super::listing::Listing;
use super::phone::PhoneState;
use super::prefetch;
use super::recent::Recent;
use super::session::SessionState;
use super::{
    CheckBatch, CheckResults, Effect, Inspect, Inspection, Keep, List, Remembered, ResetScope,
    StateStore, StoreError, StoreLimits, StoreStats,
};
use crate::request::AssessmentId;
use dashmap::DashMap;
use std::hash::{BuildHasher, Hasher};

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

pub(super) type Map<V> = super::keyed::KeyedMap<V>;

/// Conversion windows by label, hashed with foldhash under a seed drawn per map
/// (SipHash cost more than the rest of a window lookup, six of them per send
/// and its report). foldhash does not claim to resist hash flooding; labels
/// come from requested numbers, but there are few of them (countries, calling
/// code and a few digits) and the map is bounded by `max_windows`.
type Windows = DashMap<Label, Window, foldhash::fast::RandomState>;

/// Runs a future of an engine over the memory store on the calling thread.
/// The memory store never waits, so one poll finishes it; for benches and
/// tests that drive the engine without a runtime. Panics if it would wait.
pub fn at_once<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    match std::pin::pin!(f)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

pub struct MemoryStore {
    tats: TatMap,
    phones: Map<PhoneState>,
    sessions: Map<SessionState>,
    accounts: Map<AccountState>,
    windows: Windows,
    blocks: Map<Listing>,
    safe: Map<Listing>,
    assessments: Recent,
    limits: StoreLimits,
}

fn active(map: &Map<Listing>, key: u64, now: u64) -> Option<Listing> {
    map.get(&key).filter(|l| l.active(now)).map(|l| l.clone())
}

impl MemoryStore {
    /// The newest `limits.max_assessments` assessments are remembered (an older
    /// one's report must name its subject instead of the assessment id); the
    /// other limits are kept by [`StateStore::relieve`].
    pub fn new(limits: StoreLimits) -> Self {
        MemoryStore {
            tats: Map::default(),
            phones: Map::default(),
            sessions: Map::default(),
            accounts: Map::default(),
            windows: Windows::default(),
            blocks: Map::default(),
            safe: Map::default(),
            assessments: Recent::new(limits.max_assessments),
            limits,
        }
    }

    /// The entries of a decision are rarely in cache: starts loading them all
    /// at once.
    fn hint_batch(&self, b: &CheckBatch) {
        for r in &b.rates {
            prefetch::entry(&self.tats, r.key);
        }
        if let Some(k) = b.phone {
            prefetch::entry(&self.phones, k);
        }
        if let Some(k) = b.session {
            prefetch::entry(&self.sessions, k);
        }
        if let Some(k) = b.account {
            prefetch::entry(&self.accounts, k);
        }
        if let Some(slot) = b
            .remember
            .and_then(|(id, _)| self.assessments.allocated_slot(id))
        {
            prefetch::value(slot);
        }
    }

    /// The window of `label`, made if there is none. Most sends and reports
    /// find theirs: a plain lookup first, the entry API's costlier one only
    /// for a new window.
    fn window(&self, label: &Label) -> dashmap::mapref::one::RefMut<'_, Label, Window> {
        match self.windows.get_mut(label) {
            Some(w) => w,
            None => self
                .windows
                .entry(*label)
                .or_insert_with(|| Window::new(*label)),
        }
    }

    /// The checks of `b`. Their entries load faster when
    /// [`StateStore::expect`] announced `b` first.
    fn check_now(&self, b: &CheckBatch) -> CheckResults {
        let now = b.now;
        let safe = b.safe.iter().any(|k| active(&self.safe, *k, now).is_some());
        let blocked = b.blocks.iter().find_map(|k| active(&self.blocks, *k, now));
        let rates = b
            .rates
            .iter()
            .map(|r| {
                if r.skipped(safe) {
                    None
                } else {
                    gcra::check(&self.tats, r.key, r.quota, now, r.cells, true)
                }
            })
            .collect();
        let conversion = b
            .conversion
            .iter()
            .map(|l| self.window(l).take_sent(now, b.conversion_window))
            .collect();
        if let Some((id, rec)) = b.remember {
            self.assessments.insert(id, rec);
        }
        CheckResults {
            rates,
            phone: b.phone.and_then(|k| self.phones.get(&k).map(|s| *s)),
            session: b
                .session
                .and_then(|k| self.sessions.get(&k).map(|s| *s))
                .filter(|s| s.expires_at > now),
            account: b.account.and_then(|k| self.accounts.get(&k).map(|s| *s)),
            conversion,
            blocked,
            safe,
        }
    }

    fn apply_one(&self, now: u64, e: &Effect) {
        match e {
            Effect::Refund(r) => gcra::refund(&self.tats, r.key, r.quota, r.cells),
            Effect::PhoneSent {
                key,
                backoff,
                forget_after,
            } => {
                self.phones.update(*key, |s| {
                    PhoneState::after_send(Some(s), backoff.as_ref(), *forget_after, now)
                });
            }
            Effect::PhoneVerified { key } => {
                self.phones.remove(key);
            }
            Effect::SessionSent {
                key,
                params,
                destination,
                channel,
            } => {
                self.sessions.update(*key, |s| {
                    SessionState::after_send(Some(s), params, *destination, *channel, now)
                });
            }
            Effect::SessionWrongCode { key, params } => {
                self.sessions.update(*key, |s| {
                    SessionState::after_wrong_code(Some(s), params, now)
                });
            }
            Effect::SessionFailed { key, params } => {
                self.sessions
                    .update(*key, |s| SessionState::after_failure(Some(s), params, now));
            }
            Effect::SessionDone { key } => {
                self.sessions.remove(key);
            }
            Effect::AccountSent { key, params } => {
                self.accounts
                    .update(*key, |s| AccountState::after_send(Some(s), params, now));
            }
            Effect::AccountFailed { key, params } => {
                self.accounts
                    .update(*key, |s| AccountState::after_failure(Some(s), params, now));
            }
            Effect::AccountSucceeded { key } => {
                if let Some(mut s) = self.accounts.get_mut(key) {
                    *s = AccountState::after_success(Some(&s), now);
                }
            }
            Effect::AccountVerified { key } => {
                if let Some(mut s) = self.accounts.get_mut(key) {
                    *s = AccountState::after_verified(Some(&s), now);
                }
            }
            Effect::Unsent { label, window } => {
                if let Some(mut w) = self.windows.get_mut(label) {
                    w.give_back_sent(now, *window);
                }
            }
            Effect::Uncounted { id } => self.assessments.uncount(*id),
            Effect::Verified { label, window } => {
                self.window(label).record_verified(now, *window);
            }
            Effect::Protect { label, until } => {
                self.window(label).protected_until = *until;
            }
            Effect::Release { label } => {
                if let Some(mut w) = self.windows.get_mut(label) {
                    w.protected_until = 0;
                }
            }
            Effect::List { list, key, listing } => {
                self.list(*list).insert(*key, listing.clone());
            }
            Effect::Unlist { list, key } => {
                self.list(*list).remove(key);
            }
            Effect::Reset {
                scope,
                phone,
                account,
                session,
            } => {
                let sends = matches!(scope, ResetScope::Sends | ResetScope::All);
                let failures = matches!(scope, ResetScope::Failures | ResetScope::All);
                if sends {
                    phone.map(|k| self.phones.remove(&k));
                    session.map(|k| self.sessions.remove(&k));
                }
                if let Some(k) = account {
                    if let Some(mut s) = self.accounts.get_mut(k) {
                        if sends {
                            s.unverified_sends = 0;
                        }
                        if failures {
                            s.failures = 0;
                            s.locked_until = 0;
                        }
                    }
                }
            }
            Effect::Forget { key } => {
                self.tats.remove(key);
            }
        }
    }

    /// Starts loading the entry `e` will change if it comes from a report: a
    /// code is entered or a login fails long after the check that loaded the
    /// subject's entries, so a report's number, session and account are
    /// rarely in cache, and their misses overlap this way. The effects of a
    /// decision reach entries its check has just loaded: no hint.
    fn hint(&self, e: &Effect) {
        match e {
            Effect::PhoneVerified { key } => prefetch::entry(&self.phones, *key),
            Effect::SessionWrongCode { key, .. } | Effect::SessionDone { key } => {
                prefetch::entry(&self.sessions, *key)
            }
            Effect::AccountFailed { key, .. }
            | Effect::AccountSucceeded { key }
            | Effect::AccountVerified { key } => prefetch::entry(&self.accounts, *key),
            _ => {}
        }
    }

    fn list(&self, list: List) -> &Map<Listing> {
        match list {
            List::Block => &self.blocks,
            List::Safe => &self.safe,
        }
    }
}

/// Over `max` entries: keeps only those `needed` says still decide something.
fn shed<K: Eq + std::hash::Hash, V, S: BuildHasher + Clone>(
    m: &DashMap<K, V, S>,
    max: usize,
    needed: impl Fn(&V) -> bool,
) -> usize {
    if m.len() <= max {
        return 0;
    }
    let before = m.len();
    m.retain(|_, v| needed(v));
    before - m.len()
}

impl StateStore for MemoryStore {
    fn expect(&self, batch: &CheckBatch) {
        self.hint_batch(batch);
    }

    async fn check(&self, batch: &CheckBatch) -> Result<CheckResults, StoreError> {
        Ok(self.check_now(batch))
    }

    async fn apply(&self, now: u64, effects: &[Effect]) -> Result<(), StoreError> {
        for e in effects {
            self.hint(e);
        }
        for e in effects {
            self.apply_one(now, e);
        }
        Ok(())
    }

    async fn recall(
        &self,
        id: AssessmentId,
        now: u64,
        spend_windows: bool,
    ) -> Result<Option<Remembered>, StoreError> {
        Ok(if spend_windows {
            self.assessments.spend(id, now)
        } else {
            self.assessments.get(id, now)
        })
    }

    async fn inspect(&self, q: &Inspect) -> Result<Inspection, StoreError> {
        let now = q.now;
        Ok(Inspection {
            phone: q.phone.and_then(|k| self.phones.get(&k).map(|s| *s)),
            account: q.account.and_then(|k| self.accounts.get(&k).map(|s| *s)),
            session: q
                .session
                .and_then(|k| self.sessions.get(&k).map(|s| *s))
                .filter(|s| s.expires_at > now),
            block: q.block.and_then(|k| active(&self.blocks, k, now)),
            safe: q.safe.and_then(|k| active(&self.safe, k, now)),
            rates: q
                .rates
                .iter()
                .map(|r| gcra::check(&self.tats, r.key, r.quota, now, r.cells, false))
                .collect(),
        })
    }

    async fn conversions(&self, now: u64) -> Result<Vec<(Label, ConversionStats)>, StoreError> {
        let mut out: Vec<_> = self
            .windows
            .iter_mut()
            .map(|mut w| (w.label, w.current(now)))
            .filter(|(_, s)| s.sent > 0 || s.verified > 0 || s.protected(now))
            .collect();
        out.sort_by_key(|(l, _)| *l);
        Ok(out)
    }

    fn evict_idle(&self, now: u64) -> usize {
        fn retain<K: Eq + std::hash::Hash, V, S: BuildHasher + Clone>(
            m: &DashMap<K, V, S>,
            mut keep: impl FnMut(&mut V) -> bool,
        ) -> usize {
            let before = m.len();
            m.retain(|_, v| keep(v));
            before - m.len()
        }
        gcra::evict(&self.tats, now)
            + retain(&self.phones, |s| s.in_force(now))
            + retain(&self.sessions, |s| s.expires_at > now)
            + retain(&self.accounts, |s| s.in_force(now))
            + retain(&self.windows, |w| !w.idle(now))
            + retain(&self.blocks, |l| l.active(now))
            + retain(&self.safe, |l| l.active(now))
            + self.assessments.evict(now)
    }

    fn relieve(&self, now: u64, keep: &Keep) -> usize {
        let lim = self.limits;
        let mut gone = 0;
        if self.tats.len() > lim.max_rate_keys {
            gone += gcra::evict(&self.tats, now);
            if self.tats.len() > lim.max_rate_keys {
                gone += gcra::relieve(&self.tats, now);
            }
        }
        gone += shed(&self.phones, lim.max_subjects, |s| {
            s.backoff_wait(now).is_some()
                || (keep.phone_unverified > 0 && s.unverified(now) >= keep.phone_unverified)
        });
        gone += shed(&self.sessions, lim.max_subjects, |s| {
            s.expires_at > now
                && (s.failed
                    || (keep.session_code_attempts > 0
                        && s.wrong_codes >= keep.session_code_attempts))
        });
        gone += shed(&self.accounts, lim.max_subjects, |s| {
            s.lock(now).is_some()
                || (keep.account_unverified > 0 && s.unverified(now) >= keep.account_unverified)
        });
        gone += shed(&self.windows, lim.max_windows, |w| {
            w.label.scope == Scope::Country || w.protected_until > now
        });
        if gone > 0 {
            tracing::warn!(
                dropped = gone,
                "state store over its limits: dropped entries that decide nothing now"
            );
        }
        gone
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            rate_keys: self.tats.len(),
            phone_keys: self.phones.len(),
            session_keys: self.sessions.len(),
            account_keys: self.accounts.len(),
            conversion_windows: self.windows.len(),
            listings: self.blocks.len() + self.safe.len(),
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

    fn sent(key: u64) -> Effect {
        Effect::PhoneSent {
            key,
            backoff: Some(params()),
            forget_after: Duration::from_secs(7200),
        }
    }

    fn batch(now: u64) -> CheckBatch {
        CheckBatch {
            now,
            phone: Some(9),
            ..Default::default()
        }
    }

    #[test]
    fn phone_state_is_never_evicted_while_in_force() {
        let st = MemoryStore::new(StoreLimits::default());
        let t0 = 1_000 * S;
        st.apply_one(t0, &sent(9));
        let r = st.check_now(&batch(t0 + S));
        assert_eq!(
            r.phone.unwrap().backoff_wait(t0 + S),
            Some(Duration::from_secs(29))
        );
        // Past the backoff but within reset_after / forget_after: kept.
        assert_eq!(st.evict_idle(t0 + 100 * S), 0);
        assert_eq!(st.evict_idle(t0 + 3600 * S), 0);
        assert_eq!(st.stats().phone_keys, 1);
        assert_eq!(st.evict_idle(t0 + 7200 * S), 1);
        assert_eq!(st.stats().phone_keys, 0);
    }

    #[test]
    fn verification_clears_the_number() {
        let st = MemoryStore::new(StoreLimits::default());
        let t0 = 1_000 * S;
        st.apply_one(t0, &sent(9));
        st.apply_one(t0, &Effect::PhoneVerified { key: 9 });
        assert_eq!(st.check_now(&batch(t0)).phone, None);
    }

    #[test]
    fn blocks_and_safe_list_end_and_are_evicted() {
        let st = MemoryStore::new(StoreLimits::default());
        let t0 = 1_000 * S;
        let l = Listing::new(t0, Some(Duration::from_secs(60)), "ticket 1");
        st.apply_one(
            t0,
            &Effect::List {
                list: List::Block,
                key: 5,
                listing: l.clone(),
            },
        );
        st.apply_one(
            t0,
            &Effect::List {
                list: List::Safe,
                key: 6,
                listing: l.clone(),
            },
        );
        let b = CheckBatch {
            now: t0,
            blocks: [4, 5].into_iter().collect(),
            safe: [6].into_iter().collect(),
            ..Default::default()
        };
        let r = st.check_now(&b);
        assert_eq!(r.blocked, Some(l));
        assert!(r.safe);
        let r = st.check_now(&CheckBatch {
            now: t0 + 60 * S,
            ..b.clone()
        });
        assert_eq!((r.blocked, r.safe), (None, false));
        assert_eq!(st.evict_idle(t0 + 60 * S), 2);
    }

    #[test]
    fn conversion_windows_list_and_evict() {
        let st = MemoryStore::new(StoreLimits::default());
        let t0 = 1_000_000 * S;
        let fr = Label::new(Scope::Country, "FR").unwrap();
        let hour = Duration::from_secs(3600);
        let send = CheckBatch {
            now: t0,
            conversion: [fr].into_iter().collect(),
            conversion_window: hour,
            ..Default::default()
        };
        // Each check answers with the counts before its send and counts it.
        let sent = |r: CheckResults| r.conversion.iter().map(|c| c.sent).collect::<Vec<_>>();
        assert_eq!(sent(st.check_now(&send)), [0]);
        assert_eq!(sent(st.check_now(&send)), [1]);
        assert_eq!(sent(st.check_now(&send)), [2]);
        // The third was not allowed: given back.
        st.apply_one(
            t0,
            &Effect::Unsent {
                label: fr,
                window: hour,
            },
        );
        st.apply_one(
            t0,
            &Effect::Verified {
                label: fr,
                window: hour,
            },
        );
        let all = futures_block(st.conversions(t0)).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].1.sent, all[0].1.verified), (2, 1));
        assert_eq!(st.evict_idle(t0 + 2 * 3600 * S), 1);
    }

    #[test]
    fn remembered_assessments_expire_and_are_bounded() {
        let st = MemoryStore::new(StoreLimits {
            max_assessments: 2,
            ..StoreLimits::default()
        });
        let t0 = 1_000 * S;
        let rec = Remembered {
            expires_at: t0 + 60 * S,
            event: Event::OtpSend,
            phone: Some(1),
            session: None,
            account: None,
            conversion: [None, None],
            region: None,
        };
        let ids: Vec<_> = (0..3).map(|n| AssessmentId::new(9, n)).collect();
        for id in &ids {
            let mut b = batch(t0);
            b.remember = Some((*id, rec));
            st.check_now(&b);
        }
        assert_eq!(st.stats().assessments, 2, "bounded at max_assessments");
        assert_eq!(
            futures_block(st.recall(ids[0], t0, false)).unwrap(),
            None,
            "the oldest made room for the newest"
        );
        assert_eq!(
            futures_block(st.recall(ids[2], t0, false)).unwrap(),
            Some(rec)
        );
        assert_eq!(
            futures_block(st.recall(ids[1], t0 + 60 * S, false)).unwrap(),
            None
        );
        assert_eq!(st.evict_idle(t0 + 60 * S), 2);
    }

    fn futures_block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
