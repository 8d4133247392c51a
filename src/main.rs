//! The `tollgate` binary: `serve` and `check-policy`.

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tollgate::clock::SystemClock;
use tollgate::engine::{Engine, EngineOptions};
use tollgate::keys::KeyHasher;
use tollgate::limits::MemoryStore;
use tollgate::policy::{compile, load_file, DEFAULT_POLICY, DEFAULT_POLICY_NAME};
use tollgate::server::{reload_policy, serve, ServerLimits};
use tollgate::settings::{Cli, Command, ServeArgs};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::CheckPolicy { files } => Ok(check_policy(&files)),
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_env_filter(
                    EnvFilter::try_from_env("TOLLGATE_LOG")
                        .unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .init();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
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
    let policy = match &args.policy {
        Some(path) => load_file(path)?,
        None => compile(DEFAULT_POLICY_NAME, DEFAULT_POLICY)?,
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
    let engine = Arc::new(Engine::new(
        policy,
        MemoryStore::new(args.max_assessments),
        keys,
        SystemClock::shared(),
        EngineOptions {
            assessment_ttl: args.assessment_ttl,
        },
    ));
    let grpc = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding gRPC listener {}", args.listen))?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding metrics listener {}", args.metrics_listen))?;
    let p = engine.policy();
    tracing::info!(
        grpc = %grpc.local_addr()?,
        metrics = %metrics.local_addr()?,
        policy = %p.source,
        version = %p.version,
        "tollgate serving"
    );

    if let Some(path) = args.policy.clone() {
        let engine = engine.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = reload_policy(&engine, &path);
            }
        });
    }

    let limits = ServerLimits {
        max_message_bytes: args.max_message_bytes,
        max_concurrent_streams: args.max_concurrent_streams,
        request_timeout: args.request_timeout,
        evict_interval: args.evict_interval,
    };
    serve(engine, grpc, Some(metrics), limits, shutdown_signal()).await?;
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
