//! Masked forms of identifiers, for logs and the audit log.
//!
//! Outside the audit log (and inside it unless the operator turns masking off),
//! a phone number, e-mail address, IP or id is only ever written in one of these
//! forms. They keep what an operator needs to tell cases apart (country and
//! range of a number, domain of an address, network of an IP, length of an id)
//! and drop what names a person.
//!
//! | what | raw | masked |
//! |---|---|---|
//! | phone | `+33612345678` | `+336••••••78` |
//! | e-mail | `user@example.com` | `u•••@example.com` |
//! | IP | `192.0.2.77`, `2001:db8:aa:bb::1` | `192.0.2.0/24`, `2001:db8:aa::/48` |
//! | id | `device-42` | `de… (9 chars)` |
//! | free text | any | its first N characters, then `…` |

use crate::request::{AdminSubject, E164};
use std::net::IpAddr;

/// `+33612345678` -> `+336••••••78`: the `+`, three digits (calling code and
/// the start of the range) and the last two digits.
pub fn phone(number: &E164) -> String {
    let s = number.as_str();
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i + 2 >= n { c } else { '•' })
        .collect()
}

/// `user@example.com` -> `u•••@example.com`: the first character of the local
/// part (never its length) and the domain.
pub fn email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let head: String = local.chars().take(1).collect();
            format!("{head}•••@{}", preview(domain, 64))
        }
        None => text(address),
    }
}

/// An IP masked to its network: IPv4 to its /24, IPv6 to its /48.
pub fn ip(address: IpAddr) -> String {
    crate::signals::ip::masked(address)
}

/// An id (device, account, session): a short head and the length, e.g.
/// `de… (9 chars)`. Ids shorter than 6 characters show less of their head, so
/// the preview never gives most of a short id away.
pub fn text(s: &str) -> String {
    let n = s.chars().count();
    let head: String = s.chars().take((n / 3).min(2)).collect();
    format!("{head}… ({n} chars)")
}

/// A bounded preview of free text (user agent, attribute values): the first
/// `max_chars` characters, then `…` when there was more.
pub fn preview(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// The subject of an admin call, masked: `phone +336••••••78`,
/// `account ac… (9 chars)`, `ip in 192.0.2.0/24`. Prefixes, networks and
/// countries are ranges, not persons, and are shown in full.
pub fn subject(s: &AdminSubject) -> String {
    match s {
        AdminSubject::Phone(p) => format!("phone {}", phone(p)),
        AdminSubject::Prefix(p) => format!("prefix {p}"),
        AdminSubject::Account(a) => format!("account {}", text(a)),
        AdminSubject::Device(d) => format!("device {}", text(d)),
        AdminSubject::Session(x) => format!("session {}", text(x)),
        AdminSubject::Ip(a) => format!("ip in {}", ip(*a)),
        AdminSubject::Network(a, len) => format!("network {a}/{len}"),
        AdminSubject::Country(c) => format!("country {c}"),
    }
}

/// The subject of an admin call in full (the audit log with masking off).
pub fn subject_unmasked(s: &AdminSubject) -> String {
    match s {
        AdminSubject::Phone(p) => format!("phone {}", p.as_str()),
        AdminSubject::Account(a) => format!("account {a}"),
        AdminSubject::Device(d) => format!("device {d}"),
        AdminSubject::Session(x) => format!("session {x}"),
        AdminSubject::Ip(a) => format!("ip {a}"),
        AdminSubject::Prefix(_) | AdminSubject::Network(..) | AdminSubject::Country(_) => {
            subject(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_keep_calling_code_range_and_last_two_digits() {
        let p: E164 = "+33612345678".parse().unwrap();
        assert_eq!(phone(&p), "+336••••••78");
        let short: E164 = "+1234567".parse().unwrap();
        assert_eq!(phone(&short), "+123••67");
    }

    #[test]
    fn emails_keep_one_character_and_the_domain() {
        assert_eq!(email("user@example.com"), "u•••@example.com");
        assert_eq!(email("é@example.com"), "é•••@example.com");
        // Not an address (cannot come from a validated request): still masked.
        assert_eq!(email("nobody"), "no… (6 chars)");
    }

    #[test]
    fn ips_are_cut_to_their_network() {
        assert_eq!(ip("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(ip("2001:db8:aa:bb::1".parse().unwrap()), "2001:db8:aa::/48");
    }

    #[test]
    fn ids_show_a_short_head_and_the_length() {
        assert_eq!(text("device-42"), "de… (9 chars)");
        assert_eq!(text("abcd"), "a… (4 chars)");
        assert_eq!(text("ab"), "… (2 chars)");
        assert_eq!(text(""), "… (0 chars)");
        // Characters, not bytes: never cuts inside a UTF-8 sequence.
        assert_eq!(text("éàüöß-x"), "éà… (7 chars)");
    }

    #[test]
    fn previews_are_bounded_in_characters() {
        assert_eq!(preview("Mozilla/5.0", 7), "Mozilla…");
        assert_eq!(preview("short", 7), "short");
        assert_eq!(preview("ééééé", 2), "éé…");
    }

    #[test]
    fn admin_subjects_are_masked_unless_asked_for_in_full() {
        let s = AdminSubject::parse("phone_number", "+33612345678").unwrap();
        assert_eq!(subject(&s), "phone +336••••••78");
        assert_eq!(subject_unmasked(&s), "phone +33612345678");
        let s = AdminSubject::parse("account_id", "acct-1234").unwrap();
        assert_eq!(subject(&s), "account ac… (9 chars)");
        assert_eq!(subject_unmasked(&s), "account acct-1234");
        let s = AdminSubject::parse("ip", "192.0.2.77").unwrap();
        assert_eq!(subject(&s), "ip in 192.0.2.0/24");
        assert_eq!(subject_unmasked(&s), "ip 192.0.2.77");
        let s = AdminSubject::parse("prefix", "+88216").unwrap();
        assert_eq!(subject(&s), subject_unmasked(&s));
    }
}
