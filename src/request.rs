//! Validated requests: the domain types the engine works on.
//!
//! The service turns proto messages into these with `TryFrom` (see
//! `service::convert`); once built, they guarantee their invariants: known enum
//! values, a parsed and canonical IP, a syntactically valid E.164 number, strings
//! within the limits below and free of control characters.
//!
//! Input limits (also in the README):
//!
//! | field | limit |
//! |---|---|
//! | `phone_number` | `+`, then 6 to 15 ASCII digits, first digit not 0 |
//! | `email` | 254 bytes, one `@`, no spaces or control characters |
//! | `ip` | IPv4 dotted quad (no leading zeros) or IPv6 (no zone id) |
//! | `device_id`, `account_id`, `session_id` | 128 bytes |
//! | `user_agent` | 512 bytes |
//! | `tenant` | 64 bytes |
//! | `currency` | 3 upper-case ASCII letters |
//! | `amount_minor` | 0 or more |
//! | `attributes` | 16 entries; key 64 bytes, value 256 bytes |
//! | `assessment_id` | 32 lower-case hex digits |
//!
//! No string may contain control characters.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub const MAX_ID_LEN: usize = 128;
pub const MAX_USER_AGENT_LEN: usize = 512;
pub const MAX_TENANT_LEN: usize = 64;
pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_ATTRIBUTES: usize = 16;
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 256;
pub const MIN_E164_DIGITS: usize = 6;
pub const MAX_E164_DIGITS: usize = 15;

/// What the caller is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    OtpSend,
    OtpVerify,
    Login,
    Transaction,
    Registration,
    CredentialChange,
    AccountRecovery,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::OtpSend,
        Event::OtpVerify,
        Event::Login,
        Event::Transaction,
        Event::Registration,
        Event::CredentialChange,
        Event::AccountRecovery,
    ];

    /// The policy and metrics name (a fixed, bounded set).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::OtpSend => "otp_send",
            Event::OtpVerify => "otp_verify",
            Event::Login => "login",
            Event::Transaction => "transaction",
            Event::Registration => "registration",
            Event::CredentialChange => "credential_change",
            Event::AccountRecovery => "account_recovery",
        }
    }

    pub fn is_otp(self) -> bool {
        matches!(self, Event::OtpSend | Event::OtpVerify)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// How a code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Sms,
    Voice,
    Email,
    Whatsapp,
    Push,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::Voice,
        Channel::Email,
        Channel::Whatsapp,
        Channel::Push,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
            Channel::Whatsapp => "whatsapp",
            Channel::Push => "push",
        }
    }

    /// Channels that deliver to a phone number.
    pub fn needs_phone(self) -> bool {
        matches!(self, Channel::Sms | Channel::Voice | Channel::Whatsapp)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// What happened after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    OtpDelivered,
    OtpUndelivered,
    OtpVerified,
    OtpWrongCode,
    OtpExpired,
    LoginSucceeded,
    LoginFailed,
    StepUpPassed,
    StepUpFailed,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::OtpDelivered,
        Outcome::OtpUndelivered,
        Outcome::OtpVerified,
        Outcome::OtpWrongCode,
        Outcome::OtpExpired,
        Outcome::LoginSucceeded,
        Outcome::LoginFailed,
        Outcome::StepUpPassed,
        Outcome::StepUpFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::OtpDelivered => "otp_delivered",
            Outcome::OtpUndelivered => "otp_undelivered",
            Outcome::OtpVerified => "otp_verified",
            Outcome::OtpWrongCode => "otp_wrong_code",
            Outcome::OtpExpired => "otp_expired",
            Outcome::LoginSucceeded => "login_succeeded",
            Outcome::LoginFailed => "login_failed",
            Outcome::StepUpPassed => "step_up_passed",
            Outcome::StepUpFailed => "step_up_failed",
        }
    }
}

/// A phone number in E.164 form: `+` and 6 to 15 ASCII digits, not starting with 0.
/// Only the syntax is checked here; the number plan (region, type, validity) is a
/// signal, derived in `signals::phone`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits after the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

/// Never print a full number by accident: Debug shows the masked form.
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.digits();
        write!(f, "E164(+{}…{})", &d[..2], &d[d.len() - 2..])
    }
}

