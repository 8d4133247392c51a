//! IP facts from MaxMind-format (`.mmdb`) databases: country, AS number and
//! organisation, anonymous-IP flags, connection type.
//!
//! One [`GeoDb`] per file. Which facts a file gives is read from its records,
//! not configured: a country DB, an ASN DB, an Anonymous-IP DB and a
//! Connection-Type DB are all a `GeoDb`, and [`GeoDb::fill`] merges each one's
//! facts into one [`IpFacts`]. Both record shapes in use are understood:
//!
//! - MaxMind's (GeoIP2 / GeoLite2, and DB-IP's own Lite downloads, which copy
//!   it): `country.iso_code` (falling back to `registered_country.iso_code`),
//!   `autonomous_system_number`, `autonomous_system_organization`, the
//!   Anonymous-IP `is_*` flags and `connection_type`, at the top level or under
//!   `traits` (Enterprise);
//! - the flat one of the free repackagings (ip-location-db's DB-IP, GeoLite2 and
//!   iptoasn files, IPinfo Lite): `country_code`, `autonomous_system_number`
//!   and `autonomous_system_organization`, or `asn` (a number or `"AS64496"`)
//!   and `as_name`.
//!
//! **Everything is decoded at load.** [`GeoDb::open`] reads the file into
//! memory, walks the whole search tree and decodes every distinct record once
//! into an [`IpFacts`], keyed by its data offset. A corrupt or truncated file
//! therefore fails at load with the file named, never per request, and a lookup
//! is a tree walk plus one hash probe: no decoding and no allocation (the AS
//! organisation is an `Arc<str>` interned per load). The price is load time
//! proportional to the number of networks, which is paid off the hot path.

mod record;

use super::datafile::{self, DataError};
use super::CountryCode;
use maxminddb::{Reader, WithinOptions};
use record::Record;
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// What the databases say about one address. `Default` is "unknown".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpFacts {
    pub country: Option<CountryCode>,
    pub asn: Option<u32>,
    /// The AS holder's name, shared by every address of the AS.
    pub as_org: Option<Arc<str>>,
    pub anonymous: Anonymity,
    pub connection: Option<ConnectionType>,
}

impl IpFacts {
    pub fn is_cellular(&self) -> bool {
        self.connection == Some(ConnectionType::Cellular)
    }
}

/// MaxMind Anonymous-IP flags (all false when no such database is loaded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Anonymity {
    /// Any of the kinds below (MaxMind's `is_anonymous`).
    pub anonymous: bool,
    pub vpn: bool,
    pub hosting: bool,
    pub public_proxy: bool,
    pub residential_proxy: bool,
    pub tor_exit: bool,
}

impl Anonymity {
    pub fn any(&self) -> bool {
        let Anonymity {
            anonymous,
            vpn,
            hosting,
            public_proxy,
            residential_proxy,
            tor_exit,
        } = *self;
        anonymous || vpn || hosting || public_proxy || residential_proxy || tor_exit
    }

    fn merge(&mut self, other: Anonymity) {
        self.anonymous |= other.anonymous;
        self.vpn |= other.vpn;
        self.hosting |= other.hosting;
        self.public_proxy |= other.public_proxy;
        self.residential_proxy |= other.residential_proxy;
        self.tor_exit |= other.tor_exit;
    }
}

/// MaxMind Connection-Type values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    Dialup,
    CableDsl,
    Corporate,
    Cellular,
    Satellite,
}

impl ConnectionType {
    fn parse(s: &str) -> Option<ConnectionType> {
        [
            ("Dialup", ConnectionType::Dialup),
            ("Cable/DSL", ConnectionType::CableDsl),
            ("Corporate", ConnectionType::Corporate),
            ("Cellular", ConnectionType::Cellular),
            ("Satellite", ConnectionType::Satellite),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, t)| t)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Dialup => "dialup",
            ConnectionType::CableDsl => "cable_dsl",
            ConnectionType::Corporate => "corporate",
            ConnectionType::Cellular => "cellular",
            ConnectionType::Satellite => "satellite",
        }
    }
}

/// Which facts a database gave for at least one network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provides {
    pub country: bool,
    pub asn: bool,
    pub anonymous: bool,
    pub connection: bool,
}

/// One MaxMind-format database, loaded and decoded.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
    /// Data offset of a record -> its index in `facts`. Offsets are what the
    /// search tree yields, so a lookup needs no decoding.
    by_offset: FxHashMap<usize, u32>,
    facts: Box<[IpFacts]>,
    networks: usize,
    provides: Provides,
    ipv4_only: bool,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("database_type", &self.database_type())
            .field("networks", &self.networks)
            .field("records", &self.facts.len())
            .field("provides", &self.provides)
            .finish()
    }
}

impl GeoDb {
    /// Reads, checks and decodes a database. Takes time proportional to the
    /// number of networks (a country or ASN database: well under a second), so
    /// call it off the request path.
    pub fn open(path: &Path) -> Result<GeoDb, DataError> {
        let bytes = datafile::read(path)?;
        GeoDb::from_bytes(&datafile::display_name(path), bytes)
    }

