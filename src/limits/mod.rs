//! Everything with memory, behind one [`StateStore`] trait.
//!
//! A decision asks the store once ([`StateStore::check`]) with every key it
//! needs, so a networked store can answer in one round trip; what the decision
//! or a report changes is applied after it as a list of [`Effect`]s
//! ([`StateStore::apply`]). Keys are 64-bit keyed hashes (see [`crate::keys`]);
//! the store never sees a raw identifier. Time is passed in (`now`, Unix
//! nanoseconds): the store reads no clock.

pub mod account;
pub mod backoff;
pub mod conversion;
pub mod gcra;
mod keyed;
pub mod listing;
pub mod memory;
pub mod phone;
mod prefetch;
pub mod recent;
pub mod session;

use crate::policy::{BackoffParams, Quota};
use crate::request::{AssessmentId, Channel, Event};
use crate::signals::CountryCode;
use account::{AccountParams, AccountState};
use conversion::{ConversionStats, Label};
use listing::Listing;
use phone::PhoneState;
use session::{SessionParams, SessionState};
use smallvec::SmallVec;
use std::future::Future;
use std::time::Duration;

pub use memory::MemoryStore;

/// One GCRA check: does a request under `key` conform to `quota`, taking
/// `cells` cells? In a [`CheckBatch`] a conforming request takes them; in an
/// [`Inspect`] it is only a peek (an operator's view).
#[derive(Debug, Clone, Copy)]
pub struct RateCheck {
    pub key: u64,
    pub quota: Quota,
    pub cells: u32,
    /// Counts only allowed requests: the cells a conforming request took are
    /// given back ([`Effect::Refund`]) if the decision does not allow it. Taken
    /// at once rather than after the decision, so concurrent requests never
    /// overshoot the limit (a budget, say) and an allowed request costs one
    /// lookup, not two.
    pub counts_allowed: bool,
    /// Skipped (conforms, takes nothing) when the request is safe-listed.
    pub bypassable: bool,
}

impl RateCheck {
    /// Whether the check is skipped (conforms, takes nothing) because a
    /// subject of the request is on the safe list.
    pub fn skipped(&self, safe: bool) -> bool {
        safe && self.bypassable
    }
}

/// Per-decision lists live on the stack up to these sizes (the default policy
/// runs about ten rate checks on an OTP send); a larger policy spills to the
/// heap and still works.
pub const RATES_INLINE: usize = 12;
pub type Rates = SmallVec<[RateCheck; RATES_INLINE]>;
pub type Waits = SmallVec<[Option<Duration>; RATES_INLINE]>;
/// Conversion windows of one destination: its country and its number range.
pub type Labels = SmallVec<[Label; 2]>;
/// Admin-list keys of one request's subjects.
pub type ListKeys = SmallVec<[u64; 8]>;
/// An allowed OTP send makes three (number, session and account counts); a
/// refused one a refund per limit counting allowed requests that took from it,
/// a give-back per conversion window and one for the assessment's memory of
/// them (eight with the default policy; one that also starts a protection
/// spills to the heap, rarely). Inline space is copied whole with the list,
/// so it is kept near what is used.
pub type Effects = SmallVec<[Effect; 8]>;

/// Everything one decision asks of the store.
#[derive(Debug, Clone, Default)]
pub struct CheckBatch {
    pub now: u64,
    pub rates: Rates,
    pub phone: Option<u64>,
    pub session: Option<u64>,
    pub account: Option<u64>,
    /// Conversion windows of the destination country and number range, for
    /// an OTP send: the check answers with their counts before this send and
    /// counts it in each (a window reached once a send, as limits counting
    /// allowed requests are); a decision that does not allow the send gives
    /// it back ([`Effect::Unsent`]).
    pub conversion: Labels,
    pub conversion_window: Duration,
    /// Keys of admin blocks that would apply to this request.
    pub blocks: ListKeys,
    /// Keys of safe-list entries that would apply to this request.
    pub safe: ListKeys,
    /// Remember this assessment so a later `Report` can name it.
    pub remember: Option<(AssessmentId, Remembered)>,
}

/// The store's answers, aligned with the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckResults {
    /// `None`: conformed (or skipped). `Some(wait)`: over the limit.
    pub rates: Waits,
    pub phone: Option<PhoneState>,
    pub session: Option<SessionState>,
    pub account: Option<AccountState>,
    /// Aligned with `batch.conversion`.
    pub conversion: SmallVec<[ConversionStats; 2]>,
    /// The first active block found.
    pub blocked: Option<Listing>,
    /// Some subject of the request is on the safe list.
    pub safe: bool,
}

/// What is kept about an assessment for its `Report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub expires_at: u64,
    pub event: Event,
    pub phone: Option<u64>,
    pub session: Option<u64>,
    pub account: Option<u64>,
    /// Country and number-range windows the send counted in.
    pub conversion: [Option<Label>; 2],
    /// Destination region, for metrics.
    pub region: Option<CountryCode>,
}

/// Which list an admin listing goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Block,
    Safe,
}

/// What the help desk resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetScope {
    /// Consecutive failures and the lock they caused.
    Failures,
    /// Unverified sends, backoff and session state.
    Sends,
    All,
}

