//! The policy: a TOML file compiled once into an immutable [`Snapshot`].
//!
//! Nothing is parsed per request: rates become governor quotas, names become
//! enums and bit sets, rule ids become interned strings and 64-bit key domains.
//! A file that fails to compile yields every problem as `FILE:LINE: message`, and
//! the caller keeps serving the previous snapshot. Evaluation ([`eval`]) is pure.

pub mod compile;
pub mod eval;
pub mod file;
pub mod findings;
pub mod lifecycle;
pub mod signal_rules;

use crate::decision::{StepUpMethod, Verdict};
use crate::request::{Channel, Event};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use compile::{
    compile, compile_with, load_file, load_file_with, DEFAULT_POLICY, DEFAULT_POLICY_NAME,
};
pub use eval::{evaluate, Fired};
pub use governor::Quota;
pub use lifecycle::{AccountRules, ConversionRules, Costs, PhoneRules, SessionRules};
pub use signal_rules::{ListNames, SignalRule};

/// What a limit is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ip,
    /// The network of the IP: `/v4` for IPv4, `/v6` for IPv6.
    Subnet {
        v4: u8,
        v6: u8,
    },
    Device,
    Account,
    Phone,
    /// Calling code plus the first `digits` national digits.
    PhonePrefix {
        digits: u8,
    },
    /// The number's region (or calling code when it has none).
    PhoneCountry,
    Session,
    Tenant,
    Global,
}

/// What an enforced rule does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Block,
    StepUp(Vec<StepUpMethod>),
    /// Only adds its points to the score.
    Score,
}

impl Action {
    pub fn verdict(&self) -> Verdict {
        match self {
            Action::Block => Verdict::Block,
            Action::StepUp(_) => Verdict::StepUp,
            Action::Score => Verdict::Allow,
        }
    }
}

/// Identity, scope and consequence of any rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id: the reason code, the metric label, the log field.
    pub id: Arc<str>,
    /// Key domain derived from the id.
    pub tag: u64,
    /// Bit set of [`Event::bit`].
    pub events: u8,
    /// Bit set of [`Channel::bit`]; `None` applies with or without a channel.
    pub channels: Option<u8>,
    pub action: Action,
    /// Points added to the score when it fires (0..=100).
    pub points: u8,
    pub shadow: bool,
    /// Skipped when a subject of the request is on the safe list.
    pub bypassable: bool,
    /// Enforced even under the global shadow switch (operator blocks).
    pub always_enforced: bool,
    pub message: Arc<str>,
}

impl Rule {
    #[inline]
    pub fn applies(&self, event: Event, channel: Option<Channel>) -> bool {
        self.events & event.bit() != 0
            && match (self.channels, channel) {
                (None, _) => true,
                (Some(set), Some(c)) => set & c.bit() != 0,
                (Some(_), None) => false,
            }
    }
}

#[derive(Debug, Clone)]
pub struct LimitRule {
    pub rule: Rule,
    pub key: KeyKind,
    /// Index of `key` in [`Snapshot::subjects`]: a request hashes each subject
    /// once, however many limits are keyed on it.
    pub subject: usize,
    pub quota: Quota,
    /// What takes a cell: every attempt, or only requests the decision allows.
    pub count: Count,
    /// Each request takes as many cells as its destination costs (`[costs]`).
    pub cost: bool,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Every request the rule applies to, allowed or not: hostility (an IP or a
    /// device hammering) is what is measured.
    Attempts,
    /// Only requests that end up allowed: cost (codes actually sent to a number
    /// or a range) is what is measured, and a refused retry costs nothing.
    Allowed,
}

/// Exponential backoff between OTP sends to one number: after the n-th send
/// (n from 0) the next is refused for `min(base * factor^n, cap)`; the count
/// starts over after `reset_after` without sends or on a verified code.
#[derive(Debug, Clone)]
pub struct BackoffRule {
    pub rule: Rule,
    pub params: BackoffParams,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffParams {
    pub base: Duration,
    pub factor: f64,
    pub cap: Duration,
    pub reset_after: Duration,
}

impl BackoffParams {
    /// The wait after a send when `level` sends came before it in this run.
    pub fn delay(&self, level: u32) -> Duration {
        let secs = self.base.as_secs_f64() * self.factor.powi(level.min(64) as i32);
        if !secs.is_finite() || secs >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}

/// A compiled policy. Immutable; swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: Arc<str>,
    /// Where it came from (file name or `built-in default`), for logs.
    pub source: Arc<str>,
    pub shadow: bool,
    pub step_up_at: u8,
    pub block_at: u8,
    pub step_up_methods: Vec<StepUpMethod>,
    pub limits: Vec<LimitRule>,
    /// The distinct subjects the limits are keyed on, in order of first use.
    pub subjects: Vec<KeyKind>,
    pub backoff: Option<BackoffRule>,
    pub signals: Vec<SignalRule>,
    pub session: Option<SessionRules>,
    pub account: Option<AccountRules>,
    pub phone: Option<PhoneRules>,
    pub conversion: Option<ConversionRules>,
    pub costs: Costs,
    /// `admin.block`, always present.
    pub admin_block: Rule,
}

impl Snapshot {
    /// The rule ids, in file order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.limits
            .iter()
            .map(|l| &*l.rule.id)
            .chain(self.backoff.iter().map(|b| &*b.rule.id))
            .chain(self.signals.iter().map(|s| &*s.rule.id))
    }
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; `None` for problems with the file as a whole (unreadable).
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A policy that did not compile: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PolicyError(pub Vec<Problem>);