impl FromStr for E164 {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some(digits) = s.strip_prefix('+') else {
            return Err("must start with '+' (E.164, e.g. +33612345678)".into());
        };
        if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(format!(
                "must contain only ASCII digits after '+', found {}",
                describe_char(c)
            ));
        }
        if digits.len() < MIN_E164_DIGITS || digits.len() > MAX_E164_DIGITS {
            return Err(format!(
                "must have {MIN_E164_DIGITS} to {MAX_E164_DIGITS} digits, has {}",
                digits.len()
            ));
        }
        if digits.starts_with('0') {
            return Err("country calling code cannot start with 0".into());
        }
        Ok(E164(s.to_owned()))
    }
}

fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() || c == ' ' {
        format!("{c:?}")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// The identifier of a past assessment: 128 bits, written as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssessmentId(pub u128);

impl AssessmentId {
    /// The id of the `seq`-th assessment of a process whose ids start with
    /// `prefix`. The sequence number is mixed (a bijection), so ids do not
    /// reveal traffic volume, and can be recovered with [`Self::sequence`].
    pub fn new(prefix: u64, seq: u64) -> Self {
        AssessmentId((u128::from(prefix) << 64) | u128::from(mix(seq)))
    }

    /// The sequence number the id was made from (what a store can index by).
    pub fn sequence(self) -> u64 {
        unmix(self.0 as u64)
    }
}

/// splitmix64's finaliser: a bijection on u64.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The inverse of [`mix`] (the multipliers' inverses mod 2^64).
fn unmix(mut z: u64) -> u64 {
    z ^= (z >> 31) ^ (z >> 62);
    z = z.wrapping_mul(0x3196_42b2_d24d_8ec3);
    z ^= (z >> 27) ^ (z >> 54);
    z = z.wrapping_mul(0x96de_1b17_3f11_9089);
    z ^= (z >> 30) ^ (z >> 60);
    z.wrapping_sub(0x9e37_79b9_7f4a_7c15)
}

impl fmt::Display for AssessmentId {
    /// 32 lower-case hex digits. By hand: every `Assess` answer carries one,
    /// and the formatter's padded-hex path costs several times this.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 32];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = HEX[(self.0 >> (124 - 4 * i) & 0xf) as usize];
        }
        f.write_str(std::str::from_utf8(&buf).expect("hex digits are ASCII"))
    }
}

impl FromStr for AssessmentId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err("must be 32 lower-case hex digits, as returned by Assess".into());
        }
        u128::from_str_radix(s, 16)
            .map(AssessmentId)
            .map_err(|e| e.to_string())
    }
}

/// The subject of an admin call (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminSubject {
    Phone(E164),
    /// "+" and 1 to 15 digits.
    Prefix(String),
    Account(String),
    Device(String),
    Ip(IpAddr),
    /// Network address (host bits zero) and prefix length.
    Network(IpAddr, u8),
    Country(crate::signals::CountryCode),
    Session(String),
}

