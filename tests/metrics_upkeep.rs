//! Recorded latencies do not pile up between scrapes.
//!
//! The Prometheus recorder keeps each histogram sample (8 bytes) until upkeep
//! folds it into bucket counts. Here nothing scrapes: only the upkeep thread
//! `metrics::install` starts can free them. Memory held is counted by a
//! counting global allocator (live bytes, all threads), so the figure is
//! exact rather than an RSS reading.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};
use tollgate::metrics::{self, UPKEEP_EVERY};
use tollgate::request::Outcome;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn latency_samples_are_folded_into_buckets_without_a_scrape() {
    metrics::install();
    // Registers the series (its handle stays).
    metrics::report(Outcome::OtpVerified, None, Duration::from_micros(3));
    let base = LIVE.load(Ordering::Relaxed);
    let (mut recorded, mut peak) = (0usize, 0isize);
    let started = Instant::now();
    // Four upkeep periods, at most about 2 M samples a second.
    while started.elapsed() < UPKEEP_EVERY * 4 + UPKEEP_EVERY / 2 {
        for i in 0..20_000u64 {
            metrics::report(Outcome::OtpVerified, None, Duration::from_nanos(1_000 + i));
        }
        recorded += 20_000;
        peak = peak.max(LIVE.load(Ordering::Relaxed) - base);
        std::thread::sleep(Duration::from_millis(10));
    }
    let held = LIVE.load(Ordering::Relaxed) - base;
    let all = 8 * recorded as isize;
    eprintln!("{recorded} samples ({all} bytes): peak held {peak} bytes, held at the end {held}");
    // The counter sees the samples held between two upkeeps (it can fail:
    // a counter that counts nothing would pass the bound below alone).
    assert!(
        peak > all / 20,
        "samples are held between upkeeps: peak {peak} of {all}"
    );
    // Without upkeep every sample would still be held (8 bytes each and their
    // blocks' overhead); with it, at most about one period's worth.
    assert!(
        held < all / 2,
        "held {held} bytes after {recorded} samples ({all} bytes)"
    );
}
