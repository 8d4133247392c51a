//! The IP-signal data layer against real files: MaxMind-format databases
//! written with `mmdb-writer` in the record shapes users have, and list files
//! in every supported format, loaded from disk the way the service loads them.

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Ipv4Aliasing, Value, Writer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tollgate::signals::geo::{Anonymity, ConnectionType, GeoDb, IpFacts, Provides};
use tollgate::signals::lists::{AsnList, IpList};
use tollgate::signals::CountryCode;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cc(s: &str) -> Option<CountryCode> {
    CountryCode::parse(s)
}

/// A database of `records` (network, value), written to `dir/name`.
fn write_db(dir: &Path, name: &str, version: IpVersion, records: Vec<(&str, Value)>) -> PathBuf {
    let mut w = Writer::builder(name.trim_end_matches(".mmdb"))
        .ip_version(version)
        .build();
    for (net, value) in records {
        w.insert_value(net.parse::<IpNet>().unwrap(), value)
            .unwrap();
    }
    let path = dir.join(name);
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// MaxMind's nested country shape, with localized names as the real files have.
fn maxmind_country(field: &str, iso: &str) -> (String, Value) {
    let names = Value::map([("en", Value::from("Name")), ("de", Value::from("Name"))]);
    let country = Value::map([
        ("iso_code", Value::from(iso)),
        ("geoname_id", Value::from(1_u32)),
        ("names", names),
    ]);
    (field.to_owned(), country)
}

fn asn_record(asn: u32, org: &str) -> Value {
    Value::map([
        ("autonomous_system_number", Value::from(asn)),
        ("autonomous_system_organization", Value::from(org)),
    ])
}

#[test]
fn maxmind_country_shape_ipv4_ipv6_mapped_and_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_db(
        dir.path(),
        "GeoLite2-Country.mmdb",
        IpVersion::V6,
        vec![
            (
                "192.0.2.0/24",
                Value::map([
                    maxmind_country("country", "FR"),
                    maxmind_country("registered_country", "DE"),
                ]),
            ),
            (
                "2001:db8::/32",
                Value::map([maxmind_country("country", "JP")]),
            ),
            // Anycast / satellite: no `country`, only `registered_country`.
            (
                "198.51.100.0/24",
                Value::map([maxmind_country("registered_country", "US")]),
            ),
        ],
    );
    let db = GeoDb::open(&path).unwrap();
    assert_eq!(db.database_type(), "GeoLite2-Country");
    assert_eq!(db.len(), 3);
    assert_eq!(
        db.provides(),
        Provides {
            country: true,
            ..Provides::default()
        }
    );

    assert_eq!(db.lookup(ip("192.0.2.0")).country, cc("FR"));
    assert_eq!(db.lookup(ip("192.0.2.255")).country, cc("FR"));
    assert_eq!(db.lookup(ip("::ffff:192.0.2.77")).country, cc("FR"));
    assert_eq!(db.lookup(ip("2001:db8:ffff::1")).country, cc("JP"));
    assert_eq!(db.lookup(ip("198.51.100.1")).country, cc("US"));
    // Just outside the networks, and nowhere near them: unknown.
    for unknown in [
        "192.0.3.0",
        "192.0.1.255",
        "203.0.113.9",
        "2001:db9::1",
        "::1",
    ] {
        assert_eq!(db.lookup(ip(unknown)), IpFacts::default(), "{unknown}");
    }
}

#[test]
fn maxmind_asn_shape_with_interned_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_db(
        dir.path(),
        "GeoLite2-ASN.mmdb",
        IpVersion::V6,
        vec![
            ("192.0.2.0/25", asn_record(64496, "Example Hosting")),
            ("192.0.2.128/25", asn_record(64497, "Example Hosting")),
            ("2001:db8:1::/48", asn_record(64498, "Example Mobile")),
        ],
    );
    let db = GeoDb::open(&path).unwrap();
    assert!(db.provides().asn && !db.provides().country);

    let a = db.lookup(ip("192.0.2.1"));
    assert_eq!((a.asn, a.country), (Some(64496), None));
    assert_eq!(a.as_org.as_deref(), Some("Example Hosting"));
    let b = db.lookup(ip("::ffff:192.0.2.200"));
    assert_eq!(b.asn, Some(64497));
    // One allocation per organisation and load, shared by every lookup.
    assert!(Arc::ptr_eq(
        a.as_org.as_ref().unwrap(),
        b.as_org.as_ref().unwrap()
    ));

    let v6 = db.lookup(ip("2001:db8:1:2::3"));
    assert_eq!(v6.asn, Some(64498));
    assert_eq!(v6.as_org.as_deref(), Some("Example Mobile"));
    assert_eq!(db.lookup(ip("2001:db8:2::1")), IpFacts::default());
}

