//! Memory: bytes per tracked limiter key, and RSS under a flood of 10 million
//! distinct IPs, numbers and devices through the engine with the default policy
//! and the default store limits, with the maintenance the server runs (relief
//! every simulated second, idle eviction every 30 s). Checks that a throttled
//! IP, a number backing off and a locked account are still refused after it.
//!
//! `cargo bench --bench memory` (FLOOD=n to change the 10 million)

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::clock::FakeClock;
use tollgate::engine::{Engine, EngineOptions};
use tollgate::keys::KeyHasher;
use tollgate::limits::memory::at_once as now;
use tollgate::limits::{CheckBatch, MemoryStore, RateCheck, StateStore, StoreLimits};
use tollgate::policy::{compile, Quota, DEFAULT_POLICY, DEFAULT_POLICY_NAME};
use tollgate::request::{AdminSubject, AssessInput, Channel, Event, Outcome, ReportInput};

/// (VmRSS, VmHWM) in bytes.
fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn bytes_per_key() {
    let store = MemoryStore::new(StoreLimits {
        max_rate_keys: usize::MAX,
        ..StoreLimits::default()
    });
    let quota = Quota::per_hour(std::num::NonZeroU32::new(5).unwrap());
    let n: u64 = 4_000_000;
    let (before, _) = rss();
    for k in 0..n {
        let batch = CheckBatch {
            now: 1_000_000_000_000,
            rates: [RateCheck {
                key: k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                quota,
                cells: 1,
                counts_allowed: false,
                bypassable: false,
            }]
            .into_iter()
            .collect(),
            ..CheckBatch::default()
        };
        now(store.check(&batch)).unwrap();
    }
    let (after, _) = rss();
    assert_eq!(store.stats().rate_keys as u64, n);
    eprintln!(
        "limiter keys: {n} tracked, RSS +{:.1} MiB = {:.1} bytes per key and limiter (target <= 64)",
        mib(after - before),
        (after - before) as f64 / n as f64
    );
}

fn send(phone: String, ip: IpAddr, device: String, account: String) -> AssessInput {
    AssessInput {
        event: Event::OtpSend,
        channel: Some(Channel::Sms),
        phone: Some(phone.parse().unwrap()),
        email: None,
        ip: Some(ip),
        device_id: Some(device),
        account_id: Some(account),
        session_id: None,
        user_agent: None,
        tenant: None,
        amount_minor: None,
        currency: None,
        attributes: vec![],
    }
}

fn flood() {
    let n: u64 = std::env::var("FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let clock = FakeClock::new();
    let engine = Engine::new(
        compile(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap(),
        MemoryStore::new(StoreLimits::default()),
        KeyHasher::from_secret(b"flood"),
        Arc::new(clock.clone()),
        EngineOptions::default(),
    );
    // Refusals that must survive every relief pass: a number backing off, an
    // IP over its limit (kept hammered), a locked account.
    let protected_number = "+447400123456";
    let hammered: IpAddr = "198.51.100.7".parse().unwrap();
    for _ in 0..5 {
        now(engine.report(&ReportInput {
            assessment_id: None,
            outcome: Outcome::LoginFailed,
            phone: None,
            email: None,
            account_id: Some("locked".into()),
            session_id: None,
            device_id: None,
            tenant: None,
        }))
        .unwrap();
    }
    let number = AdminSubject::Phone(protected_number.parse().unwrap());
    let ip = AdminSubject::Ip(hammered);
    let account = AdminSubject::Account("locked".into());
    let refusals = || {
        let n = now(engine.inspect(&number)).unwrap();
        let i = now(engine.inspect(&ip)).unwrap();
        let a = now(engine.inspect(&account)).unwrap();
        (
            n.state.phone.and_then(|p| p.backoff_wait(n.now)).is_some(),
            i.throttled.iter().any(|(id, _)| &**id == "limit.ip"),
            a.state.account.is_some_and(|s| s.lock(a.now).is_some()),
        )
    };

    let started = Instant::now();
    let (base, _) = rss();
    let (mut passes, mut shedding_passes, mut dropped, mut checked) =
        (0u64, 0u64, 0usize, [0u64; 3]);
    for i in 0..n {
        // 10 000 requests a second of simulated time.
        clock.advance(Duration::from_micros(100));
        let z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let addr = IpAddr::V4(Ipv4Addr::from((z >> 32) as u32));
        let phone = format!("+336{:08}", z % 100_000_000);
        now(engine.assess(&send(phone, addr, format!("dev-{i}"), format!("acct-{i}")))).unwrap();
        if i % 1_000 == 0 {
            now(engine.assess(&send(
                "+33699999999".into(),
                hammered,
                "d-h".into(),
                "a-h".into(),
            )))
            .unwrap();
        }
        if i % 20_000 == 0 {
            // A code to the protected number, from a subject of its own.
            now(engine.assess(&send(
                protected_number.into(),
                "192.0.2.1".parse().unwrap(),
                format!("d-p{i}"),
                format!("a-p{i}"),
            )))
            .unwrap();
        }
        if i % 10_000 == 0 {
            // What the server does every second, with the refusals checked
            // just before and just after.
            let before = refusals();
            let gone = engine.relieve();
            let after = refusals();
            passes += 1;
            if gone > 0 {
                shedding_passes += 1;
                dropped += gone;
            }
            for (k, (b, a)) in [
                (before.0, after.0),
                (before.1, after.1),
                (before.2, after.2),
            ]
            .into_iter()
            .enumerate()
            {
                assert!(
                    !b || a,
                    "relief dropped a refusal in force (case {k}) at request {i}"
                );
                checked[k] += u64::from(b);
            }
        }
        if i % 300_000 == 0 {
            now(engine.maintain());
        }
    }
    let (rss_end, hwm) = rss();
    let s = engine.store().stats();
    eprintln!(
        "flood: {n} distinct IPs/numbers/devices/accounts in {:.1?}; RSS {:.0} MiB at the end, peak {:.0} MiB (from {:.0} MiB); target < 1024 MiB",
        started.elapsed(),
        mib(rss_end),
        mib(hwm),
        mib(base)
    );
    eprintln!("  store at the end: {s:?}");
    eprintln!(
        "  {passes} relief passes, {shedding_passes} of them shed {dropped} entries; refusals in force checked across passes: number backing off {}, IP throttled {}, account locked {} — none dropped",
        checked[0], checked[1], checked[2]
    );
    assert!(
        checked.iter().all(|&c| c > 0),
        "each refusal was in force at some pass"
    );
    assert!(hwm < 1024 * 1024 * 1024, "RSS stayed under 1 GiB");
}

/// Each case runs in a process of its own, so one's peak RSS is not the
/// other's.
fn main() {
    match std::env::var("MEMORY_CASE").as_deref() {
        Ok("keys") => bytes_per_key(),
        Ok("flood") => flood(),
        _ => {
            for case in ["keys", "flood"] {
                let status = std::process::Command::new(std::env::current_exe().unwrap())
                    .env("MEMORY_CASE", case)
                    .status()
                    .unwrap();
                assert!(status.success(), "case {case} failed");
            }
        }
    }
}
