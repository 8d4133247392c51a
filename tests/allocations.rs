//! The allow path allocates nothing: every per-request list lives on the
//! stack, and a valid number is typed without libphonenumber's parser (which
//! builds a few strings per parse). Invalid numbers still go to the parser;
//! the test uses valid ones and checks that typing them allocates nothing.
//!
//! Counted per thread by a counting global allocator, so the other tests of
//! this binary (there are none) and the runtime's threads do not disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tollgate::clock::FakeClock;
use tollgate::decision::Verdict;
use tollgate::engine::{Engine, EngineOptions};
use tollgate::keys::KeyHasher;
use tollgate::limits::memory::at_once as now;
use tollgate::limits::MemoryStore;
use tollgate::policy::{compile_with, ListNames, DEFAULT_POLICY, DEFAULT_POLICY_NAME};
use tollgate::request::{AssessInput, AssessmentId, Channel, Event, Outcome, ReportInput};
use tollgate::signals::data::{DataSet, DataSources};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no counter left.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made on this thread by `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

/// Subject `n`: its own number (scattered over French mobile ranges), IP
/// (scattered over /24s), device, account and session.
fn request(n: u64) -> AssessInput {
    let z = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    AssessInput {
        event: Event::OtpSend,
        channel: Some(Channel::Sms),
        phone: Some(format!("+336{:08}", z % 100_000_000).parse().unwrap()),
        email: None,
        ip: Some(IpAddr::V4(Ipv4Addr::from(((z >> 8) as u32) | 1))),
        device_id: Some(format!("device-{n}")),
        account_id: Some(format!("account-{n}")),
        session_id: Some(format!("session-{n}")),
        user_agent: None,
        tenant: None,
        amount_minor: None,
        currency: None,
        attributes: Vec::new(),
    }
}

fn verified(id: AssessmentId) -> ReportInput {
    ReportInput {
        assessment_id: Some(id),
        outcome: Outcome::OtpVerified,
        phone: None,
        email: None,
        account_id: None,
        session_id: None,
        device_id: None,
        tenant: None,
    }
}

#[test]
fn an_allowed_decision_and_its_report_allocate_nothing_of_their_own() {
    // The counter counts: one box is one allocation.
    let (b, n) = allocations(|| Box::new(std::hint::black_box(7u64)));
    assert_eq!((*b, n), (7, 1));
    tollgate::metrics::install();
    let names = ListNames {
        ip: vec![],
        asn: vec![],
        checked: true,
    };
    let policy = compile_with(DEFAULT_POLICY_NAME, DEFAULT_POLICY, &names).unwrap();
    let clock = FakeClock::new();
    let engine = Engine::new(
        policy,
        MemoryStore::new(Default::default()),
        KeyHasher::from_secret(b"allocations"),
        Arc::new(clock.clone()),
        EngineOptions {
            list_names: names,
            ..EngineOptions::default()
        },
    );
    let (data, _) = DataSet::load(Arc::new(DataSources { files: vec![] }), None);
    engine.set_data(data);

    // Tracked subjects first, so the maps are past their small sizes (a map
    // that grows reallocates its table: rare once it is large).
    for n in 1_000_000..1_020_000 {
        let a = now(engine.assess(&request(n))).unwrap();
        let invalid = a
            .decision
            .reasons
            .iter()
            .any(|r| &*r.code == "phone.invalid");
        assert!(
            a.decision.verdict == Verdict::Allow || invalid,
            "{:?}",
            a.decision
        );
        now(engine.report(&verified(a.id))).unwrap();
        clock.advance(Duration::from_secs(10));
    }
    let mut per_send = Vec::new();
    let mut typing = Vec::new();
    let mut per_report = Vec::new();
    for n in 0..400 {
        let input = request(n);
        let phone = input.phone.as_ref().unwrap();
        let (facts, parse) = allocations(|| tollgate::signals::phone::facts(phone));
        if !facts.valid {
            continue;
        }
        let (a, assess) = allocations(|| now(engine.assess(&input)).unwrap());
        assert_eq!(a.decision.verdict, Verdict::Allow, "{:?}", a.decision);
        // The median is the figure: a map that grows now and then allocates.
        typing.push(parse);
        per_send.push(assess);
        let report = verified(a.id);
        let ((), r) = allocations(|| now(engine.report(&report)).unwrap());
        per_report.push(r);
        clock.advance(Duration::from_secs(10));
    }
    assert!(per_send.len() > 100, "{} valid numbers", per_send.len());
    per_send.sort();
    typing.sort();
    per_report.sort();
    let median = |v: &[usize]| v[v.len() / 2];
    assert_eq!(
        typing.last(),
        Some(&0),
        "allocations per valid number typed: {typing:?}"
    );
    assert_eq!(
        median(&per_send),
        0,
        "allocations per allowed decision: {per_send:?}"
    );
    assert_eq!(
        median(&per_report),
        0,
        "allocations per report by assessment id: {per_report:?}"
    );
}
