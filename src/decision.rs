//! The answer to an `Assess`: a value, never an error.

use std::sync::Arc;
use std::time::Duration;

/// The verdict, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Allow,
    StepUp,
    Block,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::StepUp => "step_up",
            Verdict::Block => "block",
        }
    }
}

/// A stronger factor the caller can ask for instead of going ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepUpMethod {
    Captcha,
    EmailOtp,
    KnowledgeFactor,
    ReverseSms,
    PushApproval,
}

impl StepUpMethod {
    pub const ALL: [StepUpMethod; 5] = [
        StepUpMethod::Captcha,
        StepUpMethod::EmailOtp,
        StepUpMethod::KnowledgeFactor,
        StepUpMethod::ReverseSms,
        StepUpMethod::PushApproval,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepUpMethod::Captcha => "captcha",
            StepUpMethod::EmailOtp => "email_otp",
            StepUpMethod::KnowledgeFactor => "knowledge_factor",
            StepUpMethod::ReverseSms => "reverse_sms",
            StepUpMethod::PushApproval => "push_approval",
        }
    }
}

/// Why a decision is what it is. `code` is the rule's stable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: Arc<str>,
    pub message: Arc<str>,
    /// Evaluated and reported, not enforced.
    pub shadow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// 0..=100.
    pub score: u8,
    pub reasons: Vec<Reason>,
    /// Set when throttled: the earliest time the enforced limits would let the
    /// same request through (the limiters' own answer).
    pub retry_after: Option<Duration>,
    /// Preferred first; set when the verdict is `StepUp`.
    pub step_up: Vec<StepUpMethod>,
    pub policy_version: Arc<str>,
}
