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

    /// How often idle state is evicted.
    #[arg(long, env = "TOLLGATE_EVICT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub evict_interval: Duration,
}