impl AdminSubject {
    /// Parses `value` as the subject kind named by `field`.
    pub fn parse(field: &str, value: &str) -> Result<AdminSubject, String> {
        let text = |max: usize| check_text(value, max).map(|()| value.to_owned());
        let nonempty = || {
            if value.is_empty() {
                Err("must not be empty".to_owned())
            } else {
                Ok(())
            }
        };
        match field {
            "phone_number" => value.parse().map(AdminSubject::Phone),
            "prefix" => {
                let digits = value.strip_prefix('+').unwrap_or("");
                if digits.is_empty()
                    || digits.len() > MAX_E164_DIGITS
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || digits.starts_with('0')
                {
                    Err(format!(
                        "{:?} is not a number prefix: '+' then 1 to 15 digits, e.g. \"+88216\"",
                        preview(value)
                    ))
                } else {
                    Ok(AdminSubject::Prefix(value.to_owned()))
                }
            }
            "account_id" => nonempty().and(text(MAX_ID_LEN)).map(AdminSubject::Account),
            "device_id" => nonempty().and(text(MAX_ID_LEN)).map(AdminSubject::Device),
            "session_id" => nonempty().and(text(MAX_ID_LEN)).map(AdminSubject::Session),
            "ip" => parse_ip(value).map(AdminSubject::Ip),
            "network" => {
                let net: ipnetwork::IpNetwork = value
                    .parse()
                    .map_err(|e| format!("{:?} is not a CIDR network: {e}", preview(value)))?;
                let (addr, len) = match net {
                    ipnetwork::IpNetwork::V4(n) => (IpAddr::V4(n.network()), n.prefix()),
                    ipnetwork::IpNetwork::V6(n) => match n.network().to_ipv4_mapped() {
                        Some(v4) if n.prefix() >= 96 => (IpAddr::V4(v4), n.prefix() - 96),
                        _ => (IpAddr::V6(n.network()), n.prefix()),
                    },
                };
                Ok(AdminSubject::Network(addr, len))
            }
            "country" => crate::signals::CountryCode::parse(value)
                .filter(|_| value.bytes().all(|b| b.is_ascii_uppercase()))
                .map(AdminSubject::Country)
                .ok_or_else(|| {
                    format!(
                        "{:?} is not an ISO 3166 alpha-2 code such as \"FR\"",
                        preview(value)
                    )
                }),
            other => Err(format!("unknown subject kind {other}")),
        }
    }
}

/// A validated `Assess` request.
#[derive(Debug, Clone)]
pub struct AssessInput {
    pub event: Event,
    pub channel: Option<Channel>,
    pub phone: Option<E164>,
    pub email: Option<String>,
    /// Canonical: an IPv4-mapped IPv6 address is stored as IPv4.
    pub ip: Option<IpAddr>,
    pub device_id: Option<String>,
    pub account_id: Option<String>,
    pub session_id: Option<String>,
    pub user_agent: Option<String>,
    pub tenant: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub attributes: Vec<(String, String)>,
}

/// A validated `Report` request.
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub assessment_id: Option<AssessmentId>,
    pub outcome: Outcome,
    pub phone: Option<E164>,
    pub email: Option<String>,
    pub account_id: Option<String>,
    pub session_id: Option<String>,
    pub device_id: Option<String>,
    pub tenant: Option<String>,
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Everything wrong with a request, field by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", .0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
pub struct RequestError(pub Vec<FieldViolation>);

/// Collects violations while a request is converted, so the caller hears about
/// every bad field at once.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, RequestError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(RequestError(self.0))
        }
    }

    /// An optional bounded string: empty means absent.
    pub fn text(&mut self, field: &str, s: String, max: usize) -> Option<String> {
        if s.is_empty() {
            return None;
        }
        match check_text(&s, max) {
            Ok(()) => Some(s),
            Err(e) => {
                self.add(field, e);
                None
            }
        }
    }

    pub fn phone(&mut self, field: &str, s: &str) -> Option<E164> {
        if s.is_empty() {
            return None;
        }
        match s.parse() {
            Ok(p) => Some(p),
            Err(e) => {
                self.add(field, e);
                None
            }
        }
    }

    pub fn ip(&mut self, field: &str, s: &str) -> Option<IpAddr> {
        if s.is_empty() {
            return None;
        }
        match parse_ip(s) {
            Ok(ip) => Some(ip),
            Err(e) => {
                self.add(field, e);
                None
            }
        }
    }

    pub fn email(&mut self, field: &str, s: String) -> Option<String> {
        let s = self.text(field, s, MAX_EMAIL_LEN)?;
        let ok = s.split('@').count() == 2
            && !s.starts_with('@')
            && !s.ends_with('@')
            && !s.contains(char::is_whitespace);
        if ok {
            Some(s)
        } else {
            self.add(field, "must be an address of the form local@domain");
            None
        }
    }
}

/// Bounded, printable text.
pub fn check_text(s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("must be at most {max} bytes, is {}", s.len()));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "must not contain control characters, found {}",
            describe_char(c)
        ));
    }
    Ok(())
}

