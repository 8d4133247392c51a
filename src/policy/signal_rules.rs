//! `[[signal]]` rules: conditions over what tollgate derived about a request
//! (number type and validity, number region, IP country, anonymity, ASN, list
//! membership), compiled into bit sets and sorted lists.

use super::compile::{Compiler, Defaults};
use super::file::{AnonymityName, ConnectionName, NumberTypeName, SignalFile};
use super::Rule;
use crate::signals::geo::ConnectionType;
use crate::signals::{CountryCode, NumberType, Signals};
use std::sync::Arc;
use toml::Spanned;

/// The names of the custom lists the settings configure. Unchecked (offline
/// `check-policy`): any name is accepted and never matches.
#[derive(Debug, Clone, Default)]
pub struct ListNames {
    pub ip: Vec<Arc<str>>,
    pub asn: Vec<Arc<str>>,
    pub checked: bool,
}

/// Countries a fact must (or must not) be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountrySet {
    pub negate: bool,
    pub codes: Vec<CountryCode>,
}

impl CountrySet {
    /// Unknown (`None`) never holds.
    fn holds(&self, c: Option<CountryCode>) -> bool {
        c.is_some_and(|c| self.codes.binary_search(&c).is_ok() != self.negate)
    }
}

/// Every field set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// Bit set of [`NumberType`] (by its index in `NumberType::ALL`).
    pub phone_types: Option<u16>,
    pub phone_valid: Option<bool>,
    pub phone_region: Option<CountrySet>,
    pub ip_country: Option<CountrySet>,
    pub country_mismatch: bool,
    /// Bit set of [`AnonymityName`] flags; any of them.
    pub anonymous: Option<u8>,
    /// Bit set of connection types; any of them.
    pub connection: Option<u8>,
    /// Custom list bits; any of them.
    pub ip_lists: Option<u64>,
    pub asn_lists: Option<u64>,
    /// Sorted.
    pub asns: Option<Vec<u32>>,
}

#[derive(Debug, Clone)]
pub struct SignalRule {
    pub rule: Rule,
    pub when: Condition,
}

fn type_bit(t: NumberType) -> u16 {
    1 << NumberType::ALL.iter().position(|x| *x == t).unwrap_or(15)
}

fn type_of(n: NumberTypeName) -> NumberType {
    match n {
        NumberTypeName::Mobile => NumberType::Mobile,
        NumberTypeName::FixedLine => NumberType::FixedLine,
        NumberTypeName::FixedLineOrMobile => NumberType::FixedLineOrMobile,
        NumberTypeName::TollFree => NumberType::TollFree,
        NumberTypeName::PremiumRate => NumberType::PremiumRate,
        NumberTypeName::SharedCost => NumberType::SharedCost,
        NumberTypeName::Voip => NumberType::Voip,
        NumberTypeName::Personal => NumberType::Personal,
        NumberTypeName::Pager => NumberType::Pager,
        NumberTypeName::Uan => NumberType::Uan,
        NumberTypeName::Voicemail => NumberType::Voicemail,
        NumberTypeName::Unknown => NumberType::Unknown,
    }
}

fn connection_bit(c: ConnectionType) -> u8 {
    match c {
        ConnectionType::Dialup => 1,
        ConnectionType::CableDsl => 2,
        ConnectionType::Corporate => 4,
        ConnectionType::Cellular => 8,
        ConnectionType::Satellite => 16,
    }
}

fn connection_of(c: ConnectionName) -> ConnectionType {
    match c {
        ConnectionName::Dialup => ConnectionType::Dialup,
        ConnectionName::CableDsl => ConnectionType::CableDsl,
        ConnectionName::Corporate => ConnectionType::Corporate,
        ConnectionName::Cellular => ConnectionType::Cellular,
        ConnectionName::Satellite => ConnectionType::Satellite,
    }
}

fn anonymity_bit(a: AnonymityName) -> u8 {
    match a {
        AnonymityName::Anonymous => 1,
        AnonymityName::Vpn => 2,
        AnonymityName::Hosting => 4,
        AnonymityName::PublicProxy => 8,
        AnonymityName::ResidentialProxy => 16,
        AnonymityName::Tor => 32,
    }
}

