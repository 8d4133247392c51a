//! What a decision or a report changes: turned into [`Effect`]s for the store,
//! after the decision is made. An allowed OTP send is a send: it advances the
//! number's backoff and counts as unverified for the number, the account and
//! the session. (The store's check already counted a code sent to a phone in
//! its conversion windows, as it takes from limits counting allowed requests;
//! a refused send gives both back here.) A verified code undoes the
//! unverified counts and counts as a conversion in the windows the reported
//! assessment remembered (its send's if that was counted; for the check of a
//! code sent to a phone, its number's), or, when the report names no
//! assessment, in its number's.

use crate::decision::{Decision, Verdict};
use crate::limits::{CheckBatch, CheckResults, Effect, Effects, Labels};
use crate::policy::findings::Findings;
use crate::policy::Snapshot;
use crate::request::{Channel, Event, Outcome};
use std::time::Duration;

/// The keys of one request's subjects.
#[derive(Debug, Clone, Default)]
pub struct SubjectKeys {
    pub phone: Option<u64>,
    pub session: Option<u64>,
    pub account: Option<u64>,
    /// Keyed hash of the destination, 0 when none.
    pub destination: u64,
    /// Conversion windows of the destination: country, then number range.
    pub labels: Labels,
}

#[allow(
    clippy::too_many_arguments,
    reason = "the request and each earlier step's output, named; its only caller is the engine"
)]
pub fn after_assess(
    snap: &Snapshot,
    event: Event,
    channel: Option<Channel>,
    keys: &SubjectKeys,
    batch: &CheckBatch,
    results: &CheckResults,
    findings: &Findings<'_>,
    decision: &Decision,
    now: u64,
) -> Effects {
    let mut out = Effects::new();
    if let (true, Some(s), Some(key)) = (findings.session_failed, &snap.session, keys.session) {
        out.push(Effect::SessionFailed {
            key,
            params: s.params,
        });
    }
    if let Some(c) = &snap.conversion {
        let until = now.saturating_add(c.protect_for.as_nanos() as u64);
        out.extend(
            findings
                .protect
                .iter()
                .map(|&label| Effect::Protect { label, until }),
        );
    }
    out.extend(
        findings
            .release
            .iter()
            .map(|&label| Effect::Release { label }),
    );
    if decision.verdict != Verdict::Allow {
        // Limits that count allowed requests give back what this one took:
        // it conformed, and was not skipped for a safe-listed subject.
        out.extend(
            batch
                .rates
                .iter()
                .zip(&results.rates)
                .filter(|(r, wait)| r.counts_allowed && wait.is_none() && !r.skipped(results.safe))
                .map(|(r, _)| Effect::Refund(*r)),
        );
        // So do the conversion windows that counted the send at the check,
        // and the assessment forgets them: a report of it counts nowhere.
        out.extend(batch.conversion.iter().map(|&label| Effect::Unsent {
            label,
            window: batch.conversion_window,
        }));
        // (A refused code check's too: it remembered its number's.)
        if let Some((id, rec)) = &batch.remember {
            if rec.conversion.iter().any(Option::is_some) {
                out.push(Effect::Uncounted { id: *id });
            }
        }
        return out;
    }
    if event != Event::OtpSend {
        return out;
    }
    let backoff = snap
        .backoff
        .as_ref()
        .filter(|b| b.rule.applies(event, channel))
        .map(|b| b.params);
    let forget_after = snap
        .phone
        .as_ref()
        .map_or(Duration::ZERO, |p| p.forget_after);
    if let Some(key) = keys
        .phone
        .filter(|_| backoff.is_some() || !forget_after.is_zero())
    {
        out.push(Effect::PhoneSent {
            key,
            backoff,
            forget_after,
        });
    }
    if let (Some(s), Some(key), Some(channel)) = (&snap.session, keys.session, channel) {
        out.push(Effect::SessionSent {
            key,
            params: s.params,
            destination: keys.destination,
            channel,
        });
    }
    if let (Some(a), Some(key)) = (&snap.account, keys.account) {
        out.push(Effect::AccountSent {
            key,
            params: a.params,
        });
    }
    // The send is already counted in its conversion windows (at the check).
    out
}

pub fn after_report(snap: &Snapshot, outcome: Outcome, keys: &SubjectKeys) -> Effects {
    let mut out = Effects::new();
    match outcome {
        Outcome::OtpVerified => {
            out.extend(keys.phone.map(|key| Effect::PhoneVerified { key }));
            out.extend(keys.session.map(|key| Effect::SessionDone { key }));
            out.extend(keys.account.map(|key| Effect::AccountVerified { key }));
            if let Some(c) = &snap.conversion {
                out.extend(keys.labels.iter().map(|&label| Effect::Verified {
                    label,
                    window: c.window,
                }));
            }
        }
        Outcome::OtpWrongCode => {
            if let (Some(s), Some(key)) = (&snap.session, keys.session) {
                out.push(Effect::SessionWrongCode {
                    key,
                    params: s.params,
                });
            }
            if let (Some(a), Some(key)) = (&snap.account, keys.account) {
                out.push(Effect::AccountFailed {
                    key,
                    params: a.params,
                });
            }
        }
        Outcome::LoginFailed | Outcome::StepUpFailed => {
            if let (Some(a), Some(key)) = (&snap.account, keys.account) {
                out.push(Effect::AccountFailed {
                    key,
                    params: a.params,
                });
            }
        }
        Outcome::LoginSucceeded | Outcome::StepUpPassed => {
            out.extend(keys.account.map(|key| Effect::AccountSucceeded { key }));
        }
        Outcome::OtpDelivered | Outcome::OtpUndelivered | Outcome::OtpExpired => {}
    }
    out
}
