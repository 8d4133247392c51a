//! ASN lists: autonomous systems of VPN providers, hosting companies and
//! proxy networks, one per line (`AS64496` or `64496`, `# name` comments).

use super::datafile::{self, quoted, DataError};
use std::path::Path;

/// A set of AS numbers, sorted for bisection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsnList {
    asns: Box<[u32]>,
}

impl AsnList {
    pub fn load(path: &Path) -> Result<AsnList, DataError> {
        let bytes = datafile::read(path)?;
        AsnList::parse(&datafile::display_name(path), &bytes)
    }

    /// Parses an ASN list; `file` names it in errors.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<AsnList, DataError> {
        let mut asns = Vec::new();
        datafile::for_each_line(file, bytes, |line| {
            asns.push(parse_asn(line)?);
            Ok(())
        })?;
        asns.sort_unstable();
        asns.dedup();
        if asns.is_empty() {
            return Err(DataError::file_level(file, "no entries"));
        }
        Ok(AsnList {
            asns: asns.into_boxed_slice(),
        })
    }

    #[inline]
    pub fn contains(&self, asn: u32) -> bool {
        self.asns.binary_search(&asn).is_ok()
    }

    /// Distinct AS numbers listed: the entry count for metrics.
    pub fn len(&self) -> usize {
        self.asns.len()
    }

    /// Always false for a loaded list (an empty file is rejected).
    pub fn is_empty(&self) -> bool {
        self.asns.is_empty()
    }
}

fn parse_asn(text: &str) -> Result<u32, String> {
    let digits = match text.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("AS") => &text[2..],
        _ => text,
    };
    // `u32::from_str` would accept a leading `+`; an AS number is digits only.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{} is not an AS number (expected AS64496 or 64496)",
            quoted(text)
        ));
    }
    digits
        .parse()
        .map_err(|_| format!("{} is not an AS number (above 4294967295)", quoted(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asns(text: &str) -> Result<AsnList, String> {
        AsnList::parse("hosting-asn.txt", text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn both_spellings_comments_and_duplicates() {
        let list = asns(
            "# hosting providers\n\
             AS64496 # Example Hosting\n\
             64497\n\
             as64498\n\
             \n\
             AS64496   # again\n\
             4294967295\n",
        )
        .unwrap();
        assert_eq!(list.len(), 4);
        for asn in [64496, 64497, 64498, u32::MAX] {
            assert!(list.contains(asn), "{asn}");
        }
        assert!(!list.contains(64499) && !list.contains(0));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        assert_eq!(
            asns("AS1\nAS 2\n").unwrap_err(),
            r#"hosting-asn.txt:2: "AS 2" is not an AS number (expected AS64496 or 64496)"#
        );
        assert_eq!(
            asns("AS1\n\n# x\nAS64496 Example Hosting\n").unwrap_err(),
            r#"hosting-asn.txt:4: "AS64496 Example Hosting" is not an AS number (expected AS64496 or 64496)"#
        );
        assert_eq!(
            asns("4294967296").unwrap_err(),
            r#"hosting-asn.txt:1: "4294967296" is not an AS number (above 4294967295)"#
        );
        assert_eq!(
            asns("+5").unwrap_err(),
            r#"hosting-asn.txt:1: "+5" is not an AS number (expected AS64496 or 64496)"#
        );
        assert_eq!(asns("AS").unwrap_err().split(':').nth(1), Some("1"));
        assert_eq!(asns("# none\n").unwrap_err(), "hosting-asn.txt: no entries");
    }
}
