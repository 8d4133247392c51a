//! The audit log: the evidence record of every decision, report and admin call.
//!
//! One JSON line per `Assess` decision, per `Report` and per AdminService call,
//! so the trail of one OTP (requested, sent, code entered, result) can be put
//! back together from its `assessment_id`. Written to a file rotated by size or
//! to stdout.
//!
//! # Never on the hot path
//!
//! [`Audit::assessment`] and friends clone the already-validated request and the
//! decision into a record and hand it to a bounded queue with `try_send`; a
//! dedicated thread ([`AuditTask`]) masks, formats and writes with blocking I/O,
//! so a slow disk never holds a tokio worker or a decision. When the queue is
//! full the record is dropped and counted (`tollgate_audit_dropped_total`,
//! [`Audit::dropped`]); the decision goes ahead either way. Lines that cannot be
//! written (I/O errors) are counted in `tollgate_audit_write_errors_total` and
//! logged once per run of failures.
//!
//! A full queue holds at most `capacity` records; a record is the request (at
//! most ~6 KiB with 16 maximal attributes, a few hundred bytes typically), so the
//! default 65 536 bounds the queue at ~400 MiB in the worst case and tens of MiB
//! in practice.
//!
//! On shutdown, [`AuditTask::finish`] closes the queue, writes everything that
//! was queued, syncs the file and returns the counts. Records offered after that
//! are dropped and counted.
//!
//! # Masking
//!
//! By default identifiers are written masked (see [`crate::mask`]); the operator
//! can turn masking off ([`AuditConfig::unmasked`]) because this log is the
//! evidence record. Every line says which it is (`masked`).
//!
//! | field | masked | unmasked |
//! |---|---|---|
//! | `phone` | `+336••••••78` | `+33612345678` |
//! | `email` | `u•••@example.com` | `user@example.com` |
//! | `ip` | `192.0.2.0/24`, `2001:db8:aa::/48` | `192.0.2.77` |
//! | `device_id`, `account_id`, `session_id` | `de… (9 chars)` | `device-42` |
//! | `user_agent` | first 64 characters, then `…` | in full |
//! | `attributes` values | first 24 characters, then `…` | in full |
//! | admin `subject` | `phone +336••••••78`, `account ac… (9 chars)` | `phone +33612345678` |
//!
//! `tenant`, `currency`, `amount_minor`, prefixes, networks and countries are
//! not personal and are always written in full.
//!
//! # Line format
//!
//! One JSON object per line, UTF-8, `\n`-terminated. Field names are stable;
//! optional fields are left out when the request did not carry them. `time` is
//! RFC 3339 UTC with microseconds, from the injected clock.
//!
//! `type: "assessment"` (one per `Assess` decision):
//!
//! | field | type | |
//! |---|---|---|
//! | `type`, `time`, `assessment_id` (32 hex digits), `masked` | | always |
//! | `event` | `otp_send`, `otp_verify`, `login`, … | always |
//! | `channel` | `sms`, `voice`, `email`, `whatsapp`, `push` | optional |
//! | `phone`, `email`, `device_id`, `account_id`, `session_id`, `tenant`, `ip`, `user_agent`, `amount_minor`, `currency` | string (`amount_minor`: integer) | optional |
//! | `attributes` | object of string to string | optional |
//! | `signals` | object: `phone: {calling_code, region?, type, valid}` | always (may be `{}`) |
//! | `decision` | `allow`, `step_up`, `block` | always |
//! | `score` | 0–100 | always |
//! | `reasons` | array of `{code, shadow}` | always (may be `[]`) |
//! | `retry_after_ms` | integer | when throttled |
//! | `step_up` | array of `captcha`, `email_otp`, … | when the decision is `step_up` |
//! | `policy_version` | string | always |
//!
//! ```json
//! {"type":"assessment","time":"2026-01-01T00:00:00.000000Z","assessment_id":"0000000000000000000000000000002a","masked":true,"event":"otp_send","channel":"sms","phone":"+336••••••78","account_id":"ac… (9 chars)","ip":"192.0.2.0/24","signals":{"phone":{"calling_code":33,"region":"FR","type":"mobile","valid":true}},"decision":"block","score":100,"reasons":[{"code":"phone.backoff","shadow":false}],"retry_after_ms":30000,"policy_version":"2026-01-01"}
//! ```
//!
//! `type: "report"` (one per `Report`; `assessment_id` links it to its
//! assessment when the caller named one):
//! `type`, `time`, `assessment_id`?, `masked`, `outcome` (`otp_delivered`,
//! `otp_verified`, `otp_wrong_code`, …), then the identifiers as above.
//!
//! ```json
//! {"type":"report","time":"2026-01-01T00:00:05.000000Z","assessment_id":"0000000000000000000000000000002a","masked":true,"outcome":"otp_verified","account_id":"ac… (9 chars)"}
//! ```
//!
//! `type: "admin"` (one per AdminService call): `type`, `time`, `masked`,
//! `caller` (the token id, never the token), `action` (`block`,
//! `reset_counters`, …), `subject`?, `reason`? (left out when empty), `ok`.
//!
//! ```json
//! {"type":"admin","time":"2026-01-01T00:01:00.000000Z","masked":true,"caller":"helpdesk","action":"block","subject":"prefix +88216","reason":"pumping","ok":true}
//! ```

