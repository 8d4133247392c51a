//! Lookup cost of the IP-signal data, on deterministic synthetic data:
//!
//! - a 50k-network CIDR list (80% IPv4, 20% IPv6): `IpList` (sorted merged
//!   ranges, bisection) against `prefix-trie`'s `PrefixSet`, the well-kept
//!   prefix-matching crate it would otherwise be;
//! - a 2k-address Tor exit list: `IpList` against a `HashSet<IpAddr>`;
//! - a country + ASN MMDB of 5k networks: `GeoDb::lookup` (decoded at load,
//!   one hash probe per lookup) against decoding the record per request with
//!   `maxminddb` directly;
//! - load times of the above.
//!
//! Half of the looked-up addresses fall in a listed network, half are random.
//!
//! `cargo bench --bench signals -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{Value, Writer};
use prefix_trie::PrefixSet;
use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tollgate::signals::geo::{GeoDb, IpFacts};
use tollgate::signals::lists::IpList;

/// splitmix64: deterministic, good enough to scatter test networks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn v4(&mut self) -> Ipv4Addr {
        Ipv4Addr::from(self.next() as u32)
    }

    /// Global unicast (2000::/3), like real lists.
    fn v6(&mut self) -> Ipv6Addr {
        let hi = (self.next() as u128) << 64 | self.next() as u128;
        Ipv6Addr::from((hi >> 3) | (0b001 << 125))
    }
}

fn random_networks(rng: &mut Rng, n: usize) -> Vec<IpNetwork> {
    (0..n)
        .map(|_| {
            if rng.below(5) < 4 {
                let prefix = 12 + rng.below(21) as u8; // /12../32
                IpNetwork::V4(Ipv4Network::new(rng.v4(), prefix).unwrap())
            } else {
                let prefix = 24 + rng.below(41) as u8; // /24../64
                IpNetwork::V6(Ipv6Network::new(rng.v6(), prefix).unwrap())
            }
        })
        .collect()
}

/// An address inside `net`.
fn inside(rng: &mut Rng, net: IpNetwork) -> IpAddr {
    match net {
        IpNetwork::V4(n) => {
            let host = (rng.next() as u32)
                .checked_shr(u32::from(n.prefix()))
                .unwrap_or(0);
            IpAddr::V4((u32::from(n.network()) | host).into())
        }
        IpNetwork::V6(n) => {
            let r = (rng.next() as u128) << 64 | rng.next() as u128;
            let host = r.checked_shr(u32::from(n.prefix())).unwrap_or(0);
            IpAddr::V6((u128::from(n.network()) | host).into())
        }
    }
}

/// 1024 probe addresses: every other one inside a listed network.
fn probes(rng: &mut Rng, listed: &[IpNetwork]) -> Vec<IpAddr> {
    (0..1024)
        .map(|i| {
            if i % 2 == 0 {
                let net = listed[rng.below(listed.len() as u64) as usize];
                inside(rng, net)
            } else if rng.below(5) < 4 {
                IpAddr::V4(rng.v4())
            } else {
                IpAddr::V6(rng.v6())
            }
        })
        .collect()
}

fn text_of(networks: &[IpNetwork]) -> String {
    networks.iter().map(|n| format!("{n}\n")).collect()
}

fn cidr_list(c: &mut Criterion) {
    let mut rng = Rng(1);
    let networks = random_networks(&mut rng, 50_000);
    let text = text_of(&networks);
    let list = IpList::parse_networks("bench", text.as_bytes()).unwrap();
    let (mut v4, mut v6) = (
        PrefixSet::<Ipv4Network>::new(),
        PrefixSet::<Ipv6Network>::new(),
    );
    for n in &networks {
        match *n {
            IpNetwork::V4(n) => v4.insert(Ipv4Network::new(n.network(), n.prefix()).unwrap()),
            IpNetwork::V6(n) => v6.insert(Ipv6Network::new(n.network(), n.prefix()).unwrap()),
        };
    }
    let probes = probes(&mut rng, &networks);
    // The two must agree before their speed means anything.
    for &ip in &probes {
        let trie = match ip {
            IpAddr::V4(a) => v4.is_covered(&a.into()),
            IpAddr::V6(a) => v6.is_covered(&a.into()),
        };
        assert_eq!(list.contains(ip), trie, "{ip}");
    }
    eprintln!(
        "cidr list: {} networks, {} merged ranges; prefix-trie: {} + {} bytes",
        list.len(),
        list.range_count(),
        v4.mem_size(),
        v6.mem_size()
    );

    let mut g = c.benchmark_group("cidr_50k");
    let mut i = 0;
    g.bench_function("ranges_contains", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            list.contains(black_box(probes[i]))
        })
    });
    g.bench_function("prefix_trie_is_covered", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            match black_box(probes[i]) {
                IpAddr::V4(a) => v4.is_covered(&a.into()),
                IpAddr::V6(a) => v6.is_covered(&a.into()),
            }
        })
    });
    g.sample_size(20);
    g.bench_function("parse_and_build", |b| {
        b.iter(|| IpList::parse_networks("bench", black_box(text.as_bytes())).unwrap())
    });
    g.finish();
}

