//! Anonymous-network lists, each loaded whole from a file: Tor exit addresses,
//! VPN / datacenter / proxy CIDR lists ([`IpList`]) and VPN / hosting ASN lists
//! ([`AsnList`]).
//!
//! File formats (every format: `#` starts a comment, whole-line or trailing;
//! blank lines and surrounding whitespace are ignored; `\r\n` is accepted):
//!
//! - **CIDR list** ([`IpList::load_networks`]): one network per line, IPv4 or
//!   IPv6 (`192.0.2.0/24`, `2001:db8::/32`); a bare address is a host route.
//! - **Tor exit list** ([`IpList::load_tor_exits`]): either published format,
//!   detected per line — the bulk exit list (one address per line) or the
//!   `exit-addresses` document, where `ExitAddress 192.0.2.1 2024-01-01 00:00:00`
//!   lines give the addresses and `ExitNode`, `Published` and `LastStatus` lines
//!   are skipped.
//! - **ASN list** ([`AsnList::load`]): one AS number per line, `AS64496` or
//!   `64496`, usually with the holder's name as a comment (`AS64496 # Example`).
//!
//! A malformed line fails the whole file with a [`DataError`] naming the file
//! and the line. So does a file with no entries at all: a list feed that
//! suddenly comes back empty is far more likely a broken download than a real
//! "nobody is a VPN any more", and loading it would silently switch a
//! protection off. Leave the list unconfigured to run without it.

mod asn;
mod ranges;
mod tor;

pub use asn::AsnList;

use super::datafile::{self, quoted, DataError};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use ranges::{RangeSet, RangeSetBuilder};
use std::net::IpAddr;
use std::path::Path;

/// A set of IP networks (a CIDR list or a Tor exit list) in lookup form.
///
/// Lookups bisect sorted, merged ranges: `O(log n)`, no allocation, no hashing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList {
    ranges: RangeSet,
    entries: usize,
}

impl IpList {
    /// Loads a CIDR list.
    pub fn load_networks(path: &Path) -> Result<IpList, DataError> {
        let bytes = datafile::read(path)?;
        IpList::parse_networks(&datafile::display_name(path), &bytes)
    }

    /// Loads a Tor exit list, in either published format.
    pub fn load_tor_exits(path: &Path) -> Result<IpList, DataError> {
        let bytes = datafile::read(path)?;
        IpList::parse_tor_exits(&datafile::display_name(path), &bytes)
    }

    /// Parses a CIDR list; `file` names it in errors.
    pub fn parse_networks(file: &str, bytes: &[u8]) -> Result<IpList, DataError> {
        IpList::parse(file, bytes, |line| parse_network(line).map(Some))
    }

    /// Parses a Tor exit list; `file` names it in errors.
    pub fn parse_tor_exits(file: &str, bytes: &[u8]) -> Result<IpList, DataError> {
        IpList::parse(file, bytes, |line| {
            Ok(tor::parse_line(line)?.map(IpNetwork::from))
        })
    }

    fn parse(
        file: &str,
        bytes: &[u8],
        mut entry: impl FnMut(&str) -> Result<Option<IpNetwork>, String>,
    ) -> Result<IpList, DataError> {
        let mut builder = RangeSetBuilder::default();
        datafile::for_each_line(file, bytes, |line| {
            if let Some(net) = entry(line)? {
                builder.insert(net);
            }
            Ok(())
        })?;
        let entries = builder.distinct();
        if entries == 0 {
            return Err(DataError::file_level(file, "no entries"));
        }
        Ok(IpList {
            ranges: builder.build(),
            entries,
        })
    }

    /// Whether `ip` is in one of the listed networks. An IPv4-mapped IPv6
    /// address is looked up as IPv4.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.contains(ip)
    }

    /// Distinct networks (or addresses) listed: the entry count for metrics.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Always false for a loaded list (an empty file is rejected).
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Ranges left after merging overlapping and adjacent networks.
    pub fn range_count(&self) -> usize {
        self.ranges.range_count()
    }
}

/// One CIDR-list entry: `192.0.2.0/24`, `2001:db8::/32`, or a bare address.
fn parse_network(text: &str) -> Result<IpNetwork, String> {
    let mut words = text.split_ascii_whitespace();
    let text = words.next().unwrap_or_default();
    if let Some(extra) = words.next() {
        return Err(format!(
            "unexpected {} after the network (one network per line)",
            quoted(extra)
        ));
    }
    // Parse as the family the text looks like, so the error says what is wrong
    // with it ("invalid prefix") rather than that it is neither family.
    let parsed = if text.contains(':') {
        text.parse::<Ipv6Network>().map(IpNetwork::V6)
    } else {
        text.parse::<Ipv4Network>().map(IpNetwork::V4)
    };
    parsed.map_err(|e| format!("{} is not an IP network: {e}", quoted(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn networks(text: &str) -> Result<IpList, String> {
        IpList::parse_networks("vpn.txt", text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn cidr_list_with_comments_ipv6_and_bare_addresses() {
        let list = networks(
            "# VPN exits\n\
             192.0.2.0/24   # example net\n\
             \n\
             198.51.100.7\n\
             2001:db8::/32\n\
             2001:db8::/32   # listed twice\n\
             ::1\n",
        )
        .unwrap();
        assert_eq!(list.len(), 4);
        assert!(list.contains(ip("192.0.2.0")) && list.contains(ip("192.0.2.255")));
        assert!(!list.contains(ip("192.0.3.0")) && !list.contains(ip("192.0.1.255")));
        assert!(list.contains(ip("198.51.100.7")) && !list.contains(ip("198.51.100.8")));
        assert!(list.contains(ip("::ffff:198.51.100.7")));
        assert!(list.contains(ip("2001:db8:abcd::1")) && !list.contains(ip("2001:db9::")));
        assert!(list.contains(ip("::1")) && !list.contains(ip("::2")));
    }

    #[test]
    fn malformed_networks_name_the_line() {
        assert_eq!(
            networks("10.0.0.0/8\n# fine\n10.0.0.0/33\n").unwrap_err(),
            r#"vpn.txt:3: "10.0.0.0/33" is not an IP network: invalid prefix"#
        );
        assert_eq!(
            networks("\n\n\n2001:db8::/129").unwrap_err(),
            r#"vpn.txt:4: "2001:db8::/129" is not an IP network: invalid prefix"#
        );
        assert_eq!(
            networks("10.0.0.0/8 10.1.0.0/16").unwrap_err(),
            r#"vpn.txt:1: unexpected "10.1.0.0/16" after the network (one network per line)"#
        );
        let err = networks("1.2.3.0/24\nexample.com\n").unwrap_err();
        assert!(
            err.starts_with(r#"vpn.txt:2: "example.com" is not an IP network: invalid address"#),
            "{err}"
        );
    }

    #[test]
    fn a_list_without_entries_is_rejected() {
        assert_eq!(networks("").unwrap_err(), "vpn.txt: no entries");
        assert_eq!(
            networks("# only\n\n  # comments\n").unwrap_err(),
            "vpn.txt: no entries"
        );
    }

    #[test]
    fn host_bits_are_ignored() {
        let list = networks("10.1.2.3/8").unwrap();
        assert!(list.contains(ip("10.0.0.0")) && list.contains(ip("10.255.255.255")));
    }
}