/// Parses an IP address strictly (std rejects octal-looking `0127.0.0.1`, short
/// forms like `1.2.3` and zone ids) and canonicalises IPv4-mapped IPv6
/// (`::ffff:1.2.3.4`) to IPv4, so both spellings are one subject.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    IpAddr::from_str(s)
        .map(|ip| ip.to_canonical())
        .map_err(|_| format!("{:?} is not an IPv4 or IPv6 address", preview(s)))
}

/// A bounded preview of attacker-controlled text for error messages.
pub fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(48).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_plain_numbers() {
        assert_eq!(
            "+33612345678".parse::<E164>().unwrap().digits(),
            "33612345678"
        );
        assert!("+123456".parse::<E164>().is_ok());
        assert!("+123456789012345".parse::<E164>().is_ok());
    }

    #[test]
    fn e164_rejects_lookalikes_and_bad_lengths() {
        for bad in [
            "33612345678",       // no plus
            "+3361234567a",      // letter
            "+1234567890123456", // 16 digits
            "+0612345678",       // leading zero
            "+３３612345678",    // full-width digits
            "+٣٣612345678",      // Arabic-Indic digits
            "＋33612345678",     // full-width plus
            "+33 6 12 34 56 78", // spaces
            "+12345",            // too short
            "+",
        ] {
            assert!(bad.parse::<E164>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn e164_debug_is_masked() {
        let p: E164 = "+33612345678".parse().unwrap();
        let d = format!("{p:?}");
        assert!(!d.contains("612345"), "{d}");
    }

    #[test]
    fn ip_parsing_is_strict_and_canonical() {
        assert_eq!(
            parse_ip("::ffff:1.2.3.4").unwrap(),
            parse_ip("1.2.3.4").unwrap()
        );
        for bad in [
            "0127.0.0.1",
            "1.2.3",
            "fe80::1%eth0",
            "1.2.3.4.5",
            "256.1.1.1",
            " 1.2.3.4",
        ] {
            assert!(parse_ip(bad).is_err(), "{bad} should be rejected");
        }
        assert!(parse_ip("2001:db8::1").is_ok());
    }

    #[test]
    fn text_limits() {
        assert!(check_text(&"a".repeat(128), 128).is_ok());
        assert!(check_text(&"a".repeat(129), 128).is_err());
        assert!(check_text("dev\u{0}ice", 128).is_err());
        assert!(check_text("dev\nice", 128).is_err());
    }

    #[test]
    fn admin_subjects_parse_strictly() {
        use AdminSubject as A;
        assert_eq!(A::parse("prefix", "+88216"), Ok(A::Prefix("+88216".into())));
        assert!(A::parse("prefix", "88216").is_err());
        assert!(A::parse("prefix", "+0216").is_err());
        assert_eq!(
            A::parse("network", "203.0.113.77/24"),
            Ok(A::Network("203.0.113.0".parse().unwrap(), 24))
        );
        assert_eq!(
            A::parse("network", "::ffff:203.0.113.0/120"),
            Ok(A::Network("203.0.113.0".parse().unwrap(), 24))
        );
        assert!(A::parse("network", "10.0.0.0/33").is_err());
        assert!(A::parse("country", "fr").is_err());
        assert!(A::parse("account_id", "").is_err());
        assert!(A::parse("ip", "1.2.3").is_err());
    }

    #[test]
    fn assessment_id_round_trips() {
        for seq in [0, 1, 2, 12345, u64::MAX / 3, u64::MAX] {
            let id = AssessmentId::new(0xfeed, seq);
            assert_eq!(id.sequence(), seq);
            assert_eq!((id.0 >> 64) as u64, 0xfeed);
        }
        assert_ne!(AssessmentId::new(0, 1).0 as u64, 1, "the sequence is mixed");
        let id = AssessmentId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(id.to_string(), "0123456789abcdef0011223344556677");
        assert_eq!(id.to_string().parse::<AssessmentId>().unwrap(), id);
        for v in [0, 1, 0xf << 124, u128::MAX, 0xfeed_u128 << 64 | 42] {
            assert_eq!(AssessmentId(v).to_string(), format!("{v:032x}"));
        }
        assert!("xyz".parse::<AssessmentId>().is_err());
        assert!("0123456789ABCDEF0011223344556677"
            .parse::<AssessmentId>()
            .is_err());
    }
}
