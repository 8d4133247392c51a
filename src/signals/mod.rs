//! Facts about a request, derived once per request from read-only data.
//!
//! The policy reads these, and limits are keyed on the subjects they name
//! ([`Signals::subject`]). Phone facts come from [`phone`]; IP facts from [`ip`].

pub mod data;
pub mod datafile;
pub mod geo;
pub mod ip;
pub mod lists;
pub mod phone;

use crate::policy::KeyKind;
use crate::request::AssessInput;
use data::{DataSet, IpSignals};
use std::fmt;

pub use phone::{NumberType, PhoneFacts};

/// An ISO 3166-1 alpha-2 code ("FR", "GG"), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts two ASCII letters, any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII letters")
    }

    pub fn as_bytes(&self) -> &[u8; 2] {
        &self.0
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything derived about one request.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    pub phone: Option<PhoneFacts>,
    /// What the data files say about the IP (absent without an IP).
    pub ip: Option<IpSignals>,
}

/// Scratch space for subjects that are not a slice of the request (IP octets,
/// networks, calling codes), so building a key allocates nothing.
pub type SubjectBuf = [u8; 18];

impl Signals {
    pub fn gather(input: &AssessInput, data: &DataSet) -> Signals {
        let mut s = Signals::of_number(input);
        s.look_up_ip(input, data);
        s
    }

    /// The number's facts alone, which is all a decision's keys need (see
    /// [`Signals::subject`]); [`Signals::look_up_ip`] adds the IP's.
    pub fn of_number(input: &AssessInput) -> Signals {
        Signals {
            phone: input.phone.as_ref().map(phone::facts),
            ip: None,
        }
    }

    /// What the data files say about the request's IP.
    pub fn look_up_ip(&mut self, input: &AssessInput, data: &DataSet) {
        self.ip = input.ip.map(|ip| data.lookup(ip));
    }

    /// The bytes identifying the subject a limit of `kind` is keyed on, or `None`
    /// when the request does not name one (the limit then does not apply).
    /// Only the number's facts are needed, not the IP's data.
    pub fn subject<'a>(
        number: Option<&PhoneFacts>,
        kind: KeyKind,
        input: &'a AssessInput,
        buf: &'a mut SubjectBuf,
    ) -> Option<&'a [u8]> {
        let bytes = |s: &'a Option<String>| s.as_deref().map(str::as_bytes);
        match kind {
            KeyKind::Ip => input.ip.map(|ip| ip::octets(ip, buf)),
            KeyKind::Subnet { v4, v6 } => input.ip.map(|ip| ip::network(ip, v4, v6, buf)),
            KeyKind::Device => bytes(&input.device_id),
            KeyKind::Account => bytes(&input.account_id),
            KeyKind::Session => bytes(&input.session_id),
            KeyKind::Tenant => bytes(&input.tenant),
            KeyKind::Global => Some(&[]),
            KeyKind::Phone => input.phone.as_ref().map(|p| p.digits().as_bytes()),
            KeyKind::PhonePrefix { digits } => {
                let (p, f) = (input.phone.as_ref()?, number?);
                Some(f.prefix(p, digits).as_bytes())
            }
            KeyKind::PhoneCountry => Some(number?.country_subject(buf)),
        }
    }
}