mod line;
mod sink;
mod writer;

use crate::clock::SharedClock;
use crate::decision::Decision;
use crate::metrics;
use crate::request::{AdminSubject, AssessInput, AssessmentId, ReportInput};
use crate::signals::Signals;
use sink::{Out, RotatingFile, Sink};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};
use writer::Writer;

pub use line::{ATTRIBUTE_PREVIEW, USER_AGENT_PREVIEW};

/// Where the lines go.
pub enum AuditSink {
    /// Appended to `path`; when the next line would take it over `max_bytes`,
    /// `path` becomes `path.1` (`path.1` becomes `path.2`, …) and a new file is
    /// started. `keep` old files are kept; older ones are deleted.
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: usize,
    },
    /// Standard output, e.g. for a log collector. Send the `tracing` logs to
    /// stderr then, or the two interleave.
    Stdout,
    /// Any writer (tests, or a program embedding tollgate). Written and
    /// flushed once per batch of lines.
    Writer(Box<dyn Write + Send>),
}

impl fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditSink::File {
                path,
                max_bytes,
                keep,
            } => f
                .debug_struct("File")
                .field("path", path)
                .field("max_bytes", max_bytes)
                .field("keep", keep)
                .finish(),
            AuditSink::Stdout => f.write_str("Stdout"),
            AuditSink::Writer(_) => f.write_str("Writer(..)"),
        }
    }
}

/// The largest queue [`Audit::start`] accepts (16 Mi records).
pub const MAX_CAPACITY: usize = 1 << 24;

/// Restart-only audit settings.
#[derive(Debug)]
pub struct AuditConfig {
    pub sink: AuditSink,
    /// Records the queue holds before new ones are dropped (1 to
    /// [`MAX_CAPACITY`]).
    pub capacity: usize,
    /// Write identifiers in full instead of masked.
    pub unmasked: bool,
}

impl Default for AuditConfig {
    /// Masked lines to stdout, with room for 65 536 queued records.
    fn default() -> Self {
        AuditConfig {
            sink: AuditSink::Stdout,
            capacity: 65_536,
            unmasked: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit queue capacity must be 1 to {MAX_CAPACITY}, got {0}")]
    Capacity(usize),
    #[error("audit log max_bytes must be at least 1, got 0 (for {path})")]
    MaxBytes { path: PathBuf },
    #[error("cannot start the audit writer thread: {0}")]
    Spawn(std::io::Error),
}

/// What the audit log did, as counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Lines written to the sink.
    pub written: u64,
    /// Records dropped because the queue was full or closed.
    pub dropped: u64,
    /// Records lost to I/O errors of the sink.
    pub write_errors: u64,
}

/// One record, as queued: owned copies of what the hot path already had.
/// Masking and formatting happen on the writer thread.
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every record is an assessment: boxing it would only add an allocation per decision"
)]
enum Record {
    Assessment {
        time: u64,
        id: AssessmentId,
        input: AssessInput,
        signals: Signals,
        decision: Decision,
    },
    Report {
        time: u64,
        input: ReportInput,
    },
    Admin {
        time: u64,
        caller: Arc<str>,
        action: &'static str,
        subject: Option<AdminSubject>,
        reason: String,
        ok: bool,
    },
}

#[allow(
    clippy::large_enum_variant,
    reason = "nearly every message is a record: boxing it would only add an allocation per decision"
)]
enum Msg {
    Record(Record),
    /// From [`AuditTask::finish`]: close the queue, write the rest, stop.
    Stop,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

impl Counters {
    fn stats(&self) -> AuditStats {
        AuditStats {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
        }
    }
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    clock: SharedClock,
    counters: Arc<Counters>,
}

/// The handle the hot path records through. Cheap to clone (one `Arc`); every
/// method returns at once, whatever the state of the writer.
#[derive(Clone)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Audit {
    /// Records nothing and costs a branch: no clone, no clock read.
    pub fn disabled() -> Audit {
        Audit { inner: None }
    }

