//! tollgate: a risk-scoring and anti-SMS-pumping engine served over gRPC.
//!
//! A request flows one way through these modules, in this order:
//!
//! - [`service`]: the only module that knows tonic. Turns proto messages into the
//!   domain types of [`request`] with `TryFrom` (all validation happens there),
//!   calls the [`engine`], turns the [`decision`] back into a proto message, and maps
//!   errors to `Status` in one function.
//! - [`request`]: validated domain types (`AssessInput`, `ReportInput`): parsed IP,
//!   syntactically valid E.164 number, bounded strings, known enum values.
//! - [`signals`]: facts derived from the request (phone calling code, region, type,
//!   prefix; IP subnet) and the subjects that limits are keyed on.
//! - [`limits`]: everything with memory, behind the [`limits::StateStore`] trait:
//!   GCRA rate limiters (governor's algorithm), exponential backoff per number,
//!   remembered assessments. Keys are keyed hashes ([`keys`]), never raw identifiers.
//! - [`policy`]: the TOML policy compiled into an immutable [`policy::Snapshot`];
//!   evaluation is pure: `(snapshot, signals, counter results) -> Decision`.
//! - [`decision`]: `Decision { verdict, score, reasons, retry_after, step_up, .. }`.
//! - [`effects`]: what a decision or a report changes (an allowed OTP send is a
//!   send: backoff, unverified counts, session, conversion), applied after it.
//! - [`engine`]: ties one request through the stages above.
//! - [`audit`]: the evidence log: one JSON line per decision, report and admin
//!   call, written off the hot path.
//!
//! Around them: [`clock`] (injected time), [`mask`] (masked identifiers for logs),
//! [`metrics`] (names and recording),
//! [`server`] (listeners, health, reflection, graceful shutdown), [`settings`]
//! (restart-only process settings).

// No unsafe code but one prefetch hint, allowed where it is: see `limits::prefetch`.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod admin_cli;
pub mod audit;
pub mod clock;
pub mod decision;
pub mod effects;
pub mod engine;
pub mod keys;
pub mod limits;
pub mod mask;
pub mod metrics;
pub mod policy;
pub mod proto;
pub mod reload;
pub mod request;
pub mod server;
pub mod service;
pub mod settings;
pub mod signals;
