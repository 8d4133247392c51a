//! The newest assessments, for `Report` to find by id: a ring of
//! `max_assessments` slots indexed by the id's sequence number.
//!
//! Consecutive assessments land in neighbouring slots (one cache line touched
//! per assessment, no hashing, no growth), the oldest is overwritten when the
//! ring comes round, and memory is bounded by construction. Slots are
//! allocated a chunk at a time, as the ring first fills.

use super::Remembered;
use crate::request::AssessmentId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Slots allocated at once.
const CHUNK: usize = 4096;

pub(crate) type Slot = Mutex<Option<(AssessmentId, Remembered)>>;

pub struct Recent {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    capacity: usize,
    /// Slots holding an assessment (expired or not).
    filled: AtomicUsize,
}

impl Recent {
    /// `capacity` 0: nothing is remembered.
    pub fn new(capacity: usize) -> Self {
        Recent {
            chunks: (0..capacity.div_ceil(CHUNK))
                .map(|_| OnceLock::new())
                .collect(),
            capacity,
            filled: AtomicUsize::new(0),
        }
    }

    /// The index of `id`'s slot; `None` when nothing is remembered.
    fn index(&self, id: AssessmentId) -> Option<usize> {
        (self.capacity != 0).then(|| (id.sequence() % self.capacity as u64) as usize)
    }

    fn slot(&self, id: AssessmentId) -> Option<&Slot> {
        let i = self.index(id)?;
        let chunk = self.chunks[i / CHUNK].get_or_init(|| {
            let len = CHUNK.min(self.capacity - i / CHUNK * CHUNK);
            (0..len).map(|_| Mutex::new(None)).collect()
        });
        Some(&chunk[i % CHUNK])
    }

    /// The slot `id` will go to, if its chunk is allocated already (for a
    /// hint: slots are reached in turn, but between two of them a decision
    /// reaches enough other memory that the next one is rarely in cache).
    pub(crate) fn allocated_slot(&self, id: AssessmentId) -> Option<&Slot> {
        let i = self.index(id)?;
        self.chunks[i / CHUNK].get().map(|chunk| &chunk[i % CHUNK])
    }