impl Condition {
    /// Whether every condition holds for these signals.
    #[allow(
        clippy::nonminimal_bool,
        reason = "each check reads as its condition: unless the fact is known and matches, the rule does not fire"
    )]
    pub fn holds(&self, s: &Signals) -> bool {
        let phone = s.phone.as_ref();
        let ip = s.ip.as_ref();
        let facts = ip.map(|i| &i.facts);
        let region = phone.and_then(|p| p.region);
        let country = facts.and_then(|f| f.country);
        if let Some(types) = self.phone_types {
            if !phone.is_some_and(|p| types & type_bit(p.number_type) != 0) {
                return false;
            }
        }
        if let Some(v) = self.phone_valid {
            if !phone.is_some_and(|p| p.valid == v) {
                return false;
            }
        }
        if let Some(set) = &self.phone_region {
            if !set.holds(region) {
                return false;
            }
        }
        if let Some(set) = &self.ip_country {
            if !set.holds(country) {
                return false;
            }
        }
        if self.country_mismatch && !matches!((region, country), (Some(r), Some(c)) if r != c) {
            return false;
        }
        if let Some(mask) = self.anonymous {
            let Some(f) = facts else { return false };
            let a = f.anonymous;
            let have = u8::from(a.anonymous)
                | u8::from(a.vpn) << 1
                | u8::from(a.hosting) << 2
                | u8::from(a.public_proxy) << 3
                | u8::from(a.residential_proxy) << 4
                | u8::from(a.tor_exit) << 5;
            if have & mask == 0 {
                return false;
            }
        }
        if let Some(mask) = self.connection {
            if !facts
                .and_then(|f| f.connection)
                .is_some_and(|c| connection_bit(c) & mask != 0)
            {
                return false;
            }
        }
        if let Some(mask) = self.ip_lists {
            if !ip.is_some_and(|i| i.ip_lists & mask != 0) {
                return false;
            }
        }
        if let Some(mask) = self.asn_lists {
            if !ip.is_some_and(|i| i.asn_lists & mask != 0) {
                return false;
            }
        }
        if let Some(asns) = &self.asns {
            if !facts
                .and_then(|f| f.asn)
                .is_some_and(|a| asns.binary_search(&a).is_ok())
            {
                return false;
            }
        }
        true
    }
}