#[test]
fn flat_dbip_shape_ipv4_only_and_ipv6_files() {
    // ip-location-db publishes separate IPv4 and IPv6 files with a flat record.
    let dir = tempfile::tempdir().unwrap();
    let v4 = write_db(
        dir.path(),
        "dbip-country-ipv4.mmdb",
        IpVersion::V4,
        vec![
            ("192.0.2.0/24", Value::map([("country_code", "BR")])),
            ("198.51.100.0/24", Value::map([("country_code", "ZZ")])),
        ],
    );
    let v6 = write_db(
        dir.path(),
        "dbip-country-ipv6.mmdb",
        IpVersion::V6,
        vec![("2001:db8::/32", Value::map([("country_code", "ng")]))],
    );
    let v4 = GeoDb::open(&v4).unwrap();
    let v6 = GeoDb::open(&v6).unwrap();

    assert_eq!(v4.lookup(ip("192.0.2.9")).country, cc("BR"));
    assert_eq!(v4.lookup(ip("::ffff:192.0.2.9")).country, cc("BR"));
    // "ZZ" is DB-IP's "unknown or reserved".
    assert_eq!(v4.lookup(ip("198.51.100.1")).country, None);
    // An IPv6 address in an IPv4-only file is simply unknown.
    assert_eq!(v4.lookup(ip("2001:db8::1")), IpFacts::default());
    assert_eq!(v6.lookup(ip("2001:db8::1")).country, cc("NG"));
}

#[test]
fn flat_iptoasn_and_ipinfo_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let iptoasn = write_db(
        dir.path(),
        "iptoasn-asn-ipv4.mmdb",
        IpVersion::V4,
        vec![("192.0.2.0/24", asn_record(64500, "EXAMPLE-AS"))],
    );
    let ipinfo = write_db(
        dir.path(),
        "ipinfo_lite.mmdb",
        IpVersion::V6,
        vec![
            (
                "192.0.2.0/24",
                Value::map([
                    ("asn", Value::from("AS64501")),
                    ("as_name", Value::from("Example Networks")),
                    ("as_domain", Value::from("example.net")),
                    ("country", Value::from("Canada")),
                    ("country_code", Value::from("CA")),
                    ("continent_code", Value::from("NA")),
                ]),
            ),
            (
                "2001:db8::/32",
                Value::map([
                    ("asn", Value::from(64502_u32)),
                    ("country_code", "MX".into()),
                ]),
            ),
        ],
    );
    let iptoasn = GeoDb::open(&iptoasn).unwrap();
    assert_eq!(iptoasn.lookup(ip("192.0.2.1")).asn, Some(64500));

    let ipinfo = GeoDb::open(&ipinfo).unwrap();
    let f = ipinfo.lookup(ip("192.0.2.1"));
    assert_eq!((f.asn, f.country), (Some(64501), cc("CA")));
    assert_eq!(f.as_org.as_deref(), Some("Example Networks"));
    let f = ipinfo.lookup(ip("2001:db8::5"));
    assert_eq!((f.asn, f.country, f.as_org), (Some(64502), cc("MX"), None));
}

#[test]
fn anonymous_ip_flags() {
    let dir = tempfile::tempdir().unwrap();
    let t = || Value::from(true);
    let path = write_db(
        dir.path(),
        "GeoIP2-Anonymous-IP.mmdb",
        IpVersion::V6,
        vec![
            (
                "192.0.2.0/24",
                Value::map([("is_anonymous", t()), ("is_anonymous_vpn", t())]),
            ),
            (
                "192.0.2.9/32",
                Value::map([("is_anonymous", t()), ("is_tor_exit_node", t())]),
            ),
            (
                "198.51.100.0/24",
                Value::map([("is_anonymous", t()), ("is_hosting_provider", t())]),
            ),
            (
                "203.0.113.0/24",
                Value::map([("is_anonymous", t()), ("is_public_proxy", t())]),
            ),
            (
                "2001:db8::/32",
                Value::map([("is_anonymous", t()), ("is_residential_proxy", t())]),
            ),
        ],
    );
    let db = GeoDb::open(&path).unwrap();
    assert!(db.provides().anonymous);
    let flags = |s: &str| db.lookup(ip(s)).anonymous;
    let set = |f: fn(&mut Anonymity)| {
        let mut a = Anonymity {
            anonymous: true,
            ..Anonymity::default()
        };
        f(&mut a);
        a
    };
    assert_eq!(flags("192.0.2.8"), set(|a| a.vpn = true));
    assert_eq!(flags("192.0.2.9"), set(|a| a.tor_exit = true));
    assert_eq!(flags("198.51.100.1"), set(|a| a.hosting = true));
    assert_eq!(flags("203.0.113.255"), set(|a| a.public_proxy = true));
    assert_eq!(flags("2001:db8::1"), set(|a| a.residential_proxy = true));
    assert!(!flags("192.0.3.1").any());
}

