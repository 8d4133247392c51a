//! The OTP-lifecycle parts of a policy: sessions, account failures and
//! unverified sends, per-number unverified sends, conversion protection, send
//! costs, and admin blocks. Their reason codes are fixed (`session.max_sends`,
//! `account.locked`, ...); the policy sets their limits and shadow mode.

use super::compile::{Compiler, Defaults};
use super::file::{AccountFile, ActionName, ConversionFile, PhoneFile, SessionFile};
use super::{Action, Rule};
use crate::decision::StepUpMethod;
use crate::keys::domain_tag;
use crate::limits::account::AccountParams;
use crate::limits::session::{SessionFinding, SessionParams};
use crate::request::Event;
use crate::signals::CountryCode;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct SessionRules {
    pub params: SessionParams,
    rules: [Rule; 5],
}

impl SessionRules {
    pub fn rule(&self, f: SessionFinding) -> &Rule {
        &self.rules[f as usize]
    }
}

#[derive(Debug, Clone)]
pub struct AccountRules {
    pub params: AccountParams,
    pub locked: Rule,
    pub unverified_sends: Rule,
}

#[derive(Debug, Clone)]
pub struct PhoneRules {
    pub max_unverified_sends: u16,
    pub forget_after: Duration,
    pub unverified_sends: Rule,
}

#[derive(Debug, Clone)]
pub struct ConversionRules {
    pub window: Duration,
    pub min_sends: u32,
    pub min_ratio: f64,
    pub protect_for: Duration,
    pub prefix_digits: u8,
    pub rule: Rule,
}

/// Cost of one code by destination region, in the operator's own units.
/// Looked up on every cost-weighted limit of a decision; the keys come from the
/// policy, so a fast unkeyed hash is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Costs {
    pub default: u32,
    pub by_region: FxHashMap<CountryCode, u32>,
}

impl Default for Costs {
    fn default() -> Self {
        Costs {
            default: 1,
            by_region: FxHashMap::default(),
        }
    }
}

impl Costs {
    pub fn of(&self, region: Option<CountryCode>) -> u32 {
        region
            .and_then(|r| self.by_region.get(&r).copied())
            .unwrap_or(self.default)
    }

    pub fn max(&self) -> u32 {
        self.by_region
            .values()
            .copied()
            .fold(self.default, u32::max)
    }
}

/// A rule whose id, scope and message are fixed by tollgate.
pub fn fixed_rule(
    id: &str,
    events: &[Event],
    action: Action,
    points: u8,
    shadow: bool,
    message: &str,
) -> Rule {
    Rule {
        id: id.into(),
        tag: domain_tag(id),
        events: events.iter().fold(0, |m, e| m | e.bit()),
        channels: None,
        action,
        points,
        shadow,
        bypassable: false,
        always_enforced: false,
        message: message.into(),
    }
}

/// `admin.block`: a subject blocked by a person through the AdminService. Not
/// subject to the global shadow switch: a block someone asked for applies.
pub fn admin_block_rule() -> Rule {
    let mut r = fixed_rule(
        "admin.block",
        &Event::ALL,
        Action::Block,
        100,
        false,
        "blocked by an operator",
    );
    r.always_enforced = true;
    r
}