impl Compiler<'_> {
    fn countries(
        &mut self,
        id: &str,
        field: &str,
        list: &Spanned<Vec<Spanned<String>>>,
        negate: bool,
    ) -> CountrySet {
        if list.get_ref().is_empty() {
            self.problem(list.span(), format!("rule {id:?}: {field} is empty"));
        }
        let mut codes = Vec::new();
        for c in list.get_ref() {
            match CountryCode::parse(c.get_ref())
                .filter(|_| c.get_ref().bytes().all(|b| b.is_ascii_uppercase()))
            {
                Some(code) => codes.push(code),
                None => self.problem(
                    c.span(),
                    format!(
                        "rule {id:?}: {field}: {:?} is not an ISO 3166 alpha-2 code such as \"FR\"",
                        c.get_ref()
                    ),
                ),
            }
        }
        codes.sort();
        codes.dedup();
        CountrySet { negate, codes }
    }

    fn names(
        &mut self,
        id: &str,
        field: &str,
        list: &Spanned<Vec<Spanned<String>>>,
        known: &[Arc<str>],
        checked: bool,
        flag: &str,
    ) -> u64 {
        let mut mask = 0u64;
        for n in list.get_ref() {
            match known.iter().position(|k| **k == *n.get_ref()) {
                Some(i) if i < 64 => mask |= 1 << i,
                _ if checked => self.problem(
                    n.span(),
                    format!(
                        "rule {id:?}: {field}: no list named {:?} is configured (--{flag} NAME=PATH)",
                        n.get_ref()
                    ),
                ),
                _ => {}
            }
        }
        mask
    }

    pub(super) fn signal(
        &mut self,
        s: &SignalFile,
        d: &Defaults,
        names: &ListNames,
    ) -> Option<SignalRule> {
        let before = self.problems.len();
        let id = s.id.get_ref().clone();
        let mut when = Condition {
            phone_valid: s.phone_valid,
            country_mismatch: s.country_mismatch == Some(true),
            ..Condition::default()
        };
        if let Some(t) = &s.phone_type {
            when.phone_types = Some(
                t.get_ref()
                    .iter()
                    .fold(0, |m, x| m | type_bit(type_of(*x.get_ref()))),
            );
        }
        match (&s.phone_region_in, &s.phone_region_not_in) {
            (Some(a), Some(_)) => self.problem(
                a.span(),
                format!("rule {id:?}: give phone_region_in or phone_region_not_in, not both"),
            ),
            (Some(a), None) => {
                when.phone_region = Some(self.countries(&id, "phone_region_in", a, false))
            }
            (None, Some(b)) => {
                when.phone_region = Some(self.countries(&id, "phone_region_not_in", b, true))
            }
            (None, None) => {}
        }
        match (&s.ip_country_in, &s.ip_country_not_in) {
            (Some(a), Some(_)) => self.problem(
                a.span(),
                format!("rule {id:?}: give ip_country_in or ip_country_not_in, not both"),
            ),
            (Some(a), None) => {
                when.ip_country = Some(self.countries(&id, "ip_country_in", a, false))
            }
            (None, Some(b)) => {
                when.ip_country = Some(self.countries(&id, "ip_country_not_in", b, true))
            }
            (None, None) => {}
        }
        if let Some(a) = &s.ip_anonymous {
            when.anonymous = Some(
                a.get_ref()
                    .iter()
                    .fold(0, |m, x| m | anonymity_bit(*x.get_ref())),
            );
        }
        if let Some(c) = &s.ip_connection {
            when.connection = Some(
                c.get_ref()
                    .iter()
                    .fold(0, |m, x| m | connection_bit(connection_of(*x.get_ref()))),
            );
        }
        if let Some(l) = &s.ip_list {
            when.ip_lists =
                Some(self.names(&id, "ip_list", l, &names.ip, names.checked, "ip-list"));
        }
        if let Some(l) = &s.asn_list {
            when.asn_lists =
                Some(self.names(&id, "asn_list", l, &names.asn, names.checked, "asn-list"));
        }
        if let Some(a) = &s.asn_in {
            let mut v = a.get_ref().clone();
            v.sort_unstable();
            v.dedup();
            when.asns = Some(v);
        }
        for (field, empty) in [
            (
                "phone_type",
                s.phone_type
                    .as_ref()
                    .map(|x| (x.span(), x.get_ref().is_empty())),
            ),
            (
                "ip_anonymous",
                s.ip_anonymous
                    .as_ref()
                    .map(|x| (x.span(), x.get_ref().is_empty())),
            ),
            (
                "ip_connection",
                s.ip_connection
                    .as_ref()
                    .map(|x| (x.span(), x.get_ref().is_empty())),
            ),
            (
                "ip_list",
                s.ip_list
                    .as_ref()
                    .map(|x| (x.span(), x.get_ref().is_empty())),
            ),
            (
                "asn_list",
                s.asn_list
                    .as_ref()
                    .map(|x| (x.span(), x.get_ref().is_empty())),
            ),
            (
                "asn_in",
                s.asn_in
                    .as_ref()
                    .map(|x| (x.span(), x.get_ref().is_empty())),
            ),
        ] {
            if let Some((span, true)) = empty {
                self.problem(span, format!("rule {id:?}: {field} is empty"));
            }
        }
        if s.country_mismatch == Some(false) {
            self.problem(
                s.id.span(),
                format!("rule {id:?}: country_mismatch = false is no condition; omit it"),
            );
        }
        if when == Condition::default() {
            self.problem(
                s.id.span(),
                format!("rule {id:?}: a signal rule needs at least one condition (phone_type, phone_valid, phone_region_in, ip_country_in, country_mismatch, ip_anonymous, ...)"),
            );
        }
        let rule = self.rule(s.common(), d, format!("request matches signal rule {id}"));
        (self.problems.len() == before).then_some(SignalRule { rule: rule?, when })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::data::IpSignals;
    use crate::signals::phone;

    fn signals(phone_number: Option<&str>, ip: Option<IpSignals>) -> Signals {
        Signals {
            phone: phone_number.map(|p| phone::facts(&p.parse().unwrap())),
            ip,
        }
    }

    fn ip_in(country: &str) -> IpSignals {
        let mut s = IpSignals::default();
        s.facts.country = CountryCode::parse(country);
        s
    }

    #[test]
    fn unknown_facts_never_hold() {
        let deny = Condition {
            ip_country: Some(CountrySet {
                negate: true,
                codes: vec![CountryCode::parse("FR").unwrap()],
            }),
            ..Condition::default()
        };
        assert!(!deny.holds(&signals(None, None)));
        assert!(deny.holds(&signals(None, Some(ip_in("DE")))));
        assert!(!deny.holds(&signals(None, Some(ip_in("FR")))));
        let mismatch = Condition {
            country_mismatch: true,
            ..Condition::default()
        };
        assert!(!mismatch.holds(&signals(Some("+33612345678"), None)));
        assert!(mismatch.holds(&signals(Some("+33612345678"), Some(ip_in("NG")))));
        assert!(!mismatch.holds(&signals(Some("+33612345678"), Some(ip_in("FR")))));
    }

    #[test]
    fn number_types_and_validity() {
        let premium = Condition {
            phone_types: Some(type_bit(NumberType::PremiumRate)),
            ..Condition::default()
        };
        assert!(!premium.holds(&signals(Some("+33612345678"), None)));
        let invalid = Condition {
            phone_valid: Some(false),
            ..Condition::default()
        };
        assert!(!invalid.holds(&signals(Some("+33612345678"), None)));
        assert!(invalid.holds(&signals(Some("+33000000000"), None)));
        assert!(!invalid.holds(&signals(None, None)));
    }
}
