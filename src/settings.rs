//! Restart-only process settings: command line flags, each with an environment
//! variable and a default. The policy (hot-reloaded) is a separate file.

use crate::signals::data::{DataSources, Feeds};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Risk-scoring and anti-SMS-pumping engine (gRPC)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve(Box<ServeArgs>),
    /// Check policy files offline: prints `FILE:LINE: message` for each problem
    /// and exits non-zero if any file is invalid.
    CheckPolicy {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Help-desk and fraud-team calls to a running tollgate's AdminService.
    Admin(Box<AdminArgs>),
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// AdminService address.
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub addr: String,

    /// Bearer token.
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,

    #[command(subcommand)]
    pub action: AdminAction,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Show counters, backoff, lock, session, block and safe-list state.
    Get(SubjectArgs),
    /// The help-desk reset.
    Reset {
        #[command(flatten)]
        subject: SubjectArgs,
        #[arg(long, value_enum, default_value = "all")]
        scope: ResetArg,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Block a subject (for a duration, or until unblocked).
    Block {
        #[command(flatten)]
        subject: SubjectArgs,
        /// e.g. 24h; omitted: until unblocked.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        #[arg(long)]
        reason: String,
    },
    Unblock {
        #[command(flatten)]
        subject: SubjectArgs,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Put a subject on the safe list (it skips limits marked bypassable).
    Allow {
        #[command(flatten)]
        subject: SubjectArgs,
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        #[arg(long)]
        reason: String,
    },
    Disallow {
        #[command(flatten)]
        subject: SubjectArgs,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Conversion (verified / sent) per country and number range.
    Conversion {
        #[arg(long)]
        country: Option<String>,
    },
    /// Reload the policy file the service was started with.
    Reload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ResetArg {
    Failures,
    Sends,
    All,
}

/// Exactly one subject.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SubjectArgs {
    #[arg(long)]
    pub phone: Option<String>,
    /// e.g. +88216
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub ip: Option<String>,
    /// CIDR, e.g. 203.0.113.0/24
    #[arg(long)]
    pub network: Option<String>,
    /// Destination country, e.g. FR
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC listen address (RiskService, health, reflection).
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Prometheus `/metrics` listen address (HTTP).
    #[arg(
        long,
        env = "TOLLGATE_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,

    /// Policy file (TOML). Default: the built-in `rules/default.toml`. Reloaded
    /// on SIGHUP; a bad file keeps the old policy serving.
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,

    /// Secret for the keyed hashes of identifiers. Replicas sharing a store must
    /// use the same one. Default: random per process.
    #[arg(long, env = "TOLLGATE_KEY_SECRET", hide_env_values = true)]
    pub key_secret: Option<String>,

    /// File holding the key secret (alternative to --key-secret).
    #[arg(long, env = "TOLLGATE_KEY_SECRET_FILE", conflicts_with = "key_secret")]
    pub key_secret_file: Option<PathBuf>,

    /// Largest decoded gRPC request, in bytes.
    #[arg(long, env = "TOLLGATE_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,

    /// HTTP/2 concurrent streams per connection.
    #[arg(long, env = "TOLLGATE_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,

    /// Per-call timeout.
    #[arg(long, env = "TOLLGATE_REQUEST_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// How long an assessment id can be quoted in Report.
    #[arg(long, env = "TOLLGATE_ASSESSMENT_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub assessment_ttl: Duration,

    /// The newest this many assessments are remembered for Report (memory
    /// bound; an older one is reported by naming its subject).
    #[arg(long, env = "TOLLGATE_MAX_ASSESSMENTS", default_value_t = 1_000_000)]
    pub max_assessments: usize,

    /// At most this many rate-limiter keys; past it, keys that are not
    /// throttling are dropped (memory bound under floods).
    #[arg(long, env = "TOLLGATE_MAX_RATE_KEYS", default_value_t = 4_000_000)]
    pub max_rate_keys: usize,

    /// At most this many numbers, sessions and accounts each; past it, those
    /// that decide nothing now are dropped (memory bound under floods).
    #[arg(long, env = "TOLLGATE_MAX_SUBJECTS", default_value_t = 1_000_000)]
    pub max_subjects: usize,

    /// AdminService listen address. The admin listener is off unless a token
    /// is configured (--admin-token / --admin-token-file).
    #[arg(long, env = "TOLLGATE_ADMIN_LISTEN", default_value = "127.0.0.1:50052")]
    pub admin_listen: SocketAddr,

    /// Admin bearer token (its id in logs is `env`). At least 16 characters.
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// File of admin tokens, one per line: `ID TOKEN` (the id is logged).
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_TOKEN_FILE",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<PathBuf>,

    /// MaxMind-format database (country, ASN, Anonymous-IP, Connection-Type;
    /// MaxMind, DB-IP or iptoasn record shapes). Repeatable.
    #[arg(long = "mmdb", env = "TOLLGATE_MMDB", value_delimiter = ',')]
    pub mmdb: Vec<PathBuf>,

    /// Tor exit list (bulk list or `exit-addresses` format): the `tor` flag.
    #[arg(long, env = "TOLLGATE_TOR_LIST", value_delimiter = ',')]
    pub tor_list: Vec<PathBuf>,

    /// CIDR list of VPN networks: the `vpn` flag.
    #[arg(long, env = "TOLLGATE_VPN_LIST", value_delimiter = ',')]
    pub vpn_list: Vec<PathBuf>,

    /// CIDR list of datacenter / hosting networks: the `hosting` flag.
    #[arg(long, env = "TOLLGATE_DATACENTER_LIST", value_delimiter = ',')]
    pub datacenter_list: Vec<PathBuf>,

    /// ASN list (`AS1234` per line) of VPN providers: the `vpn` flag.
    #[arg(long, env = "TOLLGATE_VPN_ASN_LIST", value_delimiter = ',')]
    pub vpn_asn_list: Vec<PathBuf>,

    /// ASN list of hosting providers: the `hosting` flag.
    #[arg(long, env = "TOLLGATE_HOSTING_ASN_LIST", value_delimiter = ',')]
    pub hosting_asn_list: Vec<PathBuf>,

    /// A custom CIDR list for `ip_list = ["NAME"]` conditions: NAME=PATH.
    #[arg(long = "ip-list", value_parser = named_path)]
    pub ip_list: Vec<(String, PathBuf)>,

    /// A custom ASN list for `asn_list = ["NAME"]` conditions: NAME=PATH.
    #[arg(long = "asn-list", value_parser = named_path)]
    pub asn_list: Vec<(String, PathBuf)>,

    /// Do not watch the policy and data files for changes (SIGHUP and the
    /// admin ReloadPolicy still reload).
    #[arg(long, env = "TOLLGATE_NO_WATCH")]
    pub no_watch: bool,

    /// Audit (evidence) log: one JSON line per decision, report and admin
    /// call. A file path (appended, rotated by size) or `-` for stdout; unset:
    /// no audit log.
    #[arg(long, env = "TOLLGATE_AUDIT_LOG")]
    pub audit_log: Option<String>,

    /// Rotate the audit file when it would exceed this many bytes.
    #[arg(long, env = "TOLLGATE_AUDIT_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub audit_max_bytes: u64,

    /// Rotated audit files kept.
    #[arg(long, env = "TOLLGATE_AUDIT_KEEP", default_value_t = 10)]
    pub audit_keep: usize,

    /// Audit records queued before new ones are dropped (and counted): the
    /// audit log never slows a decision.
    #[arg(long, env = "TOLLGATE_AUDIT_CAPACITY", default_value_t = 65_536)]
    pub audit_capacity: usize,

    /// Write phone numbers, IPs and ids in full in the audit log (masked by
    /// default).
    #[arg(long, env = "TOLLGATE_AUDIT_UNMASKED")]
    pub audit_unmasked: bool,

    /// Log format: `text` or `json`.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// How often idle state is evicted.
    #[arg(long, env = "TOLLGATE_EVICT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub evict_interval: Duration,
}

/// `NAME=PATH`, NAME a lower-case word.
fn named_path(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=PATH"))?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "{name:?}: a list name is lower-case letters, digits and _"
        ));
    }
    Ok((name.to_owned(), PathBuf::from(path)))
}

impl ServeArgs {
    /// The data files, in the order they feed lookups (databases first).
    pub fn data_sources(&self) -> DataSources {
        let mut files = Vec::new();
        let mut add = |feeds: Feeds, paths: &[PathBuf]| {
            files.extend(paths.iter().map(|p| (feeds.clone(), p.clone())));
        };
        add(Feeds::Mmdb, &self.mmdb);
        add(Feeds::TorExits, &self.tor_list);
        add(Feeds::VpnNetworks, &self.vpn_list);
        add(Feeds::DatacenterNetworks, &self.datacenter_list);
        add(Feeds::VpnAsns, &self.vpn_asn_list);
        add(Feeds::HostingAsns, &self.hosting_asn_list);
        for (n, p) in &self.ip_list {
            files.push((Feeds::NamedNetworks(n.as_str().into()), p.clone()));
        }
        for (n, p) in &self.asn_list {
            files.push((Feeds::NamedAsns(n.as_str().into()), p.clone()));
        }
        DataSources { files }
    }
}
