//! The read-only data behind IP signals, loaded from the files named in the
//! settings and reloaded as a whole snapshot.
//!
//! The policy speaks about facts (`ip_anonymous = ["vpn"]`); the settings say
//! where facts come from: MaxMind-format databases, a Tor exit list, VPN and
//! datacenter CIDR lists, VPN and hosting ASN lists, and custom named lists for
//! `ip_list` / `asn_list` conditions.
//!
//! Each file is loaded on its own: a file that fails to load (missing,
//! truncated, corrupt, a bad line) keeps its previous version serving, is
//! logged with file and line, and counted. Until every file has loaded once,
//! the data set is not ready.

use super::datafile::DataError;
use super::geo::{GeoDb, IpFacts};
use super::lists::{AsnList, IpList};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a data file feeds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Feeds {
    /// Country, ASN, anonymity, connection type: whatever the database has.
    Mmdb,
    /// The `tor` flag.
    TorExits,
    /// The `vpn` flag, by network.
    VpnNetworks,
    /// The `hosting` flag, by network.
    DatacenterNetworks,
    /// The `vpn` flag, by ASN.
    VpnAsns,
    /// The `hosting` flag, by ASN.
    HostingAsns,
    /// A custom network list for `ip_list` conditions.
    NamedNetworks(Arc<str>),
    /// A custom ASN list for `asn_list` conditions.
    NamedAsns(Arc<str>),
}

impl Feeds {
    /// The `dataset` metric label (bounded: custom names come from the
    /// operator's settings, not from requests).
    pub fn label(&self) -> String {
        match self {
            Feeds::Mmdb => "mmdb".into(),
            Feeds::TorExits => "tor".into(),
            Feeds::VpnNetworks => "vpn".into(),
            Feeds::DatacenterNetworks => "datacenter".into(),
            Feeds::VpnAsns => "vpn_asn".into(),
            Feeds::HostingAsns => "hosting_asn".into(),
            Feeds::NamedNetworks(n) => format!("ip_list:{n}"),
            Feeds::NamedAsns(n) => format!("asn_list:{n}"),
        }
    }
}

/// The data files of this process (restart-only settings).
#[derive(Debug, Clone, Default)]
pub struct DataSources {
    pub files: Vec<(Feeds, PathBuf)>,
}

impl DataSources {
    /// Names of custom network lists, in settings order (their bit index).
    pub fn ip_list_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = Vec::new();
        for (f, _) in &self.files {
            if let Feeds::NamedNetworks(n) = f {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        names
    }

    /// Names of custom ASN lists, in settings order (their bit index).
    pub fn asn_list_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = Vec::new();
        for (f, _) in &self.files {
            if let Feeds::NamedAsns(n) = f {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        names
    }

    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.iter().map(|(_, p)| p)
    }
}

/// One loaded file.
#[derive(Debug, Clone)]
pub enum Loaded {
    Mmdb(Arc<GeoDb>),
    Ips(Arc<IpList>),
    Asns(Arc<AsnList>),
}

impl Loaded {
    pub fn entries(&self) -> usize {
        match self {
            Loaded::Mmdb(d) => d.len(),
            Loaded::Ips(l) => l.len(),
            Loaded::Asns(l) => l.len(),
        }
    }
}

/// The outcome of loading one file, for metrics and logs.
#[derive(Debug)]
pub struct FileLoad {
    pub feeds: Feeds,
    pub path: PathBuf,
    pub took: Duration,
    pub result: Result<usize, DataError>,
}

/// Every data file, as last loaded successfully.
#[derive(Debug, Clone, Default)]
pub struct DataSet {
    /// Aligned with `DataSources::files`; `None` until the file first loads.
    files: Vec<Option<Loaded>>,
    sources: Arc<DataSources>,
    ip_names: Vec<Arc<str>>,
    asn_names: Vec<Arc<str>>,
}

/// What the data says about one address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSignals {
    pub facts: IpFacts,
    /// Bit i: the address is in the i-th custom network list.
    pub ip_lists: u64,
    /// Bit i: its ASN is in the i-th custom ASN list.
    pub asn_lists: u64,
}

impl DataSet {
    /// An empty, ready data set: no files configured.
    pub fn empty() -> DataSet {
        DataSet::default()
    }

    /// The files of `sources`, none loaded yet: not ready.
    pub fn unloaded(sources: Arc<DataSources>) -> DataSet {
        DataSet {
            files: vec![None; sources.files.len()],
            ip_names: sources.ip_list_names(),
            asn_names: sources.asn_list_names(),
            sources,
        }
    }

    /// Every configured file has loaded at least once.
    pub fn ready(&self) -> bool {
        self.files.iter().all(Option::is_some)
    }

    pub fn sources(&self) -> &DataSources {
        &self.sources
    }