/// One change to stored state.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Gives back the cells a limit that counts only allowed requests took
    /// for a request that was not allowed.
    Refund(RateCheck),
    /// A code was sent to the number: backoff advances, unverified sends + 1.
    PhoneSent {
        key: u64,
        backoff: Option<BackoffParams>,
        forget_after: Duration,
    },
    /// A code to the number was verified: backoff and unverified sends start over.
    PhoneVerified {
        key: u64,
    },
    SessionSent {
        key: u64,
        params: SessionParams,
        destination: u64,
        channel: Channel,
    },
    SessionWrongCode {
        key: u64,
        params: SessionParams,
    },
    SessionFailed {
        key: u64,
        params: SessionParams,
    },
    /// Verified: the session is complete and forgotten.
    SessionDone {
        key: u64,
    },
    AccountSent {
        key: u64,
        params: AccountParams,
    },
    AccountFailed {
        key: u64,
        params: AccountParams,
    },
    AccountSucceeded {
        key: u64,
    },
    AccountVerified {
        key: u64,
    },
    /// A send the check counted in this window (see
    /// [`CheckBatch::conversion`]) that the decision did not allow.
    Unsent {
        label: Label,
        window: Duration,
    },
    /// Assessment `id`'s windows are spent: its send was given back
    /// ([`Effect::Unsent`]) or the code check it was refused. A report
    /// naming it counts in no window (as after a report that counted in
    /// them, see [`StateStore::recall`]).
    Uncounted {
        id: AssessmentId,
    },
    Verified {
        label: Label,
        window: Duration,
    },
    Protect {
        label: Label,
        until: u64,
    },
    Release {
        label: Label,
    },
    List {
        list: List,
        key: u64,
        listing: Listing,
    },
    Unlist {
        list: List,
        key: u64,
    },
    Reset {
        scope: ResetScope,
        phone: Option<u64>,
        account: Option<u64>,
        session: Option<u64>,
    },
    /// Forgets a rate-limit key (a help-desk reset of everything).
    Forget {
        key: u64,
    },
}

/// What an operator asks about one subject.
#[derive(Debug, Clone, Default)]
pub struct Inspect {
    pub now: u64,
    pub phone: Option<u64>,
    pub account: Option<u64>,
    pub session: Option<u64>,
    pub block: Option<u64>,
    pub safe: Option<u64>,
    /// Peeked, never taken.
    pub rates: Vec<RateCheck>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    pub phone: Option<PhoneState>,
    pub account: Option<AccountState>,
    pub session: Option<SessionState>,
    pub block: Option<Listing>,
    pub safe: Option<Listing>,
    /// Aligned with `Inspect::rates`.
    pub rates: Vec<Option<Duration>>,
}

/// The most entries each map may hold; past that, [`StateStore::relieve`]
/// sheds entries that decide nothing right now. Bounds memory under floods of
/// distinct IPs, numbers, devices, accounts or sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Rate-limiter keys (16 bytes of state each).
    pub max_rate_keys: usize,
    /// Numbers, sessions and accounts, each.
    pub max_subjects: usize,
    /// Conversion windows (number ranges; countries are always kept).
    pub max_windows: usize,
    /// Assessments remembered for `Report`: the newest this many.
    pub max_assessments: usize,
}

impl Default for StoreLimits {
    /// About 0.5 GiB at the worst: 4 M limiter keys, 1 M numbers, sessions and
    /// accounts each, 100 k ranges, 1 M remembered assessments.
    fn default() -> Self {
        StoreLimits {
            max_rate_keys: 4_000_000,
            max_subjects: 1_000_000,
            max_windows: 100_000,
            max_assessments: 1_000_000,
        }
    }
}

/// What still decides something, from the policy in force: under pressure a
/// number, account or session at or over these counts is kept. 0: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    pub phone_unverified: u16,
    pub account_unverified: u16,
    pub session_code_attempts: u8,
}

/// How much the store holds, for metrics and capacity planning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub rate_keys: usize,
    pub phone_keys: usize,
    pub session_keys: usize,
    pub account_keys: usize,
    pub conversion_windows: usize,
    pub listings: usize,
    pub assessments: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// The state behind every limit. Implementations: [`MemoryStore`] (one process).
pub trait StateStore: Send + Sync + 'static {
    /// A hint, given as soon as a decision's batch is planned: start loading
    /// what [`check`](Self::check) will read, so that it overlaps with the
    /// work done before the check (the IP lookups). Changes nothing; a store
    /// with nothing to load ahead ignores it.
    fn expect(&self, _batch: &CheckBatch) {}

    /// Runs every check of one decision, and remembers the assessment.
    fn check(
        &self,
        batch: &CheckBatch,
    ) -> impl Future<Output = Result<CheckResults, StoreError>> + Send;

    /// Applies what a decision, a report or an operator changed.
    fn apply(
        &self,
        now: u64,
        effects: &[Effect],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A remembered assessment, if it has not expired. `spend_windows`: the
    /// conversion windows it remembered are returned to this call only (a
    /// report counting a verification in them), atomically.
    fn recall(
        &self,
        id: AssessmentId,
        now: u64,
        spend_windows: bool,
    ) -> impl Future<Output = Result<Option<Remembered>, StoreError>> + Send;

    /// The state of one subject, for operators.
    fn inspect(&self, q: &Inspect) -> impl Future<Output = Result<Inspection, StoreError>> + Send;

    /// Every conversion window with traffic or protection, for operators and
    /// metrics.
    fn conversions(
        &self,
        now: u64,
    ) -> impl Future<Output = Result<Vec<(Label, ConversionStats)>, StoreError>> + Send;

    /// Drops state that no longer changes any decision. Never drops a key that is
    /// throttling, backing off, locked, blocked or otherwise still in force.
    /// Returns how many entries went.
    fn evict_idle(&self, now: u64) -> usize;

    /// When a map holds more than its limit: drops idle entries, then entries
    /// that decide nothing now. Never a throttling limiter key, a number backing
    /// off or at its unverified limit, a locked or refused account, a failed or
    /// exhausted session, a protected window. Cheap when under the limits.
    fn relieve(&self, now: u64, keep: &Keep) -> usize;

    fn stats(&self) -> StoreStats;
}