    /// Remembers `rec`, in place of the assessment `capacity` ids older.
    pub fn insert(&self, id: AssessmentId, rec: Remembered) {
        if let Some(slot) = self.slot(id) {
            let old = lock(slot).replace((id, rec));
            if old.is_none() {
                self.filled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops the conversion windows remembered with `id`, if it is still
    /// held: its send or code check was refused.
    pub fn uncount(&self, id: AssessmentId) {
        if let Some(slot) = self.allocated_slot(id) {
            // Refused a moment ago: not expired, whatever the clock.
            held(slot, id, 0, drop_windows);
        }
    }

    /// The assessment `id`, unless it expired or was overwritten.
    pub fn get(&self, id: AssessmentId, now: u64) -> Option<Remembered> {
        held(self.slot(id)?, id, now, |_| ())
    }

    /// As [`get`](Self::get), and drops the conversion windows remembered
    /// with it under the same lock: of several reports naming it, even at
    /// once, only one gets them.
    pub fn spend(&self, id: AssessmentId, now: u64) -> Option<Remembered> {
        held(self.slot(id)?, id, now, drop_windows)
    }

    /// Empties the slots of expired assessments; returns how many.
    pub fn evict(&self, now: u64) -> usize {
        let mut gone = 0;
        for chunk in self.chunks.iter().filter_map(OnceLock::get) {
            for slot in chunk.iter() {
                let mut s = lock(slot);
                if s.is_some_and(|(_, rec)| rec.expires_at <= now) {
                    *s = None;
                    gone += 1;
                }
            }
        }
        self.filled.fetch_sub(gone, Ordering::Relaxed);
        gone
    }

    pub fn len(&self) -> usize {
        self.filled.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What `slot` holds if it is `id`'s and unexpired at `now`, as it was
/// before `then` changed it.
fn held(
    slot: &Slot,
    id: AssessmentId,
    now: u64,
    then: impl FnOnce(&mut Remembered),
) -> Option<Remembered> {
    let mut guard = lock(slot);
    let (_, rec) = guard
        .as_mut()
        .filter(|(held, rec)| *held == id && rec.expires_at > now)?;
    let found = *rec;
    then(rec);
    Some(found)
}

fn drop_windows(rec: &mut Remembered) {
    rec.conversion = [None, None];
}

/// A slot holds plain data: a panic elsewhere cannot leave it half-written.
fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<(AssessmentId, Remembered)>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Event;

    fn rec(expires_at: u64) -> Remembered {
        Remembered {
            expires_at,
            event: Event::OtpSend,
            phone: Some(1),
            session: None,
            account: None,
            conversion: [None, None],
            region: None,
        }
    }

    #[test]
    fn the_oldest_is_overwritten_when_the_ring_comes_round() {
        let r = Recent::new(CHUNK + 3);
        let ids: Vec<_> = (0..CHUNK as u64 + 5)
            .map(|n| AssessmentId::new(7, 1000 + n))
            .collect();
        for (n, id) in ids.iter().enumerate() {
            r.insert(*id, rec(100 + n as u64));
        }
        assert_eq!(r.len(), CHUNK + 3, "every slot filled once");
        assert_eq!(r.get(ids[0], 0), None, "overwritten");
        assert_eq!(r.get(ids[1], 0), None, "overwritten");
        assert_eq!(r.get(ids[2], 0), Some(rec(102)));
        assert_eq!(r.get(ids[CHUNK + 4], 0), Some(rec(100 + CHUNK as u64 + 4)));
        // Same slot, another id (another process prefix): not found.
        assert_eq!(r.get(AssessmentId::new(8, 1002), 0), None);
    }

    #[test]
    fn expired_assessments_are_not_found_and_are_evicted() {
        let r = Recent::new(10);
        r.insert(AssessmentId::new(1, 0), rec(50));
        r.insert(AssessmentId::new(1, 1), rec(60));
        assert_eq!(r.get(AssessmentId::new(1, 0), 49), Some(rec(50)));
        assert_eq!(r.get(AssessmentId::new(1, 0), 50), None);
        assert_eq!(r.evict(55), 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get(AssessmentId::new(1, 1), 55), Some(rec(60)));
    }

    #[test]
    fn uncount_drops_the_windows_of_that_id_only() {
        use crate::limits::conversion::{Label, Scope};
        let fr = Label::new(Scope::Country, "FR");
        let counted = Remembered {
            conversion: [fr, None],
            ..rec(50)
        };
        let r = Recent::new(10);
        let (a, b) = (AssessmentId::new(1, 0), AssessmentId::new(1, 1));
        r.insert(a, counted);
        r.insert(b, counted);
        r.uncount(a);
        assert_eq!(r.get(a, 0), Some(rec(50)), "windows dropped, the rest kept");
        assert_eq!(r.get(b, 0), Some(counted));
        // Another id in `b`'s slot (another prefix): `b` is left alone.
        r.uncount(AssessmentId::new(2, 1));
        assert_eq!(r.get(b, 0), Some(counted));
        // Spent: the first call gets the windows, the next ones do not.
        assert_eq!(r.spend(b, 0), Some(counted));
        assert_eq!(r.spend(b, 0), Some(rec(50)));
        assert_eq!(r.get(b, 0), Some(rec(50)));
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let r = Recent::new(0);
        r.insert(AssessmentId::new(1, 0), rec(50));
        assert_eq!(r.get(AssessmentId::new(1, 0), 0), None);
        assert!(r.is_empty());
        assert!(r.allocated_slot(AssessmentId::new(1, 0)).is_none());
    }

    /// The slot a hint names is the one the id is stored in, and naming it
    /// allocates nothing.
    #[test]
    fn allocated_slot_is_where_the_id_goes() {
        let r = Recent::new(2 * CHUNK + 7);
        let in_first = AssessmentId::new(3, 5);
        let in_last = AssessmentId::new(3, 2 * CHUNK as u64 + 6);
        assert!(
            r.allocated_slot(in_first).is_none(),
            "nothing allocated yet"
        );
        r.insert(in_first, rec(10));
        assert!(r.allocated_slot(in_last).is_none(), "its chunk is not");
        assert!(
            r.chunks[2].get().is_none(),
            "and naming it did not allocate it"
        );
        let slot = r.allocated_slot(in_first).expect("its chunk is allocated");
        assert!(std::ptr::eq(slot, r.slot(in_first).unwrap()));
        assert_eq!(*lock(slot), Some((in_first, rec(10))));
        // Past the first chunk: the chunk and the place in it.
        r.insert(in_last, rec(20));
        let last = r.allocated_slot(in_last).expect("allocated by the insert");
        assert!(std::ptr::eq(last, &r.chunks[2].get().unwrap()[6]));
        assert_eq!(*lock(last), Some((in_last, rec(20))));
        // Ids a ring apart share a slot.
        let round = AssessmentId::new(3, 5 + 2 * CHUNK as u64 + 7);
        assert!(std::ptr::eq(r.allocated_slot(round).unwrap(), slot));
        assert!(!std::ptr::eq(
            r.allocated_slot(AssessmentId::new(3, 6)).unwrap(),
            slot
        ));
    }
}