    /// As [`GeoDb::open`], from the file's bytes; `file` names it in errors.
    pub fn from_bytes(file: &str, bytes: Vec<u8>) -> Result<GeoDb, DataError> {
        let fail = |message: String| DataError::file_level(file, message);
        let reader =
            Reader::from_source(bytes).map_err(|e| fail(format!("not a valid MaxMind DB: {e}")))?;
        let ipv4_only = reader.metadata().ip_version == 4;

        let mut by_offset = FxHashMap::default();
        let mut facts = Vec::new();
        let mut orgs: HashMap<String, Arc<str>> = HashMap::new();
        let mut provides = Provides::default();
        let mut networks = 0;
        // A valid tree has about as many leaves as nodes; a corrupt one can
        // loop back on itself and have astronomically many. Bound the walk.
        let max_leaves = (reader.metadata().node_count as usize)
            .saturating_mul(3)
            .saturating_add(16);
        let leaves = reader
            .networks(WithinOptions::default().include_networks_without_data())
            .map_err(|e| fail(format!("corrupt search tree: {e}")))?;
        for (i, leaf) in leaves.enumerate() {
            if i >= max_leaves {
                return Err(fail("corrupt search tree: it loops".to_owned()));
            }
            let leaf = leaf.map_err(|e| fail(format!("corrupt search tree: {e}")))?;
            let Some(offset) = leaf.offset() else {
                continue;
            };
            networks += 1;
            if by_offset.contains_key(&offset) {
                continue;
            }
            let record: Record = leaf.decode().map(Option::unwrap_or_default).map_err(|e| {
                let net = leaf.network().map(|n| n.to_string()).unwrap_or_default();
                fail(format!("cannot decode the record of {net}: {e}"))
            })?;
            let f = record.into_facts(&mut orgs);
            provides.country |= f.country.is_some();
            provides.asn |= f.asn.is_some();
            provides.anonymous |= f.anonymous.any();
            provides.connection |= f.connection.is_some();
            let index = u32::try_from(facts.len()).map_err(|_| fail("too many records".into()))?;
            by_offset.insert(offset, index);
            facts.push(f);
        }

        let db = GeoDb {
            reader,
            by_offset,
            facts: facts.into_boxed_slice(),
            networks,
            provides,
            ipv4_only,
        };
        let database_type = db.database_type();
        if db.networks == 0 {
            return Err(fail(format!(
                "no networks (database type {database_type:?})"
            )));
        }
        if db.provides == Provides::default() {
            return Err(fail(format!(
                "no record has a country, an AS number, anonymous-IP flags or a \
                 connection type (database type {database_type:?})"
            )));
        }
        // The walk decoded every record; make sure the lookup path works too,
        // for both families, so it cannot fail per request.
        for probe in ["192.0.2.1", "2001:db8::1"] {
            let ip: IpAddr = probe.parse().expect("probe address");
            if ip.is_ipv6() && db.ipv4_only {
                continue;
            }
            db.reader
                .lookup(ip)
                .map_err(|e| fail(format!("lookup probe failed: {e}")))?;
        }
        Ok(db)
    }

    /// The facts this database has about `ip`; [`IpFacts::default`] (unknown)
    /// when it has none. An IPv4-mapped IPv6 address is looked up as IPv4.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> IpFacts {
        self.get(ip).cloned().unwrap_or_default()
    }

    /// Merges what this database knows about `ip` into `facts`: fields it has
    /// overwrite, fields it lacks are left alone, anonymity flags are or-ed.
    /// Returns whether the address was in the database.
    #[inline]
    pub fn fill(&self, ip: IpAddr, facts: &mut IpFacts) -> bool {
        let Some(found) = self.get(ip) else {
            return false;
        };
        if found.country.is_some() {
            facts.country = found.country;
        }
        if found.asn.is_some() {
            facts.asn = found.asn;
            facts.as_org.clone_from(&found.as_org);
        }
        facts.anonymous.merge(found.anonymous);
        if found.connection.is_some() {
            facts.connection = found.connection;
        }
        true
    }

    #[inline]
    fn get(&self, ip: IpAddr) -> Option<&IpFacts> {
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.ipv4_only {
            return None;
        }
        // Lookup errors are ruled out at load (the probe), so `ok()` only
        // drops what cannot happen.
        let offset = self.reader.lookup(ip).ok()?.offset()?;
        let &index = self.by_offset.get(&offset)?;
        self.facts.get(index as usize)
    }

    /// Networks with data: the entry count for metrics.
    pub fn len(&self) -> usize {
        self.networks
    }

    /// Always false for a loaded database (one without networks is rejected).
    pub fn is_empty(&self) -> bool {
        self.networks == 0
    }

    /// Which facts this database gives.
    pub fn provides(&self) -> Provides {
        self.provides
    }

    /// The metadata's `database_type`, e.g. `GeoLite2-ASN`, `DBIP-Country-Lite`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built (seconds since the Unix epoch), to alert on
    /// stale data.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_types() {
        assert_eq!(
            ConnectionType::parse("Cellular"),
            Some(ConnectionType::Cellular)
        );
        assert_eq!(
            ConnectionType::parse("cable/dsl"),
            Some(ConnectionType::CableDsl)
        );
        assert_eq!(ConnectionType::parse("Carrier pigeon"), None);
    }

    #[test]
    fn garbage_is_rejected_at_load_with_the_file_named() {
        for bytes in [vec![], b"not a database at all".to_vec(), vec![0xab; 4096]] {
            let err = GeoDb::from_bytes("country.mmdb", bytes).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("country.mmdb: not a valid MaxMind DB: "),
                "{err}"
            );
            assert_eq!(err.line(), None);
        }
    }

    #[test]
    fn facts_merge_without_erasing() {
        let mut facts = IpFacts {
            country: CountryCode::parse("FR"),
            ..IpFacts::default()
        };
        let mut a = Anonymity::default();
        a.merge(Anonymity {
            vpn: true,
            ..Anonymity::default()
        });
        facts.anonymous.merge(a);
        assert!(facts.anonymous.vpn && facts.anonymous.any());
        assert_eq!(facts.country.unwrap().as_str(), "FR");
    }
}
