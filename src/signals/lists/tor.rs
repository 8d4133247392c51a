//! One line of a Tor exit list, in either format the Tor Project publishes:
//!
//! - the bulk exit list: one address per line;
//! - the `exit-addresses` document, one block per relay:
//!
//!   ```text
//!   ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E
//!   Published 2024-01-01 12:00:00
//!   LastStatus 2024-01-01 13:00:00
//!   ExitAddress 192.0.2.1 2024-01-01 13:05:00
//!   ```
//!
//!   Only `ExitAddress` lines give addresses (a relay may have several).

use super::quoted;
use std::net::IpAddr;

/// Keywords of the `exit-addresses` format that carry no address.
const SKIPPED: [&str; 3] = ["ExitNode", "Published", "LastStatus"];

/// The exit address on `line`, or `None` for a line that has none.
pub(super) fn parse_line(line: &str) -> Result<Option<IpAddr>, String> {
    let mut words = line.split_ascii_whitespace();
    let first = words.next().unwrap_or_default();
    if first == "ExitAddress" {
        let addr = words
            .next()
            .ok_or_else(|| "ExitAddress without an address".to_owned())?;
        // What follows is when the address was last seen; not used.
        return address(addr).map(Some);
    }
    if SKIPPED.contains(&first) {
        return Ok(None);
    }
    if first.starts_with(|c: char| c.is_ascii_alphabetic()) && !first.contains(':') {
        return Err(format!(
            "{} is neither an address nor an exit-addresses keyword \
             (ExitNode, Published, LastStatus, ExitAddress)",
            quoted(first)
        ));
    }
    let ip = address(first)?;
    match words.next() {
        Some(extra) => Err(format!(
            "unexpected {} after the address (one address per line)",
            quoted(extra)
        )),
        None => Ok(Some(ip)),
    }
}

fn address(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|e| format!("{} is not an IP address: {e}", quoted(text)))
}

#[cfg(test)]
mod tests {
    use super::super::IpList;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tor(text: &str) -> Result<IpList, String> {
        IpList::parse_tor_exits("exits.txt", text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn exit_addresses_format() {
        let list = tor("ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n\
             Published 2024-01-01 12:00:00\n\
             LastStatus 2024-01-01 13:00:00\n\
             ExitAddress 192.0.2.1 2024-01-01 13:05:00\n\
             ExitAddress 192.0.2.9 2024-01-01 13:06:00\n\
             ExitNode 0123456789ABCDEF0123456789ABCDEF01234567\n\
             Published 2024-01-01 12:00:00\n\
             LastStatus 2024-01-01 13:00:00\n\
             ExitAddress 192.0.2.1 2024-01-01 13:07:00\n")
        .unwrap();
        assert_eq!(
            list.len(),
            2,
            "one address shared by two relays counts once"
        );
        assert!(list.contains(ip("192.0.2.1")) && list.contains(ip("192.0.2.9")));
        assert!(!list.contains(ip("192.0.2.2")));
    }

    #[test]
    fn bulk_format_and_mixed_lines() {
        let list = tor("# bulk list\n198.51.100.1\n198.51.100.2\n2001:db8::7\n\
             ExitAddress 203.0.113.5 2024-01-01 00:00:00\n")
        .unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list.range_count(), 3, "adjacent addresses merge");
        assert!(list.contains(ip("198.51.100.2")) && !list.contains(ip("198.51.100.3")));
        assert!(list.contains(ip("2001:db8::7")) && !list.contains(ip("2001:db8::8")));
        assert!(list.contains(ip("::ffff:203.0.113.5")));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        assert_eq!(
            tor("ExitNode AB\nPublished x\nExitAddress 192.0.2.300 2024-01-01 00:00:00\n")
                .unwrap_err(),
            r#"exits.txt:3: "192.0.2.300" is not an IP address: invalid IP address syntax"#
        );
        assert_eq!(
            tor("192.0.2.1\nExitAddress\n").unwrap_err(),
            "exits.txt:2: ExitAddress without an address"
        );
        assert_eq!(
            tor("192.0.2.1\n\n<html>\n").unwrap_err(),
            r#"exits.txt:3: "<html>" is not an IP address: invalid IP address syntax"#
        );
        assert_eq!(
            tor("192.0.2.1\nRouter 192.0.2.2\n").unwrap_err(),
            r#"exits.txt:2: "Router" is neither an address nor an exit-addresses keyword (ExitNode, Published, LastStatus, ExitAddress)"#
        );
        assert_eq!(
            tor("192.0.2.1 192.0.2.2\n").unwrap_err(),
            r#"exits.txt:1: unexpected "192.0.2.2" after the address (one address per line)"#
        );
    }

    #[test]
    fn a_document_without_exit_addresses_is_rejected() {
        assert_eq!(
            tor("ExitNode AB\nPublished 2024-01-01 12:00:00\n").unwrap_err(),
            "exits.txt: no entries"
        );
    }
}