    /// Opens the sink (a bad path fails here, at start-up) and starts the
    /// writer thread. Keep the [`AuditTask`] and call [`AuditTask::finish`] on
    /// shutdown, or what is queued then is lost.
    pub fn start(
        config: AuditConfig,
        clock: SharedClock,
    ) -> Result<(Audit, AuditTask), AuditError> {
        if config.capacity == 0 || config.capacity > MAX_CAPACITY {
            return Err(AuditError::Capacity(config.capacity));
        }
        let out = match config.sink {
            AuditSink::File {
                path,
                max_bytes,
                keep,
            } => {
                if max_bytes == 0 {
                    return Err(AuditError::MaxBytes { path });
                }
                match RotatingFile::open(path.clone(), max_bytes, keep) {
                    Ok(f) => Out::File(f),
                    Err(source) => return Err(AuditError::Open { path, source }),
                }
            }
            AuditSink::Stdout => Out::Stdout,
            AuditSink::Writer(w) => Out::Writer(w),
        };
        let (tx, rx) = mpsc::channel(config.capacity);
        let (done_tx, done) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer::new(Sink::new(out), config.unmasked, counters.clone());
        let thread = std::thread::Builder::new()
            .name("tollgate-audit".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(AuditError::Spawn)?;
        let audit = Audit {
            inner: Some(Arc::new(Inner {
                tx: tx.clone(),
                clock,
                counters: counters.clone(),
            })),
        };
        Ok((
            audit,
            AuditTask {
                stop: tx,
                thread,
                done,
                counters,
            },
        ))
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// One `Assess` decision. Clones what it needs; never waits.
    pub fn assessment(
        &self,
        id: AssessmentId,
        input: &AssessInput,
        signals: &Signals,
        decision: &Decision,
    ) {
        self.offer(|time| Record::Assessment {
            time,
            id,
            input: input.clone(),
            signals: signals.clone(),
            decision: decision.clone(),
        });
    }

    /// One `Report` (linked to its assessment by `input.assessment_id`).
    pub fn report(&self, input: &ReportInput) {
        self.offer(|time| Record::Report {
            time,
            input: input.clone(),
        });
    }

    /// One AdminService call: who (`caller`, the token id), what (`action`,
    /// e.g. `"block"`), on what (`subject`, masked on writing unless the log is
    /// unmasked), why, and whether it succeeded.
    pub fn admin(
        &self,
        caller: &Arc<str>,
        action: &'static str,
        subject: Option<&AdminSubject>,
        reason: &str,
        ok: bool,
    ) {
        self.offer(|time| Record::Admin {
            time,
            caller: caller.clone(),
            action,
            subject: subject.cloned(),
            reason: reason.to_owned(),
            ok,
        });
    }

    /// Records dropped so far because the queue was full or closed.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.counters.dropped.load(Ordering::Relaxed))
    }

    fn offer(&self, record: impl FnOnce(u64) -> Record) {
        let Some(inner) = &self.inner else { return };
        // A full queue is known before anything is cloned: under a flood,
        // dropping costs no allocation. (`try_send` below still decides.)
        if inner.tx.capacity() == 0 {
            inner.drop_one();
            return;
        }
        let msg = Msg::Record(record(inner.clock.now_nanos()));
        if inner.tx.try_send(msg).is_err() {
            inner.drop_one();
        }
    }
}

impl Inner {
    fn drop_one(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::audit_dropped();
    }
}

/// The writer thread. Finish it on shutdown so what is queued gets written.
pub struct AuditTask {
    stop: mpsc::Sender<Msg>,
    thread: JoinHandle<()>,
    done: oneshot::Receiver<()>,
    counters: Arc<Counters>,
}

impl fmt::Debug for AuditTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditTask")
            .field("stats", &self.stats())
            .finish()
    }
}

impl AuditTask {
    /// Closes the queue, waits until everything queued before is written and
    /// the file synced, and returns the counts. Waits for the writer: bound it
    /// with a timeout if the sink can block (stdout into a stuck pipe).
    pub async fn finish(self) -> AuditStats {
        // Queued behind every record offered before this call; the writer then
        // closes the queue. An error means the writer is already gone.
        let _ = self.stop.send(Msg::Stop).await;
        let _ = self.done.await;
        Self::join(self.thread, &self.counters)
    }

    /// [`finish`](Self::finish) for code outside an async runtime. Panics if
    /// called from within one (as tokio's `blocking_send` does).
    pub fn finish_blocking(self) -> AuditStats {
        let _ = self.stop.blocking_send(Msg::Stop);
        Self::join(self.thread, &self.counters)
    }

    /// Counts so far.
    pub fn stats(&self) -> AuditStats {
        self.counters.stats()
    }

    fn join(thread: JoinHandle<()>, counters: &Counters) -> AuditStats {
        if thread.join().is_err() {
            tracing::error!("the audit writer thread panicked; queued records are lost");
        }
        counters.stats()
    }
}
