//! Policy file -> [`Snapshot`]. Every check that can fail names the file and line.

use super::file::{ActionName, BackoffFile, CountName, KeyName, LimitFile, PolicyFile, RuleCommon};
use super::{
    Action, BackoffParams, BackoffRule, Costs, Count, KeyKind, LimitRule, ListNames, PolicyError,
    Problem, Rule, Snapshot,
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
const MAX_MESSAGE_LEN: usize = 200;
const DURATION_EXAMPLES: &str = "use e.g. \"30s\", \"10m\", \"1h\", \"1d\"";

/// Reads and compiles a policy file, without knowing which custom lists the
/// service has (offline checks).
pub fn load_file(path: &Path) -> Result<Snapshot, PolicyError> {
    load_file_with(path, &ListNames::default())
}

/// Reads and compiles a policy file against the custom lists configured.
pub fn load_file_with(path: &Path, names: &ListNames) -> Result<Snapshot, PolicyError> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        PolicyError(vec![Problem {
            file: name.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        }])
    })?;
    compile_with(&name, &src, names)
}

/// Compiles policy text; `name` is used in error messages and logs.
pub fn compile(name: &str, src: &str) -> Result<Snapshot, PolicyError> {
    compile_with(name, src, &ListNames::default())
}

/// Compiles policy text against the custom lists configured.
pub fn compile_with(name: &str, src: &str, names: &ListNames) -> Result<Snapshot, PolicyError> {
    let mut c = Compiler {
        file: name,
        src,
        problems: Vec::new(),
        names,
    };
    let parsed: PolicyFile = match toml::from_str(src) {
        Ok(p) => p,
        Err(e) => {
            let line = e.span().map(|s| c.line(s.start));
            return Err(PolicyError(vec![Problem {
                file: name.to_owned(),
                line,
                message: plain_types(e.message().trim_end()),
            }]));
        }
    };
    let snapshot = c.policy(parsed);
    if c.problems.is_empty() {
        Ok(snapshot)
    } else {
        // In file order, whatever order the checks ran in. Stable: problems on
        // one line keep the order they were found in.
        c.problems.sort_by_key(|p| p.line);
        Err(PolicyError(c.problems))
    }
}

pub(super) struct Compiler<'a> {
    file: &'a str,
    src: &'a str,
    pub(super) problems: Vec<Problem>,
    names: &'a ListNames,
}