fn tor_list(c: &mut Criterion) {
    let mut rng = Rng(2);
    let exits: Vec<IpNetwork> = (0..2_000)
        .map(|i| {
            if i % 10 == 0 {
                IpNetwork::V6(rng.v6().into())
            } else {
                IpNetwork::V4(rng.v4().into())
            }
        })
        .collect();
    let text = text_of(&exits).replace("/32", "").replace("/128", "");
    let list = IpList::parse_tor_exits("bench", text.as_bytes()).unwrap();
    let set: HashSet<IpAddr> = exits.iter().map(|n| n.ip()).collect();
    let probes = probes(&mut rng, &exits);

    let mut g = c.benchmark_group("tor_2k");
    let mut i = 0;
    g.bench_function("ranges_contains", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            list.contains(black_box(probes[i]))
        })
    });
    g.bench_function("std_hashset_contains", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            set.contains(&black_box(probes[i]))
        })
    });
    g.finish();
}

const COUNTRIES: [&str; 20] = [
    "US", "DE", "FR", "GB", "NL", "JP", "BR", "IN", "NG", "ID", "RU", "CN", "ES", "IT", "CA", "AU",
    "PK", "BD", "VN", "PH",
];

fn country_asn_mmdb(rng: &mut Rng) -> (Vec<u8>, Vec<IpNetwork>) {
    let mut w = Writer::new("Bench-Country-ASN");
    let mut networks = Vec::new();
    for i in 0..5_000u32 {
        let net = if i % 5 == 0 {
            IpNetwork::V6(Ipv6Network::new(rng.v6(), 48).unwrap())
        } else {
            IpNetwork::V4(Ipv4Network::new(rng.v4(), 24).unwrap())
        };
        let asn = 64_512 + rng.below(800) as u32;
        let iso = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        let names = Value::map([("en", Value::from("Name")), ("de", Value::from("Name"))]);
        let record = Value::map([
            (
                "country",
                Value::map([
                    ("iso_code", Value::from(iso)),
                    ("geoname_id", Value::from(1_u32)),
                    ("names", names),
                ]),
            ),
            ("autonomous_system_number", Value::from(asn)),
            (
                "autonomous_system_organization",
                Value::from(format!("Example Networks {asn}")),
            ),
        ]);
        let masked = IpNetwork::new(net.network(), net.prefix()).unwrap();
        w.insert_value(masked.to_string().parse::<IpNet>().unwrap(), record)
            .unwrap();
        networks.push(masked);
    }
    (w.to_bytes().unwrap(), networks)
}

/// What a per-request decode would read, borrowing from the database buffer.
#[derive(serde::Deserialize)]
struct Borrowed<'a> {
    #[serde(borrow)]
    country: Option<BorrowedCountry<'a>>,
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct BorrowedCountry<'a> {
    iso_code: Option<&'a str>,
}

fn mmdb(c: &mut Criterion) {
    let mut rng = Rng(3);
    let (bytes, networks) = country_asn_mmdb(&mut rng);
    let db = GeoDb::from_bytes("bench.mmdb", bytes.clone()).unwrap();
    let reader = maxminddb::Reader::from_source(bytes.clone()).unwrap();
    let probes = probes(&mut rng, &networks);
    eprintln!("mmdb: {} networks, {} bytes", db.len(), bytes.len());

    let mut g = c.benchmark_group("mmdb_country_asn_5k");
    let mut i = 0;
    g.bench_function("geodb_lookup", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            db.lookup(black_box(probes[i]))
        })
    });
    let mut facts = IpFacts::default();
    g.bench_function("geodb_fill", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            db.fill(black_box(probes[i]), &mut facts)
        })
    });
    g.bench_function("maxminddb_tree_walk_only", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            reader.lookup(black_box(probes[i])).unwrap().offset()
        })
    });
    g.bench_function("maxminddb_decode_per_request", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let r = reader.lookup(black_box(probes[i])).unwrap();
            r.decode::<Borrowed>().unwrap().map(|rec| {
                (
                    rec.country.and_then(|c| c.iso_code).map(str::len),
                    rec.autonomous_system_number,
                    rec.autonomous_system_organization.map(str::len),
                )
            })
        })
    });
    g.sample_size(20);
    g.bench_function("load", |b| {
        b.iter_batched(
            || bytes.clone(),
            |bytes| GeoDb::from_bytes("bench.mmdb", bytes).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, cidr_list, tor_list, mmdb);
criterion_main!(benches);