    /// Loads every file; a file that fails keeps its version from `previous`
    /// (if any). Returns the new set and what happened to each file.
    pub fn load(sources: Arc<DataSources>, previous: Option<&DataSet>) -> (DataSet, Vec<FileLoad>) {
        let mut files = Vec::with_capacity(sources.files.len());
        let mut report = Vec::with_capacity(sources.files.len());
        for (i, (feeds, path)) in sources.files.iter().enumerate() {
            let started = Instant::now();
            let loaded = match feeds {
                Feeds::Mmdb => GeoDb::open(path).map(|d| Loaded::Mmdb(Arc::new(d))),
                Feeds::TorExits => IpList::load_tor_exits(path).map(|l| Loaded::Ips(Arc::new(l))),
                Feeds::VpnNetworks | Feeds::DatacenterNetworks | Feeds::NamedNetworks(_) => {
                    IpList::load_networks(path).map(|l| Loaded::Ips(Arc::new(l)))
                }
                Feeds::VpnAsns | Feeds::HostingAsns | Feeds::NamedAsns(_) => {
                    AsnList::load(path).map(|l| Loaded::Asns(Arc::new(l)))
                }
            };
            let took = started.elapsed();
            match loaded {
                Ok(l) => {
                    report.push(FileLoad {
                        feeds: feeds.clone(),
                        path: path.clone(),
                        took,
                        result: Ok(l.entries()),
                    });
                    files.push(Some(l));
                }
                Err(e) => {
                    report.push(FileLoad {
                        feeds: feeds.clone(),
                        path: path.clone(),
                        took,
                        result: Err(e),
                    });
                    files.push(previous.and_then(|p| p.files.get(i).cloned().flatten()));
                }
            }
        }
        let set = DataSet {
            files,
            ip_names: sources.ip_list_names(),
            asn_names: sources.asn_list_names(),
            sources,
        };
        (set, report)
    }

    /// Everything the data says about `ip`.
    pub fn lookup(&self, ip: IpAddr) -> IpSignals {
        let mut out = IpSignals::default();
        // Databases first: the ASN they give feeds the ASN lists.
        for ((feeds, _), file) in self.sources.files.iter().zip(&self.files) {
            if let (Feeds::Mmdb, Some(Loaded::Mmdb(db))) = (feeds, file) {
                db.fill(ip, &mut out.facts);
            }
        }
        let asn = out.facts.asn;
        for ((feeds, _), file) in self.sources.files.iter().zip(&self.files) {
            match (feeds, file) {
                (Feeds::TorExits, Some(Loaded::Ips(l))) if l.contains(ip) => {
                    out.facts.anonymous.tor_exit = true;
                    out.facts.anonymous.anonymous = true;
                }
                (Feeds::VpnNetworks, Some(Loaded::Ips(l))) if l.contains(ip) => {
                    out.facts.anonymous.vpn = true;
                    out.facts.anonymous.anonymous = true;
                }
                (Feeds::DatacenterNetworks, Some(Loaded::Ips(l))) if l.contains(ip) => {
                    out.facts.anonymous.hosting = true;
                }
                (Feeds::VpnAsns, Some(Loaded::Asns(l))) if asn.is_some_and(|a| l.contains(a)) => {
                    out.facts.anonymous.vpn = true;
                    out.facts.anonymous.anonymous = true;
                }
                (Feeds::HostingAsns, Some(Loaded::Asns(l)))
                    if asn.is_some_and(|a| l.contains(a)) =>
                {
                    out.facts.anonymous.hosting = true;
                }
                (Feeds::NamedNetworks(n), Some(Loaded::Ips(l))) if l.contains(ip) => {
                    out.ip_lists |= bit(&self.ip_names, n);
                }
                (Feeds::NamedAsns(n), Some(Loaded::Asns(l)))
                    if asn.is_some_and(|a| l.contains(a)) =>
                {
                    out.asn_lists |= bit(&self.asn_names, n);
                }
                _ => {}
            }
        }
        out
    }
}

fn bit(names: &[Arc<str>], name: &Arc<str>) -> u64 {
    names.iter().position(|n| n == name).map_or(0, |i| 1 << i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn lists_feed_flags_and_named_bits_and_a_bad_reload_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let tor = write(dir.path(), "tor.txt", "192.0.2.1\n");
        let vpn = write(dir.path(), "vpn.txt", "198.51.100.0/24\n");
        let a = write(dir.path(), "a.txt", "203.0.113.0/24\n");
        let b = write(dir.path(), "b.txt", "203.0.113.128/25\n");
        let sources = Arc::new(DataSources {
            files: vec![
                (Feeds::TorExits, tor),
                (Feeds::VpnNetworks, vpn.clone()),
                (Feeds::NamedNetworks("a".into()), a),
                (Feeds::NamedNetworks("b".into()), b),
            ],
        });
        let (set, report) = DataSet::load(sources.clone(), None);
        assert!(set.ready());
        assert!(report.iter().all(|r| r.result.is_ok()));
        assert!(
            set.lookup("192.0.2.1".parse().unwrap())
                .facts
                .anonymous
                .tor_exit
        );
        assert!(
            set.lookup("198.51.100.9".parse().unwrap())
                .facts
                .anonymous
                .vpn
        );
        assert_eq!(set.lookup("203.0.113.200".parse().unwrap()).ip_lists, 0b11);
        assert_eq!(set.lookup("203.0.113.1".parse().unwrap()).ip_lists, 0b01);
        assert_eq!(set.lookup("8.8.8.8".parse().unwrap()), IpSignals::default());

        // A broken VPN list: the old one keeps serving; the others reload.
        std::fs::write(&vpn, "198.51.100.0/24\nnot a network\n").unwrap();
        let (next, report) = DataSet::load(sources.clone(), Some(&set));
        let bad: Vec<_> = report.iter().filter(|r| r.result.is_err()).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].result.as_ref().unwrap_err().line(), Some(2));
        assert!(next.ready());
        assert!(
            next.lookup("198.51.100.9".parse().unwrap())
                .facts
                .anonymous
                .vpn
        );

        // With no previous version, a broken file leaves the set not ready.
        let (first, _) = DataSet::load(sources, None);
        assert!(!first.ready());
    }
}
