//! Reloading the policy and the data files: on file change (watched), on
//! SIGHUP, and on the admin request. Everything is rebuilt off the hot path and
//! swapped in atomically; what fails to load keeps its previous version serving
//! and is logged with file and line and counted.

use crate::engine::Engine;
use crate::limits::StateStore;
use crate::metrics;
use crate::policy::{load_file_with, PolicyError};
use crate::signals::data::{DataSet, DataSources};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a reload did: the problems, each as `FILE:LINE: message`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    pub policy_version: String,
    pub problems: Vec<String>,
}

/// A reload, whatever the store: what the admin service and signals call.
pub trait Reload: Send + Sync + 'static {
    fn reload(&self) -> ReloadOutcome;
    /// Whether a policy file is configured (the built-in one cannot reload).
    fn has_policy_file(&self) -> bool;
}

pub struct Reloader<S> {
    engine: Arc<Engine<S>>,
    policy_path: Option<PathBuf>,
    sources: Arc<DataSources>,
}

impl<S: StateStore> Reloader<S> {
    pub fn new(
        engine: Arc<Engine<S>>,
        policy_path: Option<PathBuf>,
        sources: Arc<DataSources>,
    ) -> Self {
        Reloader {
            engine,
            policy_path,
            sources,
        }
    }

    /// Loads the policy file and swaps it in. On failure the old policy keeps
    /// serving; the problems are logged with file and line and counted.
    pub fn reload_policy(&self) -> Result<(), PolicyError> {
        let Some(path) = &self.policy_path else {
            return Ok(());
        };
        reload_policy(&self.engine, path)
    }

    /// Loads every data file; each one that fails keeps its previous version.
    /// Returns the problems.
    pub fn reload_data(&self) -> Vec<String> {
        let previous = self.engine.data();
        let (set, report) = DataSet::load(self.sources.clone(), Some(&previous));
        let mut problems = Vec::new();
        for r in &report {
            let dataset = r.feeds.label();
            match &r.result {
                Ok(entries) => {
                    metrics::data_loaded(&dataset, *entries, r.took);
                    tracing::info!(dataset, file = %r.path.display(), entries, took_ms = r.took.as_millis() as u64, "data file loaded");
                }
                Err(e) => {
                    metrics::data_rejected(&dataset);
                    tracing::error!(dataset, problem = %e, "data file rejected; its previous version keeps serving");
                    problems.push(e.to_string());
                }
            }
        }
        self.engine.set_data(set);
        problems
    }
}

impl<S: StateStore> Reload for Reloader<S> {
    fn reload(&self) -> ReloadOutcome {
        let mut problems = self.reload_data();
        if let Err(e) = self.reload_policy() {
            problems.extend(e.0.iter().map(ToString::to_string));
        }
        ReloadOutcome {
            policy_version: self.engine.policy().version.to_string(),
            problems,
        }
    }

    fn has_policy_file(&self) -> bool {
        self.policy_path.is_some()
    }
}

/// Loads `path` and swaps it in. On failure the old policy keeps serving; the
/// problems are logged with file and line and counted.
pub fn reload_policy<S: StateStore>(engine: &Engine<S>, path: &Path) -> Result<(), PolicyError> {
    match load_file_with(path, engine.list_names()) {
        Ok(p) => {
            tracing::info!(file = %path.display(), version = %p.version, "policy reloaded");
            engine.set_policy(p);
            Ok(())
        }
        Err(e) => {
            metrics::policy_rejected();
            for problem in &e.0 {
                tracing::error!(problem = %problem, "policy rejected; the previous policy keeps serving");
            }
            Err(e)
        }
    }
}

/// Watches the policy and data files; a change (including a file replaced by
/// rename, as deploy tools do) triggers a reload after a short quiet period, so
/// a file being written is read once it is complete. Keep the returned watcher
/// alive for as long as watching should go on.
pub fn watch(reloader: Arc<dyn Reload>, files: Vec<PathBuf>) -> notify::Result<RecommendedWatcher> {
    let wanted: HashSet<PathBuf> = files.iter().map(|p| absolute(p)).collect();
    let dirs: HashSet<PathBuf> = wanted
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            if event.paths.iter().any(|p| wanted.contains(p)) {
                let _ = tx.try_send(());
            }
        }
    })?;
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let a burst of writes settle, then reload once.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            let r = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload()).await;
        }
    });
    Ok(watcher)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