#[test]
fn connection_type_cellular() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_db(
        dir.path(),
        "GeoIP2-Connection-Type.mmdb",
        IpVersion::V6,
        vec![
            (
                "192.0.2.0/24",
                Value::map([("connection_type", "Cellular")]),
            ),
            (
                "198.51.100.0/24",
                Value::map([("connection_type", "Cable/DSL")]),
            ),
            (
                "2001:db8::/32",
                Value::map([("connection_type", "Cellular")]),
            ),
        ],
    );
    let db = GeoDb::open(&path).unwrap();
    assert!(db.provides().connection);
    assert!(db.lookup(ip("192.0.2.1")).is_cellular());
    assert!(db.lookup(ip("::ffff:192.0.2.1")).is_cellular());
    assert!(db.lookup(ip("2001:db8::1")).is_cellular());
    let dsl = db.lookup(ip("198.51.100.1"));
    assert_eq!(dsl.connection, Some(ConnectionType::CableDsl));
    assert!(!dsl.is_cellular());
    assert_eq!(db.lookup(ip("203.0.113.1")).connection, None);
}

#[test]
fn enterprise_traits_shape() {
    let dir = tempfile::tempdir().unwrap();
    let traits = Value::map([
        ("autonomous_system_number", Value::from(64510_u32)),
        (
            "autonomous_system_organization",
            Value::from("Example Carrier"),
        ),
        ("connection_type", Value::from("Cellular")),
        ("is_anonymous", Value::from(false)),
    ]);
    let path = write_db(
        dir.path(),
        "GeoIP2-Enterprise.mmdb",
        IpVersion::V6,
        vec![(
            "192.0.2.0/24",
            Value::map([
                maxmind_country("country", "IT"),
                ("traits".to_owned(), traits),
            ]),
        )],
    );
    let f = GeoDb::open(&path).unwrap().lookup(ip("192.0.2.1"));
    assert_eq!((f.country, f.asn), (cc("IT"), Some(64510)));
    assert_eq!(f.as_org.as_deref(), Some("Example Carrier"));
    assert!(f.is_cellular() && !f.anonymous.any());
}

#[test]
fn several_databases_fill_one_set_of_facts() {
    let dir = tempfile::tempdir().unwrap();
    let country = write_db(
        dir.path(),
        "country.mmdb",
        IpVersion::V6,
        vec![(
            "192.0.2.0/24",
            Value::map([maxmind_country("country", "ES")]),
        )],
    );
    let asn = write_db(
        dir.path(),
        "asn.mmdb",
        IpVersion::V6,
        vec![("192.0.0.0/16", asn_record(64511, "Example Cloud"))],
    );
    let anon = write_db(
        dir.path(),
        "anon.mmdb",
        IpVersion::V6,
        vec![(
            "192.0.2.0/28",
            Value::map([("is_anonymous", true), ("is_hosting_provider", true)]),
        )],
    );
    let dbs: Vec<GeoDb> = [country, asn, anon]
        .iter()
        .map(|p| GeoDb::open(p).unwrap())
        .collect();

    let mut facts = IpFacts::default();
    let found: Vec<bool> = dbs
        .iter()
        .map(|db| db.fill(ip("192.0.2.3"), &mut facts))
        .collect();
    assert_eq!(found, [true, true, true]);
    assert_eq!((facts.country, facts.asn), (cc("ES"), Some(64511)));
    assert!(facts.anonymous.hosting);

    // Outside the anonymous network: the other facts stay, no flag is set.
    let mut facts = IpFacts::default();
    for db in &dbs {
        db.fill(ip("192.0.2.200"), &mut facts);
    }
    assert_eq!((facts.country, facts.asn), (cc("ES"), Some(64511)));
    assert!(!facts.anonymous.any());
}