impl Compiler<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = self.line(span.start);
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: Some(line),
            message: message.into(),
        });
    }

    fn policy(&mut self, p: PolicyFile) -> Snapshot {
        let version = p.version.get_ref().trim();
        if version.is_empty()
            || version.chars().count() > 64
            || version.chars().any(char::is_control)
        {
            self.problem(
                p.version.span(),
                format!(
                    "version {:?} must be 1 to 64 printable characters",
                    p.version.get_ref()
                ),
            );
        }

        let (mut step_up_at, mut block_at, mut methods) = (
            DEFAULT_STEP_UP_AT,
            DEFAULT_BLOCK_AT,
            vec![StepUpMethod::Captcha],
        );
        if let Some(s) = &p.scoring {
            let before = self.problems.len();
            step_up_at = self.points(&s.step_up_at, "scoring.step_up_at");
            block_at = self.points(&s.block_at, "scoring.block_at");
            // Compared only when both are in range: an out-of-range value has
            // already been reported and compiled as 0.
            if self.problems.len() == before && (step_up_at == 0 || step_up_at >= block_at) {
                self.problem(
                    s.step_up_at.span(),
                    format!(
                        "scoring.step_up_at must be at least 1 and less than block_at ({block_at}), is {step_up_at}"
                    ),
                );
            }
            if !s.step_up_methods.is_empty() {
                methods = s
                    .step_up_methods
                    .iter()
                    .map(|m| (*m.get_ref()).into())
                    .collect();
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
        self.duplicate_ids(&p);
        let mut limits: Vec<LimitRule> = p
            .limits
            .iter()
            .filter_map(|l| self.limit(l, &ctx, v4, v6))
            .collect();
        let mut subjects: Vec<KeyKind> = Vec::new();
        for l in &mut limits {
            l.subject = match subjects.iter().position(|k| *k == l.key) {
                Some(i) => i,
                None => {
                    subjects.push(l.key);
                    subjects.len() - 1
                }
            };
        }
        let backoff = p.backoff.as_ref().and_then(|b| self.backoff(b, &ctx));
        let names = self.names;
        let signals = p
            .signals
            .iter()
            .filter_map(|s| self.signal(s, &ctx, names))
            .collect();
        let session = p.session.as_ref().map(|s| self.session(s));
        let account = p.account.as_ref().map(|a| self.account(a));
        let phone = p.phone.as_ref().map(|ph| self.phone(ph));
        let conversion = p.conversion.as_ref().map(|c| self.conversion(c, &ctx));
        let costs = p.costs.as_ref().map(|c| self.costs(c)).unwrap_or_default();
        self.cost_fits_bursts(&p, &limits, &costs);

        Snapshot {
            version: version.into(),
            source: self.file.into(),
            shadow: p.shadow,
            step_up_at,
            block_at,
            step_up_methods: methods,
            limits,
            subjects,
            backoff,
            signals,
            session,
            account,
            phone,
            conversion,
            costs,
            admin_block: super::lifecycle::admin_block_rule(),
        }
    }

    /// A request weighed by cost takes `cost` cells at once; a burst smaller than
    /// the largest cost could never let that destination through.
    fn cost_fits_bursts(&mut self, p: &PolicyFile, limits: &[LimitRule], costs: &Costs) {
        let max = costs.max();
        for l in limits.iter().filter(|l| l.cost) {
            if l.quota.burst_size().get() < max {
                let span = p
                    .limits
                    .iter()
                    .find(|f| f.id.get_ref().as_str() == &*l.rule.id)
                    .map_or(0..0, |f| f.id.span());
                self.problem(
                    span,
                    format!(
                        "rule {:?}: burst ({}) must be at least the largest cost in [costs] ({max})",
                        l.rule.id,
                        l.quota.burst_size()
                    ),
                );
            }
        }
    }

    /// Reports each id used again, naming the line of its first use in the file
    /// (the `[backoff]` table may come before or after the limits).
    fn duplicate_ids(&mut self, p: &PolicyFile) {
        let mut ids: Vec<&Spanned<String>> = p
            .limits
            .iter()
            .map(|l| &l.id)
            .chain(p.backoff.iter().map(|b| &b.id))
            .chain(p.signals.iter().map(|s| &s.id))
            .collect();
        ids.sort_by_key(|id| id.span().start);
        let mut first: HashMap<&str, usize> = HashMap::new();
        for id in ids {
            let line = self.line(id.span().start);
            match first.get(id.get_ref().as_str()) {
                Some(&first) => self.problem(
                    id.span(),
                    format!(
                        "duplicate rule id {:?} (first defined on line {first})",
                        id.get_ref()
                    ),
                ),
                None => {
                    first.insert(id.get_ref(), line);
                }
            }
        }
    }

    fn points(&mut self, v: &Spanned<u32>, what: &str) -> u8 {
        self.ranged(v, 0, 100, what)
    }

    pub(super) fn ranged(&mut self, v: &Spanned<u32>, lo: u32, hi: u32, what: &str) -> u8 {
        let x = *v.get_ref();
        if x < lo || x > hi {
            self.problem(
                v.span(),
                format!("{what} must be from {lo} to {hi}, is {x}"),
            );
            return lo as u8;
        }
        x as u8
    }

    pub(super) fn rule(
        &mut self,
        r: RuleCommon<'_>,
        d: &Defaults,
        default_message: String,
    ) -> Option<Rule> {
        let id = r.id.get_ref();
        let before = self.problems.len();
        if !valid_id(id) {
            self.problem(
                r.id.span(),
                format!(
                    "rule id {id:?} must be lower-case words (a-z, 0-9, _) joined by dots, at most {MAX_ID_LEN} characters, e.g. \"limit.phone\""
                ),
            );
        }

        let mut events = 0u8;
        match r.events {
            Some(list) if list.get_ref().is_empty() => self.problem(
                list.span(),
                format!("rule {id:?}: events is empty; omit it to match every event"),
            ),
            Some(list) => list
                .get_ref()
                .iter()
                .for_each(|e| events |= Event::from(*e.get_ref()).bit()),
            None => Event::ALL.iter().for_each(|e| events |= e.bit()),
        }
        let channels = match r.channels {
            Some(list) if list.get_ref().is_empty() => {
                self.problem(list.span(), format!("rule {id:?}: channels is empty; omit it to match with or without a channel"));
                None
            }
            Some(list) => Some(
                list.get_ref()
                    .iter()
                    .fold(0u8, |m, c| m | Channel::from(*c.get_ref()).bit()),
            ),
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
                format!(
                    "rule {id:?}: step_up_methods only applies with action = \"step_up\", not {:?}",
                    action_name(&action)
                ),
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
            Some(m) if m.get_ref().trim().is_empty() => {
                self.problem(
                    m.span(),
                    format!(
                        "rule {id:?}: message {:?} is blank; omit it for the default message",
                        m.get_ref()
                    ),
                );
                "".into()
            }
            Some(m) if m.get_ref().chars().count() > MAX_MESSAGE_LEN => {
                self.problem(
                    m.span(),
                    format!(
                        "rule {id:?}: message must be at most {MAX_MESSAGE_LEN} characters, is {}",
                        m.get_ref().chars().count()
                    ),
                );
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
            bypassable: r.bypassable,
            always_enforced: false,
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
                    format!(
                        "rule {id:?}: prefix_digits only applies with key = \"phone_prefix\", not {:?}",
                        key_name(*l.key.get_ref())
                    ),
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
        let burst = match &l.burst {
            Some(b) => match NonZeroU32::new(*b.get_ref()) {
                Some(n) => Some(n),
                None => {
                    self.problem(
                        b.span(),
                        format!("rule {id:?}: burst must be at least 1, is 0"),
                    );
                    None
                }
            },
            None => rate.map(|(count, _, _)| count),
        };
        let (_, _, per_cell) = rate?;
        let quota = Quota::with_period(per_cell)?.allow_burst(burst?);
        let count = match l.count {
            Some(CountName::Allowed) => Count::Allowed,
            Some(CountName::Attempts) | None => Count::Attempts,
        };
        (self.problems.len() == before).then_some(LimitRule {
            rule: rule?,
            key,
            subject: 0,
            quota,
            count,
            cost: l.cost,
        })
    }

    /// `"COUNT/PERIOD"` -> (count, period, time per cell).
    fn rate(&mut self, r: &Spanned<String>, id: &str) -> Option<(NonZeroU32, Duration, Duration)> {
        let text = r.get_ref().trim();
        let Some((count, period)) = text.split_once('/') else {
            self.problem(
                r.span(),
                format!(
                    "rule {id:?}: rate {text:?} must be COUNT/PERIOD, e.g. \"5/1h\" or \"100/s\""
                ),
            );
            return None;
        };
        let Ok(count) = count.trim().parse::<NonZeroU32>() else {
            self.problem(
                r.span(),
                format!("rule {id:?}: rate {text:?}: COUNT must be a whole number, at least 1"),
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
                self.problem(
                    r.span(),
                    format!("rule {id:?}: rate {text:?}: PERIOD must be more than zero"),
                );
                return None;
            }
            Err(e) => {
                let why = duration_error(&with_number, &e);
                self.problem(
                    r.span(),
                    format!("rule {id:?}: rate {text:?}: PERIOD: {why} ({DURATION_EXAMPLES})"),
                );
                return None;
            }
        };
        let per_cell = period / count.get();
        if per_cell.is_zero() {
            self.problem(
                r.span(),
                format!("rule {id:?}: rate {text:?} is faster than one per nanosecond"),
            );
            return None;
        }
        Some((count, period, per_cell))
    }

    pub(super) fn duration(&mut self, v: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(
                    v.span(),
                    format!("{what} {:?} must be more than zero", v.get_ref()),
                );
                None
            }
            Err(e) => {
                let why = duration_error(v.get_ref().trim(), &e);
                self.problem(
                    v.span(),
                    format!("{what} {:?}: {why} ({DURATION_EXAMPLES})", v.get_ref()),
                );
                None
            }
        }
    }

    fn backoff(&mut self, b: &BackoffFile, d: &Defaults) -> Option<BackoffRule> {
        let before = self.problems.len();
        let id = b.id.get_ref().clone();
        if let Some(events) = &b.events {
            for e in events.get_ref() {
                let event = Event::from(*e.get_ref());
                if event != Event::OtpSend {
                    self.problem(
                        e.span(),
                        format!(
                            "rule {id:?}: backoff applies to otp_send only, not {:?}",
                            event.as_str()
                        ),
                    );
                }
            }
        }
        let base = self.duration(&b.base, &format!("rule {id:?}: base"));
        let cap = self.duration(&b.cap, &format!("rule {id:?}: cap"));
        let reset_after = self.duration(&b.reset_after, &format!("rule {id:?}: reset_after"));
        let factor = *b.factor.get_ref();
        if !(1.0..=100.0).contains(&factor) {
            self.problem(
                b.factor.span(),
                format!("rule {id:?}: factor must be from 1 to 100, is {factor}"),
            );
        }
        if let (Some(base), Some(cap)) = (base, cap) {
            if cap < base {
                self.problem(
                    b.cap.span(),
                    format!(
                        "rule {id:?}: cap {:?} must be at least base {:?}",
                        b.cap.get_ref(),
                        b.base.get_ref()
                    ),
                );
            }
        }
        if let (Some(cap), Some(reset)) = (cap, reset_after) {
            if reset < cap {
                self.problem(
                    b.reset_after.span(),
                    format!(
                        "rule {id:?}: reset_after {:?} must be at least cap {:?}",
                        b.reset_after.get_ref(),
                        b.cap.get_ref()
                    ),
                );
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

/// Serde names what it expected by Rust type (`expected a nonzero u32`); a
/// policy author needs the value range instead.
fn plain_types(message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let plain = match expected {
        "a nonzero u32" => "a whole number from 1 to 4294967295",
        "u32" => "a whole number from 0 to 4294967295",
        "f64" => "a number",
        _ => return message.to_owned(),
    };
    format!("{head}, expected {plain}")
}

/// Why a duration did not parse, naming the offending part rather than a byte
/// offset (the text parsed may not be exactly what was written).
fn duration_error(text: &str, e: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    let rest = |i: usize| text.get(i..).unwrap_or_default();
    match e {
        E::Empty => "it is empty".into(),
        E::NumberExpected(0) => "it must start with a number".into(),
        E::NumberExpected(i) => format!("expected a number at {:?}", rest(*i)),
        E::InvalidCharacter(i) => match rest(*i).chars().next() {
            Some(c) => format!("invalid character {c:?}"),
            None => "invalid character".into(),
        },
        E::UnknownUnit { unit, value, .. } if unit.is_empty() => format!("{value} has no unit"),
        E::UnknownUnit { unit, .. } => format!("unknown unit {unit:?}"),
        E::NumberOverflow => "the number is too large or too precise".into(),
    }
}

pub(super) struct Defaults {
    pub(super) step_up_at: u8,
    pub(super) methods: Vec<StepUpMethod>,
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

fn key_name(k: KeyName) -> &'static str {
    match k {
        KeyName::Ip => "ip",
        KeyName::Subnet => "subnet",
        KeyName::Device => "device",
        KeyName::Account => "account",
        KeyName::Phone => "phone",
        KeyName::PhonePrefix => "phone_prefix",
        KeyName::PhoneCountry => "phone_country",
        KeyName::Session => "session",
        KeyName::Tenant => "tenant",
        KeyName::Global => "global",
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Block => "block",
        Action::StepUp(_) => "step_up",
        Action::Score => "score",
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
    fn limits_keyed_on_one_subject_share_its_slot() {
        let s = compile(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap();
        for l in &s.limits {
            assert_eq!(s.subjects[l.subject], l.key, "{}", l.rule.id);
        }
        let slot = |id: &str| s.limits.iter().find(|l| &*l.rule.id == id).unwrap().subject;
        assert_eq!(slot("limit.global_sends"), slot("budget.global_daily"));
        assert_eq!(slot("limit.ip"), slot("limit.login_ip"));
        // Prefixes of 4 and of 3 digits are two subjects.
        assert_ne!(slot("limit.phone_prefix"), slot("budget.prefix_hourly"));
        let distinct: std::collections::HashSet<_> = s.limits.iter().map(|l| l.subject).collect();
        assert_eq!(distinct.len(), s.subjects.len());
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
