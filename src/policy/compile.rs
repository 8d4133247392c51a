//! Policy file -> [`Snapshot`]. Every check that can fail names the file and line.

use super::file::{ActionName, BackoffFile, CountName, KeyName, LimitFile, PolicyFile, RuleCommon};
use super::{
    Action, BackoffParams, BackoffRule, Count, KeyKind, LimitRule, PolicyError, Problem, Rule,
    Snapshot,
};
use crate::decision::StepUpMethod;
use crate::keys::domain_tag;
use crate::request::{Channel, Event};
use governor::Quota;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The default policy, built into the binary (see `rules/default.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../../rules/default.toml");
pub const DEFAULT_POLICY_NAME: &str = "rules/default.toml";

const DEFAULT_STEP_UP_AT: u8 = 40;
const DEFAULT_BLOCK_AT: u8 = 80;
const DEFAULT_PREFIX_DIGITS: u8 = 3;
const MAX_ID_LEN: usize = 64;
const MAX_RULES: usize = 200;

/// Reads and compiles a policy file.
pub fn load_file(path: &Path) -> Result<Snapshot, PolicyError> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        PolicyError(vec![Problem {
            file: name.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        }])
    })?;
    compile(&name, &src)
}

/// Compiles policy text; `name` is used in error messages and logs.
pub fn compile(name: &str, src: &str) -> Result<Snapshot, PolicyError> {
    let mut c = Compiler {
        file: name,
        src,
        problems: Vec::new(),
        ids: HashMap::new(),
    };
    let parsed: PolicyFile = match toml::from_str(src) {
        Ok(p) => p,
        Err(e) => {
            let line = e.span().map(|s| c.line(s.start));
            return Err(PolicyError(vec![Problem {
                file: name.to_owned(),
                line,
                message: e.message().trim_end().to_owned(),
            }]));
        }
    };
    let snapshot = c.policy(parsed);
    if c.problems.is_empty() {
        Ok(snapshot)
    } else {
        Err(PolicyError(c.problems))
    }
}

struct Compiler<'a> {
    file: &'a str,
    src: &'a str,
    problems: Vec<Problem>,
    /// Rule id -> line of its first definition.
    ids: HashMap<String, usize>,
}

impl Compiler<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = self.line(span.start);
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: Some(line),
            message: message.into(),
        });
    }

    fn policy(&mut self, p: PolicyFile) -> Snapshot {
        let version = p.version.get_ref().trim();
        if version.is_empty() || version.len() > 64 || version.chars().any(char::is_control) {
            self.problem(
                p.version.span(),
                "version must be 1 to 64 printable characters",
            );
        }

        let (mut step_up_at, mut block_at, mut methods) =
            (DEFAULT_STEP_UP_AT, DEFAULT_BLOCK_AT, vec![StepUpMethod::Captcha]);
        if let Some(s) = &p.scoring {
            step_up_at = self.points(&s.step_up_at, "scoring.step_up_at");
            block_at = self.points(&s.block_at, "scoring.block_at");
            if step_up_at == 0 || step_up_at >= block_at {
                self.problem(
                    s.step_up_at.span(),
                    format!(
                        "scoring.step_up_at must be from 1 to less than block_at ({block_at}), is {step_up_at}"
                    ),
                );
            }
            if !s.step_up_methods.is_empty() {
                methods = s.step_up_methods.iter().map(|m| (*m.get_ref()).into()).collect();
            }
        }

        let (mut v4, mut v6) = (24u8, 64u8);
        if let Some(s) = &p.subnet {
            if let Some(x) = &s.ipv4_prefix {
                v4 = self.ranged(x, 0, 32, "subnet.ipv4_prefix");
            }
            if let Some(x) = &s.ipv6_prefix {
                v6 = self.ranged(x, 0, 128, "subnet.ipv6_prefix");
            }
        }

        let ctx = Defaults {
            step_up_at,
            methods: methods.clone(),
        };
        if p.limits.len() > MAX_RULES {
            self.problem(
                p.limits[MAX_RULES].id.span(),
                format!("at most {MAX_RULES} limits"),
            );
        }
        let limits = p
            .limits
            .iter()
            .filter_map(|l| self.limit(l, &ctx, v4, v6))
            .collect();
        let backoff = p.backoff.as_ref().and_then(|b| self.backoff(b, &ctx));

        Snapshot {
            version: version.into(),
            source: self.file.into(),
            shadow: p.shadow,
            step_up_at,
            block_at,
            step_up_methods: methods,
            limits,
            backoff,
        }
    }

    fn points(&mut self, v: &Spanned<u32>, what: &str) -> u8 {
        self.ranged(v, 0, 100, what)
    }

    fn ranged(&mut self, v: &Spanned<u32>, lo: u32, hi: u32, what: &str) -> u8 {
        let x = *v.get_ref();
        if x < lo || x > hi {
            self.problem(v.span(), format!("{what} must be from {lo} to {hi}, is {x}"));
            return lo as u8;
        }
        x as u8
    }

    fn rule(&mut self, r: RuleCommon<'_>, d: &Defaults, default_message: String) -> Option<Rule> {
        let id = r.id.get_ref();
        let before = self.problems.len();
        if !valid_id(id) {
            self.problem(
                r.id.span(),
                format!(
                    "rule id {id:?} must be lower-case words (a-z, 0-9, _) joined by dots, at most {MAX_ID_LEN} characters, e.g. \"limit.phone\""
                ),
            );
        } else if let Some(first) = self.ids.get(id.as_str()).copied() {
            self.problem(
                r.id.span(),
                format!("duplicate rule id {id:?} (first defined on line {first})"),
            );
        } else {
            let line = self.line(r.id.span().start);
            self.ids.insert(id.clone(), line);
        }

        let mut events = 0u8;
        match r.events {
            Some([]) => self.problem(r.id.span(), format!("rule {id:?}: events is empty; omit it to match every event")),
            Some(list) => list.iter().for_each(|e| events |= Event::from(*e.get_ref()).bit()),
            None => Event::ALL.iter().for_each(|e| events |= e.bit()),
        }
        let channels = match r.channels {
            Some([]) => {
                self.problem(r.id.span(), format!("rule {id:?}: channels is empty; omit it to match with or without a channel"));
                None
            }
            Some(list) => Some(list.iter().fold(0u8, |m, c| m | Channel::from(*c.get_ref()).bit())),
            None => None,
        };

        let action = match r.action.get_ref() {
            ActionName::Block => Action::Block,
            ActionName::Score => Action::Score,
            ActionName::StepUp => Action::StepUp(match r.step_up_methods {
                Some(m) if m.get_ref().is_empty() => {
                    self.problem(m.span(), format!("rule {id:?}: step_up_methods is empty; omit it to use scoring.step_up_methods"));
                    Vec::new()
                }
                Some(m) => m.get_ref().iter().map(|x| (*x.get_ref()).into()).collect(),
                None => d.methods.clone(),
            }),
        };
        if let (Some(m), false) = (r.step_up_methods, matches!(action, Action::StepUp(_))) {
            self.problem(
                m.span(),
                format!("rule {id:?}: step_up_methods only applies with action = \"step_up\""),
            );
        }
        let points = match (r.score, &action) {
            (Some(s), _) => self.points(s, &format!("rule {id:?}: score")),
            (None, Action::Block) => 100,
            (None, Action::StepUp(_)) => d.step_up_at,
            (None, Action::Score) => {
                self.problem(
                    r.action.span(),
                    format!("rule {id:?}: action = \"score\" needs score = POINTS (0 to 100)"),
                );
                0
            }
        };
        let message: Arc<str> = match r.message {
            Some(m) if m.get_ref().trim().is_empty() || m.get_ref().len() > 200 => {
                self.problem(m.span(), format!("rule {id:?}: message must be 1 to 200 characters"));
                "".into()
            }
            Some(m) => m.get_ref().as_str().into(),
            None => default_message.into(),
        };

        (self.problems.len() == before).then(|| Rule {
            id: id.as_str().into(),
            tag: domain_tag(id),
            events,
            channels,
            action,
            points,
            shadow: r.shadow,
            message,
        })
    }

    fn limit(&mut self, l: &LimitFile, d: &Defaults, v4: u8, v6: u8) -> Option<LimitRule> {
        let before = self.problems.len();
        let id = l.id.get_ref().clone();
        let rate = self.rate(&l.rate, &id);
        let key = match (l.key.get_ref(), &l.prefix_digits) {
            (KeyName::PhonePrefix, Some(p)) => KeyKind::PhonePrefix {
                digits: self.ranged(p, 0, 12, &format!("rule {id:?}: prefix_digits")),
            },
            (KeyName::PhonePrefix, None) => KeyKind::PhonePrefix {
                digits: DEFAULT_PREFIX_DIGITS,
            },
            (_, Some(p)) => {
                self.problem(
                    p.span(),
                    format!("rule {id:?}: prefix_digits only applies with key = \"phone_prefix\""),
                );
                KeyKind::Global
            }
            (k, None) => key_kind(*k, v4, v6),
        };
        let what = key_noun(key);
        let default_message = match rate {
            Some((count, period, _)) => format!(
                "more than {count} per {} for this {what}",
                humantime::format_duration(period)
            ),
            None => String::new(),
        };
        let rule = self.rule(l.common(), d, default_message);
        let (count, _, per_cell) = rate?;
        let burst = l.burst.as_ref().map_or(count, |b| *b.get_ref());
        let quota = Quota::with_period(per_cell)?.allow_burst(burst);
        let count = match l.count {
            Some(CountName::Allowed) => Count::Allowed,
            Some(CountName::Attempts) | None => Count::Attempts,
        };
        (self.problems.len() == before).then_some(LimitRule {
            rule: rule?,
            key,
            quota,
            count,
        })
    }

    /// `"COUNT/PERIOD"` -> (count, period, time per cell).
    fn rate(&mut self, r: &Spanned<String>, id: &str) -> Option<(NonZeroU32, Duration, Duration)> {
        let text = r.get_ref().trim();
        let Some((count, period)) = text.split_once('/') else {
            self.problem(
                r.span(),
                format!("rule {id:?}: rate {text:?} must be COUNT/PERIOD, e.g. \"5/1h\" or \"100/s\""),
            );
            return None;
        };
        let Ok(count) = count.trim().parse::<NonZeroU32>() else {
            self.problem(
                r.span(),
                format!("rule {id:?}: rate {text:?}: COUNT must be a whole number from 1"),
            );
            return None;
        };
        let period = period.trim();
        // "5/h" reads as "5/1h".
        let with_number = if period.starts_with(|c: char| c.is_ascii_digit()) {
            period.to_owned()
        } else {
            format!("1{period}")
        };
        let period = match humantime::parse_duration(&with_number) {
            Ok(p) if !p.is_zero() => p,
            Ok(_) => {
                self.problem(r.span(), format!("rule {id:?}: rate {text:?}: PERIOD must be more than zero"));
                return None;
            }
            Err(e) => {
                self.problem(r.span(), format!("rule {id:?}: rate {text:?}: PERIOD: {e}"));
                return None;
            }
        };
        let per_cell = period / count.get();
        if per_cell.is_zero() {
            self.problem(r.span(), format!("rule {id:?}: rate {text:?} is faster than one per nanosecond"));
            return None;
        }
        Some((count, period, per_cell))
    }

    fn duration(&mut self, v: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(v.span(), format!("{what} must be more than zero"));
                None
            }
            Err(e) => {
                self.problem(v.span(), format!("{what} {:?}: {e} (e.g. \"30s\", \"1h\")", v.get_ref()));
                None
            }
        }
    }

    fn backoff(&mut self, b: &BackoffFile, d: &Defaults) -> Option<BackoffRule> {
        let before = self.problems.len();
        let id = b.id.get_ref().clone();
        if let Some(events) = &b.events {
            if let Some(e) = events.iter().find(|e| Event::from(*e.get_ref()) != Event::OtpSend) {
                self.problem(e.span(), format!("rule {id:?}: backoff applies to otp_send only"));
            }
        }
        let base = self.duration(&b.base, &format!("rule {id:?}: base"));
        let cap = self.duration(&b.cap, &format!("rule {id:?}: cap"));
        let reset_after = self.duration(&b.reset_after, &format!("rule {id:?}: reset_after"));
        let factor = *b.factor.get_ref();
        if !(1.0..=100.0).contains(&factor) {
            self.problem(b.factor.span(), format!("rule {id:?}: factor must be from 1 to 100, is {factor}"));
        }
        if let (Some(base), Some(cap)) = (base, cap) {
            if cap < base {
                self.problem(b.cap.span(), format!("rule {id:?}: cap must be at least base"));
            }
        }
        if let (Some(cap), Some(reset)) = (cap, reset_after) {
            if reset < cap {
                self.problem(b.reset_after.span(), format!("rule {id:?}: reset_after must be at least cap"));
            }
        }
        let mut rule = self.rule(b.common(), d, "sends to this number are backing off".into());
        if let Some(r) = &mut rule {
            r.events = Event::OtpSend.bit();
        }
        (self.problems.len() == before).then_some(BackoffRule {
            rule: rule?,
            params: BackoffParams {
                base: base?,
                factor,
                cap: cap?,
                reset_after: reset_after?,
            },
        })
    }
}

struct Defaults {
    step_up_at: u8,
    methods: Vec<StepUpMethod>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.split('.').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn key_kind(k: KeyName, v4: u8, v6: u8) -> KeyKind {
    match k {
        KeyName::Ip => KeyKind::Ip,
        KeyName::Subnet => KeyKind::Subnet { v4, v6 },
        KeyName::Device => KeyKind::Device,
        KeyName::Account => KeyKind::Account,
        KeyName::Phone => KeyKind::Phone,
        KeyName::PhonePrefix => KeyKind::PhonePrefix {
            digits: DEFAULT_PREFIX_DIGITS,
        },
        KeyName::PhoneCountry => KeyKind::PhoneCountry,
        KeyName::Session => KeyKind::Session,
        KeyName::Tenant => KeyKind::Tenant,
        KeyName::Global => KeyKind::Global,
    }
}

fn key_noun(k: KeyKind) -> &'static str {
    match k {
        KeyKind::Ip => "IP address",
        KeyKind::Subnet { .. } => "network",
        KeyKind::Device => "device",
        KeyKind::Account => "account",
        KeyKind::Phone => "phone number",
        KeyKind::PhonePrefix { .. } => "number range",
        KeyKind::PhoneCountry => "destination country",
        KeyKind::Session => "session",
        KeyKind::Tenant => "tenant",
        KeyKind::Global => "service",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_compiles() {
        let s = compile(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap();
        assert!(!s.limits.is_empty());
        assert!(s.backoff.is_some());
    }

    #[test]
    fn ids_are_dotted_lower_case_words() {
        assert!(valid_id("limit.phone_prefix"));
        assert!(valid_id("backoff.phone"));
        assert!(!valid_id("Limit.phone"));
        assert!(!valid_id("limit..phone"));
        assert!(!valid_id("limit.phone."));
        assert!(!valid_id("9limit"));
        assert!(!valid_id(""));
    }
}
