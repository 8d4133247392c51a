//! The writer thread: receives records, formats them into lines, writes them
//! in batches, counts what was written or lost.

use super::sink::{Failure, Sink};
use super::{line, Counters, Msg};
use crate::metrics;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Runs on the writer thread.
pub(super) struct Writer {
    sink: Sink,
    unmasked: bool,
    counters: Arc<Counters>,
    /// A write failed and was logged; cleared by the next success.
    failing: bool,
}

impl Writer {
    pub fn new(sink: Sink, unmasked: bool, counters: Arc<Counters>) -> Writer {
        Writer {
            sink,
            unmasked,
            counters,
            failing: false,
        }
    }

    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut line = Vec::with_capacity(1024);
        while let Some(first) = rx.blocking_recv() {
            // Everything already queued goes out as one batch.
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    // Senders now get an error (and count a drop); what is
                    // queued is still received, then `blocking_recv` ends.
                    Msg::Stop => rx.close(),
                    Msg::Record(r) => {
                        line.clear();
                        line::write(&r, self.unmasked, &mut line);
                        let pushed = self.sink.push(&line);
                        self.settle(pushed);
                    }
                }
                next = rx.try_recv().ok();
            }
            let flushed = self.sink.flush();
            self.settle(flushed);
        }
        let finished = self.sink.finish();
        self.settle(finished);
    }

    /// Counts what a push or flush wrote or lost, and logs the first failure
    /// of a run of them (not every one: a full disk would flood the logs).
    fn settle(&mut self, result: Result<u64, Failure>) {
        let c = &self.counters;
        match result {
            Ok(written) => {
                c.written.fetch_add(written, Ordering::Relaxed);
                if self.failing && written > 0 {
                    self.failing = false;
                    tracing::info!("audit log writes again");
                }
            }
            Err(f) => {
                c.write_errors.fetch_add(f.lost, Ordering::Relaxed);
                metrics::audit_write_errors(f.lost);
                if !self.failing {
                    self.failing = true;
                    tracing::error!(
                        error = %f.error,
                        lost = f.lost,
                        "audit log write failed; records are lost until it recovers"
                    );
                }
            }
        }
    }
}
