//! Everything with memory, behind one [`StateStore`] trait.
//!
//! A decision asks the store once ([`StateStore::check`]) with every counter it
//! needs, so a networked store can answer in one round trip; what the decision
//! changes is applied after it ([`StateStore::apply`]). Keys are 64-bit keyed
//! hashes (see [`crate::keys`]); the store never sees a raw identifier. Time is
//! passed in (`now`, Unix nanoseconds): the store reads no clock.

pub mod account;
pub mod backoff;
pub mod conversion;
pub mod gcra;
pub mod listing;
pub mod memory;
pub mod session;

use crate::policy::{BackoffParams, Quota};
use crate::request::{AssessmentId, Event};
use std::future::Future;
use std::time::Duration;

pub use memory::MemoryStore;

/// One GCRA check: does a request under `key` conform to `quota`? With
/// `take`, a conforming request takes a cell; without, it is only a peek (the
/// cell is taken by [`Effects::take`] if the decision allows the request).
#[derive(Debug, Clone, Copy)]
pub struct RateCheck {
    pub key: u64,
    pub quota: Quota,
    pub take: bool,
}

/// Everything one decision asks of the store.
#[derive(Debug, Clone)]
pub struct CheckBatch {
    pub now: u64,
    pub rates: Vec<RateCheck>,
    /// The backoff key of the number, for an OTP send.
    pub backoff: Option<u64>,
    /// Remember this assessment so a later `Report` can name it.
    pub remember: Option<(AssessmentId, Remembered)>,
}

/// The store's answers, aligned with the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResults {
    /// `None`: conformed (and took a cell). `Some(wait)`: over the limit.
    pub rates: Vec<Option<Duration>>,
    /// `Some(wait)`: the number is backing off.
    pub backoff: Option<Duration>,
}

/// What is kept about an assessment for its `Report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub expires_at: u64,
    pub event: Event,
    pub backoff_key: Option<u64>,
}

/// What a decision or a report changes.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub now: u64,
    /// An allowed OTP send: advance the number's backoff.
    pub record_send: Option<(u64, BackoffParams)>,
    /// A verified code: the number's backoff starts over.
    pub reset_backoff: Option<u64>,
    /// Cells of limits that count only allowed requests.
    pub take: Vec<RateCheck>,
}

/// How much the store holds, for metrics and capacity planning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub rate_keys: usize,
    pub backoff_keys: usize,
    pub assessments: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// The state behind every limit. Implementations: [`MemoryStore`] (one process).
pub trait StateStore: Send + Sync + 'static {
    /// Runs every check of one decision, and remembers the assessment.
    fn check(
        &self,
        batch: &CheckBatch,
    ) -> impl Future<Output = Result<CheckResults, StoreError>> + Send;

    /// Applies what a decision or report changed.
    fn apply(&self, effects: &Effects) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A remembered assessment, if it has not expired.
    fn recall(
        &self,
        id: AssessmentId,
        now: u64,
    ) -> impl Future<Output = Result<Option<Remembered>, StoreError>> + Send;

    /// Drops state that no longer changes any decision. Never drops a key that is
    /// throttling, backing off or otherwise still in force. Returns how many
    /// entries went.
    fn evict_idle(&self, now: u64) -> usize;

    fn stats(&self) -> StoreStats;
}