#[test]
fn corrupt_truncated_and_missing_files_fail_at_load_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_db(
        dir.path(),
        "good.mmdb",
        IpVersion::V6,
        (0..64u32)
            .map(|i| {
                let net: &'static str = format!("10.{i}.0.0/16").leak();
                (net, asn_record(64512 + i, "Example"))
            })
            .collect(),
    );
    let bytes = std::fs::read(&good).unwrap();
    GeoDb::open(&good).unwrap();

    let truncated = dir.path().join("truncated.mmdb");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // Deterministic noise (xorshift), as long as the good file.
    let random = dir.path().join("random.mmdb");
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..bytes.len())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, &noise).unwrap();
    let missing = dir.path().join("missing.mmdb");
    // Intact metadata, garbage search tree and data: caught by the load-time
    // walk, not at the first request that lands on it.
    let garbled = dir.path().join("garbled.mmdb");
    let marker = b"\xab\xcd\xefMaxMind.com";
    let meta = bytes
        .windows(marker.len())
        .rposition(|w| w == marker)
        .unwrap();
    let mut body = bytes.clone();
    body[..meta].copy_from_slice(&noise[..meta]);
    std::fs::write(&garbled, body).unwrap();
    let err = GeoDb::open(&garbled).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: ", garbled.display())),
        "{err}"
    );
    assert!(err.contains("corrupt search tree"), "{err}");

    for path in [&truncated, &random, &missing] {
        let err = GeoDb::open(path).unwrap_err();
        let text = err.to_string();
        let name = path.display().to_string();
        assert!(text.starts_with(&format!("{name}: ")), "{text}");
        assert_eq!(err.file(), name);
        assert_eq!(err.line(), None);
        if path == &missing {
            assert!(text.contains("cannot read"), "{text}");
        } else {
            assert!(text.contains("not a valid MaxMind DB"), "{text}");
        }
    }
}

#[test]
fn databases_without_usable_facts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let city_only = write_db(
        dir.path(),
        "city-names.mmdb",
        IpVersion::V6,
        vec![(
            "192.0.2.0/24",
            Value::map([("city", Value::map([("geoname_id", 1_u32)]))]),
        )],
    );
    let err = GeoDb::open(&city_only).unwrap_err().to_string();
    assert!(
        err.contains("no record has a country, an AS number"),
        "{err}"
    );

    let wrong_type = write_db(
        dir.path(),
        "wrong-type.mmdb",
        IpVersion::V6,
        vec![("192.0.2.0/24", Value::map([("is_anonymous", "yes")]))],
    );
    let err = GeoDb::open(&wrong_type).unwrap_err().to_string();
    assert!(
        err.contains("cannot decode the record of 192.0.2.0/24"),
        "{err}"
    );

    let empty = write_db(dir.path(), "empty.mmdb", IpVersion::V6, vec![]);
    let err = GeoDb::open(&empty).unwrap_err().to_string();
    assert!(
        err.ends_with("no networks (database type \"empty\")"),
        "{err}"
    );
}

#[test]
fn mapped_addresses_are_looked_up_as_ipv4_without_tree_aliases() {
    // Writers other than MaxMind's may not alias ::ffff:0:0/96 to the IPv4
    // subtree; the lookup must not depend on it.
    let mut w = Writer::builder("no-aliases")
        .ipv4_aliasing(Ipv4Aliasing::Disabled)
        .build();
    w.insert_value(
        "192.0.2.0/24".parse::<IpNet>().unwrap(),
        Value::map([("country_code", "SE")]),
    )
    .unwrap();
    let db = GeoDb::from_bytes("no-aliases.mmdb", w.to_bytes().unwrap()).unwrap();
    assert_eq!(db.lookup(ip("::ffff:192.0.2.1")).country, cc("SE"));
    assert_eq!(db.lookup(ip("192.0.2.1")).country, cc("SE"));
}

// ---- lists ----

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn cidr_list_from_file_merges_and_matches_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "datacenter.txt",
        "# datacenter ranges\n\
         10.0.0.0/24\n\
         10.0.1.0/24        # adjacent: merges with the one above\n\
         10.0.0.128/25      # inside the first\n\
         10.0.3.0/24\n\
         10.0.2.255         # a host route, adjacent to 10.0.3.0/24 only\n\
         172.16.0.0/12\n\
         172.20.0.0/16      # inside 172.16.0.0/12\n\
         \n\
         2001:db8::/48\n\
         2001:db8:1::/48    # adjacent in IPv6 too\n\
         2001:db8:3::/48\n\
         0.0.0.0/32\n\
         255.255.255.255\n",
    );
    let list = IpList::load_networks(&path).unwrap();
    assert_eq!(list.len(), 12);
    // 10.0.0.0-10.0.1.255, 10.0.2.255-10.0.3.255, 172.16/12, 0.0.0.0, 255.255.255.255;
    // 2001:db8::/47, 2001:db8:3::/48.
    assert_eq!(list.range_count(), 7);
    let cases = [
        ("10.0.0.0", true),
        ("10.0.1.255", true),
        ("10.0.2.0", false),
        ("10.0.2.254", false),
        ("10.0.2.255", true),
        ("10.0.3.255", true),
        ("10.0.4.0", false),
        ("9.255.255.255", false),
        ("172.15.255.255", false),
        ("172.16.0.0", true),
        ("172.31.255.255", true),
        ("172.32.0.0", false),
        ("0.0.0.0", true),
        ("0.0.0.1", false),
        ("255.255.255.255", true),
        ("255.255.255.254", false),
        ("::ffff:10.0.1.7", true),
        ("2001:db8::", true),
        ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db8:2::", false),
        ("2001:db8:3::1", true),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("::", false),
    ];
    for (addr, expected) in cases {
        assert_eq!(list.contains(ip(addr)), expected, "{addr}");
    }
}

