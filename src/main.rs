//! The `tollgate` binary: `serve` and `check-policy`.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tollgate::audit::{Audit, AuditConfig, AuditSink};
use tollgate::clock::SystemClock;
use tollgate::engine::{Engine, EngineOptions};
use tollgate::keys::KeyHasher;
use tollgate::limits::{MemoryStore, StoreLimits};
use tollgate::policy::{
    compile_with, load_file, load_file_with, ListNames, DEFAULT_POLICY, DEFAULT_POLICY_NAME,
};
use tollgate::reload::{watch, Reload, Reloader};
use tollgate::server::{serve, AdminListener, Listeners, ServerLimits};
use tollgate::service::admin::Tokens;
use tollgate::settings::{Cli, Command, LogFormat, ServeArgs};
use tollgate::signals::data::DataSet;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::CheckPolicy { files } => Ok(check_policy(&files)),
        Command::Admin(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match rt.block_on(tollgate::admin_cli::run(*args)) {
                Ok(out) => {
                    print!("{out}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("tollgate admin: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Serve(args) => {
            init_logs(&args);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs go to stdout, or to stderr when the audit log takes stdout.
fn init_logs(args: &ServeArgs) {
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let to_stderr = args.audit_log.as_deref() == Some("-");
    let ansi = !to_stderr && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match (args.log_format, to_stderr) {
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).init(),
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).init(),
        (LogFormat::Text, false) => builder.init(),
    }
}

fn check_policy(files: &[std::path::PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        match load_file(f) {
            Ok(p) => println!(
                "{}: ok (version {}, {} rules)",
                f.display(),
                p.version,
                p.rule_ids().count()
            ),
            Err(e) => {
                ok = false;
                eprintln!("{e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let sources = Arc::new(args.data_sources());
    let names = ListNames {
        ip: sources.ip_list_names(),
        asn: sources.asn_list_names(),
        checked: true,
    };
    let policy = match &args.policy {
        Some(path) => load_file_with(path, &names)?,
        None => compile_with(DEFAULT_POLICY_NAME, DEFAULT_POLICY, &names)?,
    };
    let keys = match (&args.key_secret, &args.key_secret_file) {
        (Some(s), _) => KeyHasher::from_secret(s.as_bytes()),
        (None, Some(f)) => {
            let s = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            KeyHasher::from_secret(s.trim_ascii())
        }
        (None, None) => KeyHasher::random(),
    };
    tollgate::metrics::install();
    let clock = SystemClock::shared();
    let (audit, audit_task) = match &args.audit_log {
        None => (Audit::disabled(), None),
        Some(target) => {
            let sink = if target == "-" {
                AuditSink::Stdout
            } else {
                AuditSink::File {
                    path: PathBuf::from(target),
                    max_bytes: args.audit_max_bytes,
                    keep: args.audit_keep,
                }
            };
            let config = AuditConfig {
                sink,
                capacity: args.audit_capacity,
                unmasked: args.audit_unmasked,
            };
            let (audit, task) =
                Audit::start(config, clock.clone()).context("starting the audit log")?;
            (audit, Some(task))
        }
    };
    let engine = Arc::new(
        Engine::new(
            policy,
            MemoryStore::new(StoreLimits {
                max_rate_keys: args.max_rate_keys,
                max_subjects: args.max_subjects,
                max_assessments: args.max_assessments,
                ..StoreLimits::default()
            }),
            keys,
            clock,
            EngineOptions {
                assessment_ttl: args.assessment_ttl,
                list_names: names,
            },
        )
        .with_audit(audit),
    );
    // Not ready (health NOT_SERVING, Assess UNAVAILABLE) until every data file
    // has loaded once; the listeners come up at once.
    engine.set_data(DataSet::unloaded(sources.clone()));
    let reloader = Arc::new(Reloader::new(
        engine.clone(),
        args.policy.clone(),
        sources.clone(),
    ));
    {
        let r = reloader.clone();
        tokio::task::spawn_blocking(move || r.reload_data());
    }
    // Number plans are built on first use; built now, no request waits on one.
    tokio::task::spawn_blocking(tollgate::signals::phone::prepare_plans);
    let mut watched: Vec<PathBuf> = sources.paths().cloned().collect();
    watched.extend(args.policy.clone());
    let _watcher = if args.no_watch || watched.is_empty() {
        None
    } else {
        Some(watch(reloader.clone(), watched).context("watching the policy and data files")?)
    };
    let grpc = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding gRPC listener {}", args.listen))?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding metrics listener {}", args.metrics_listen))?;
    let tokens = match (&args.admin_token, &args.admin_token_file) {
        (Some(t), _) => Some(Tokens::single("env", t)?),
        (None, Some(f)) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            Some(Tokens::parse(&f.display().to_string(), &text)?).filter(|t| !t.is_empty())
        }
        (None, None) => None,
    };
    let admin = match tokens {
        Some(tokens) => {
            let listener = tokio::net::TcpListener::bind(args.admin_listen)
                .await
                .with_context(|| format!("binding admin listener {}", args.admin_listen))?;
            tracing::info!(admin = %listener.local_addr()?, "admin listener on");
            Some(AdminListener {
                listener,
                tokens,
                reloader: reloader.clone(),
            })
        }
        None => {
            tracing::info!("admin listener off: no admin token configured");
            None
        }
    };
    let p = engine.policy();
    tracing::info!(
        grpc = %grpc.local_addr()?,
        metrics = %metrics.local_addr()?,
        policy = %p.source,
        version = %p.version,
        "tollgate serving"
    );

    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let r = reloader.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let r = r.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload()).await;
            }
        });
    }

    let limits = ServerLimits {
        max_message_bytes: args.max_message_bytes,
        max_concurrent_streams: args.max_concurrent_streams,
        request_timeout: args.request_timeout,
        evict_interval: args.evict_interval,
    };
    let listeners = Listeners {
        grpc,
        metrics: Some(metrics),
        admin,
    };
    serve(engine, listeners, limits, shutdown_signal()).await?;
    if let Some(task) = audit_task {
        // Everything queued before the stop is written; a stuck sink cannot hold
        // the exit for ever.
        match tokio::time::timeout(std::time::Duration::from_secs(10), task.finish()).await {
            Ok(stats) => tracing::info!(
                written = stats.written,
                dropped = stats.dropped,
                write_errors = stats.write_errors,
                "audit log closed"
            ),
            Err(_) => tracing::error!("audit log did not drain within 10 s"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
