//! Which rules fire for one request, given what the store said. Pure: the
//! snapshot, the request and the counters in, the fired rules and the state
//! changes they call for out.

use super::eval::Fired;
use super::{Rule, Snapshot};
use crate::limits::conversion::Label;
use crate::limits::session::{SessionFinding, SessionState};
use crate::limits::CheckResults;
use crate::request::{AssessInput, Event};
use crate::signals::Signals;
use std::time::Duration;

/// The rules that fired, and what they ask to change.
#[derive(Debug, Default)]
pub struct Findings<'a> {
    pub fired: Vec<Fired<'a>>,
    /// `session.max_sends` fired: the session is marked failed.
    pub session_failed: bool,
    /// Windows whose conversion collapsed: protection starts.
    pub protect: Vec<Label>,
    /// Protected windows that recovered: protection ends.
    pub release: Vec<Label>,
}

/// What the engine asked the store about this request, beyond the store's
/// answers: the rules behind the rate checks and the conversion windows.
pub struct Asked<'r, 'a> {
    /// The rule behind each rate check, aligned with `CheckResults::rates`.
    pub rate_rules: &'r [&'a Rule],
    /// Conversion windows, aligned with `CheckResults::conversion`.
    pub labels: &'r [Label],
    /// Keyed hash of the destination (number or address), 0 when none.
    pub destination: u64,
}

pub fn collect<'a>(
    snap: &'a Snapshot,
    input: &AssessInput,
    signals: &Signals,
    asked: &Asked<'_, 'a>,
    r: &CheckResults,
    now: u64,
) -> Findings<'a> {
    let (ev, ch) = (input.event, input.channel);
    let mut f = Findings::default();
    let mut fire = |rule: &'a Rule, retry_after: Option<Duration>| {
        f.fired.push(Fired {
            rule,
            message: None,
            retry_after,
        })
    };

    for s in &snap.signals {
        if s.rule.applies(ev, ch) && s.when.holds(signals) {
            fire(&s.rule, None);
        }
    }
    for (rule, wait) in asked.rate_rules.iter().zip(&r.rates) {
        if let Some(w) = wait {
            fire(rule, Some(*w));
        }
    }
    if let Some(b) = &snap.backoff {
        if b.rule.applies(ev, ch) && !(r.safe && b.rule.bypassable) {
            if let Some(w) = r.phone.and_then(|p| p.backoff_wait(now)) {
                fire(&b.rule, Some(w));
            }
        }
    }
    if let (Some(p), Some(state)) = (&snap.phone, &r.phone) {
        if p.unverified_sends.applies(ev, ch) && state.unverified(now) >= p.max_unverified_sends {
            fire(&p.unverified_sends, None);
        }
    }
    if let (Some(a), Some(state)) = (&snap.account, &r.account) {
        if let Some(lock) = state.lock(now) {
            if a.locked.applies(ev, ch) {
                fire(&a.locked, lock);
            }
        }
        if a.unverified_sends.applies(ev, ch)
            && state.unverified(now) >= a.params.max_unverified_sends
        {
            fire(&a.unverified_sends, None);
        }
    }
    let mut session_failed = false;
    if let (Some(s), Some(state)) = (&snap.session, SessionState::live(r.session.as_ref(), now)) {
        let finding = match ev {
            Event::OtpSend => ch.and_then(|c| state.check_send(&s.params, asked.destination, c)),
            Event::OtpVerify => state.check_verify(&s.params, now),
            _ => None,
        };
        if let Some(found) = finding {
            fire(s.rule(found), None);
            session_failed = found == SessionFinding::MaxSends && !state.failed;
        }
    }
    let (mut protect, mut release) = (Vec::new(), Vec::new());
    if let Some(c) = &snap.conversion {
        let phone_channel = ch.is_some_and(|c| c.needs_phone());
        if c.rule.applies(ev, ch) && phone_channel {
            // One reason, however many windows (country, range) are protected.
            let mut wait: Option<Duration> = None;
            for (label, stats) in asked.labels.iter().zip(&r.conversion) {
                let enough = stats.sent >= u64::from(c.min_sends);
                let low = enough && stats.ratio() < c.min_ratio;
                let w = if stats.protected(now) {
                    if enough && !low {
                        release.push(*label);
                        continue;
                    }
                    Duration::from_nanos(stats.protected_until - now)
                } else if low {
                    protect.push(*label);
                    c.protect_for
                } else {
                    continue;
                };
                wait = Some(wait.map_or(w, |x| x.max(w)));
            }
            if wait.is_some() {
                fire(&c.rule, wait);
            }
        }
    }
    if let Some(l) = &r.blocked {
        f.fired.insert(
            0,
            Fired {
                rule: &snap.admin_block,
                message: Some(l.reason.clone()),
                retry_after: l.remaining(now),
            },
        );
    }
    f.session_failed = session_failed;
    f.protect = protect;
    f.release = release;
    f
}