impl Compiler<'_> {
    fn whole(
        &mut self,
        v: &Option<Spanned<u32>>,
        default: u32,
        lo: u32,
        hi: u32,
        what: &str,
    ) -> u32 {
        match v {
            Some(x) if !(lo..=hi).contains(x.get_ref()) => {
                self.problem(
                    x.span(),
                    format!("{what} must be from {lo} to {hi}, is {}", x.get_ref()),
                );
                default
            }
            Some(x) => *x.get_ref(),
            None => default,
        }
    }

    fn opt_duration(
        &mut self,
        v: &Option<Spanned<String>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        match v {
            Some(x) => self.duration(x, what).unwrap_or(default),
            None => default,
        }
    }

    pub(super) fn session(&mut self, s: &SessionFile) -> SessionRules {
        let params = SessionParams {
            max_sends: self.whole(&s.max_sends, 3, 1, 100, "session.max_sends") as u8,
            max_code_attempts: self.whole(
                &s.max_code_attempts,
                3,
                1,
                100,
                "session.max_code_attempts",
            ) as u8,
            max_destination_changes: self.whole(
                &s.max_destination_changes,
                1,
                0,
                100,
                "session.max_destination_changes",
            ) as u8,
            code_ttl: self.opt_duration(&s.code_ttl, Duration::from_secs(300), "session.code_ttl"),
            idle_ttl: self.opt_duration(&s.idle_ttl, Duration::from_secs(1800), "session.idle_ttl"),
        };
        if let Some(idle) = &s.idle_ttl {
            if params.idle_ttl < params.code_ttl {
                self.problem(
                    idle.span(),
                    format!(
                        "session.idle_ttl {:?} must be at least code_ttl ({})",
                        idle.get_ref(),
                        humantime::format_duration(params.code_ttl)
                    ),
                );
            }
        }
        let r = |id: &str, events: &[Event], msg: &str| {
            fixed_rule(id, events, Action::Block, 100, s.shadow, msg)
        };
        // In SessionFinding order.
        let rules = [
            r(
                SessionFinding::MaxSends.code(),
                &[Event::OtpSend],
                "this verification session has used all its codes; start a new one",
            ),
            r(
                SessionFinding::CodeAttempts.code(),
                &[Event::OtpVerify],
                "too many wrong codes; request a new code",
            ),
            r(
                SessionFinding::CodeExpired.code(),
                &[Event::OtpVerify],
                "the code has expired; request a new one",
            ),
            r(
                SessionFinding::DestinationChange.code(),
                &[Event::OtpSend],
                "the destination of this session cannot change again",
            ),
            r(
                SessionFinding::ChannelChange.code(),
                &[Event::OtpSend],
                "a session cannot move to another channel",
            ),
        ];
        SessionRules { params, rules }
    }

    pub(super) fn account(&mut self, a: &AccountFile) -> AccountRules {
        let params = AccountParams {
            max_failures: self.whole(&a.max_failures, 5, 1, 100, "account.max_failures") as u8,
            lock_for: a
                .lock_for
                .as_ref()
                .and_then(|l| self.duration(l, "account.lock_for")),
            max_unverified_sends: self.whole(
                &a.max_unverified_sends,
                10,
                1,
                10_000,
                "account.max_unverified_sends",
            ) as u16,
            forget_after: self.opt_duration(
                &a.forget_after,
                Duration::from_secs(30 * 86_400),
                "account.forget_after",
            ),
        };
        AccountRules {
            params,
            locked: fixed_rule(
                "account.locked",
                &Event::ALL,
                Action::Block,
                100,
                a.shadow,
                "the account is locked after too many failures; contact the help desk",
            ),
            unverified_sends: fixed_rule(
                "account.unverified_sends",
                &[Event::OtpSend],
                Action::Block,
                100,
                a.shadow,
                "too many codes requested without a successful validation; contact the help desk",
            ),
        }
    }

    pub(super) fn phone(&mut self, p: &PhoneFile) -> PhoneRules {
        PhoneRules {
            max_unverified_sends: self.whole(
                &p.max_unverified_sends,
                10,
                1,
                10_000,
                "phone.max_unverified_sends",
            ) as u16,
            forget_after: self.opt_duration(
                &p.forget_after,
                Duration::from_secs(30 * 86_400),
                "phone.forget_after",
            ),
            unverified_sends: fixed_rule(
                "phone.unverified_sends",
                &[Event::OtpSend],
                Action::Block,
                100,
                p.shadow,
                "too many codes sent to this number without a successful validation",
            ),
        }
    }

    pub(super) fn conversion(&mut self, c: &ConversionFile, d: &Defaults) -> ConversionRules {
        let ratio = *c.min_ratio.get_ref();
        if !(0.0..=1.0).contains(&ratio) {
            self.problem(
                c.min_ratio.span(),
                format!("conversion.min_ratio must be from 0 to 1, is {ratio}"),
            );
        }
        let action = match c.action.get_ref() {
            ActionName::Block => Action::Block,
            ActionName::StepUp => Action::StepUp(match &c.step_up_methods {
                Some(m) if !m.get_ref().is_empty() => m
                    .get_ref()
                    .iter()
                    .map(|x| StepUpMethod::from(*x.get_ref()))
                    .collect(),
                Some(m) => {
                    self.problem(m.span(), "conversion.step_up_methods is empty; omit it to use scoring.step_up_methods");
                    Vec::new()
                }
                None => d.methods.clone(),
            }),
            ActionName::Score => {
                self.problem(
                    c.action.span(),
                    "conversion.action must be \"block\" or \"step_up\", not \"score\"",
                );
                Action::Block
            }
        };
        let points = if action == Action::Block {
            100
        } else {
            d.step_up_at
        };
        ConversionRules {
            window: self
                .duration(&c.window, "conversion.window")
                .unwrap_or(Duration::from_secs(3600)),
            min_sends: self.whole(
                &Some(c.min_sends.clone()),
                50,
                1,
                u32::MAX,
                "conversion.min_sends",
            ),
            min_ratio: ratio,
            protect_for: self
                .duration(&c.protect_for, "conversion.protect_for")
                .unwrap_or(Duration::from_secs(3600)),
            prefix_digits: self.whole(&c.prefix_digits, 3, 0, 12, "conversion.prefix_digits") as u8,
            rule: fixed_rule(
                "conversion.low",
                &[Event::OtpSend],
                action,
                points,
                c.shadow,
                "codes sent to this destination are rarely verified; it is under protection",
            ),
        }
    }

    pub(super) fn costs(&mut self, c: &BTreeMap<String, Spanned<u32>>) -> Costs {
        let mut costs = Costs::default();
        for (k, v) in c {
            if *v.get_ref() == 0 {
                self.problem(v.span(), format!("costs.{k} must be at least 1, is 0"));
                continue;
            }
            if k == "default" {
                costs.default = *v.get_ref();
            } else if let Some(r) =
                CountryCode::parse(k).filter(|_| k.bytes().all(|b| b.is_ascii_uppercase()))
            {
                costs.by_region.insert(r, *v.get_ref());
            } else {
                self.problem(v.span(), format!("costs: {k:?} is not a region code (two upper-case letters, e.g. FR) or \"default\""));
            }
        }
        costs
    }
}