#[test]
fn list_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let vpn = write(
        dir.path(),
        "vpn.txt",
        "# VPN\n192.0.2.0/24\n\n2001:db8::/32 # v6\n10.0.0.0/33\n",
    );
    let name = vpn.display().to_string();
    assert_eq!(
        IpList::load_networks(&vpn).unwrap_err().to_string(),
        format!(r#"{name}:5: "10.0.0.0/33" is not an IP network: invalid prefix"#)
    );

    let tor = write(
        dir.path(),
        "exit-addresses",
        "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n\
         Published 2024-01-01 12:00:00\n\
         LastStatus 2024-01-01 13:00:00\n\
         ExitAddress 192.0.2.1 2024-01-01 13:05:00\n\
         ExitNode 0123456789ABCDEF0123456789ABCDEF01234567\n\
         ExitAddress 192.0.2.256 2024-01-01 13:05:00\n",
    );
    let err = IpList::load_tor_exits(&tor).unwrap_err();
    assert_eq!(err.line(), Some(6));
    assert_eq!(
        err.to_string(),
        format!(
            r#"{}:6: "192.0.2.256" is not an IP address: invalid IP address syntax"#,
            tor.display()
        )
    );

    let asn = write(dir.path(), "vpn-asn.txt", "AS64496 # ok\nAS64497\nASX\n");
    let err = AsnList::load(&asn).unwrap_err();
    assert_eq!(err.line(), Some(3));
    assert!(err
        .to_string()
        .ends_with(r#"vpn-asn.txt:3: "ASX" is not an AS number (expected AS64496 or 64496)"#));

    let empty = write(dir.path(), "empty.txt", "# nothing yet\n");
    assert_eq!(
        IpList::load_networks(&empty).unwrap_err().to_string(),
        format!("{}: no entries", empty.display())
    );
    let missing = dir.path().join("nope.txt");
    let err = AsnList::load(&missing).unwrap_err();
    assert_eq!(err.line(), None);
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read: ", missing.display())));
}

#[test]
fn tor_lists_from_file_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let bulk = write(
        dir.path(),
        "torbulkexitlist",
        "192.0.2.1\n192.0.2.2\n198.51.100.77\n2001:db8::dead:beef\n",
    );
    let doc = write(
        dir.path(),
        "exit-addresses",
        "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n\
         Published 2024-01-01 12:00:00\n\
         LastStatus 2024-01-01 13:00:00\n\
         ExitAddress 192.0.2.1 2024-01-01 13:05:00\n\
         ExitAddress 198.51.100.77 2024-01-01 13:05:00\n",
    );
    let bulk = IpList::load_tor_exits(&bulk).unwrap();
    let doc = IpList::load_tor_exits(&doc).unwrap();
    assert_eq!((bulk.len(), doc.len()), (4, 2));
    assert!(bulk.contains(ip("192.0.2.2")) && !doc.contains(ip("192.0.2.2")));
    for list in [&bulk, &doc] {
        assert!(list.contains(ip("192.0.2.1")));
        assert!(list.contains(ip("::ffff:198.51.100.77")));
        assert!(!list.contains(ip("192.0.2.3")) && !list.contains(ip("198.51.100.76")));
    }
    assert!(bulk.contains(ip("2001:db8::dead:beef")) && !bulk.contains(ip("2001:db8::dead:bef0")));
}

#[test]
fn asn_list_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "hosting-asn.txt",
        "# Hosting providers\nAS64496   # Example Hosting\n64497\r\nas64498 # lower case\n",
    );
    let list = AsnList::load(&path).unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.contains(64496) && list.contains(64497) && list.contains(64498));
    assert!(!list.contains(64499));
}
