//! Restart-only process settings: command line flags, each with an environment
//! variable and a default. The policy (hot-reloaded) is a separate file.

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
    Admin(AdminArgs),
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

    /// At most this many assessments are remembered for Report (memory bound).
    #[arg(long, env = "TOLLGATE_MAX_ASSESSMENTS", default_value_t = 1_000_000)]
    pub max_assessments: usize,

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

    /// How often idle state is evicted.
    #[arg(long, env = "TOLLGATE_EVICT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub evict_interval: Duration,
}
