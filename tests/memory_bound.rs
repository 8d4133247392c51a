//! A flood of distinct subjects is shed when the store passes its limits, and
//! nothing that is refusing requests is lost: a throttled IP, a number backing
//! off, a locked account, an exhausted session. (Numbers still backing off are
//! never shed: how many there are is bounded by the send rate times the
//! backoff, not by the limit.)

use std::sync::Arc;
use std::time::Duration;
use tollgate::clock::FakeClock;
use tollgate::decision::Verdict;
use tollgate::engine::{Engine, EngineOptions};
use tollgate::keys::KeyHasher;
use tollgate::limits::memory::at_once as now;
use tollgate::limits::{MemoryStore, StateStore, StoreLimits};
use tollgate::policy::compile;

/// Lets a flood of distinct subjects through, so every map grows: per-subject
/// limits only, no range or conversion protection.
const POLICY: &str = r#"
version = "flood"
[session]
[account]
[phone]
[backoff]
id = "backoff.phone"
base = "30s"
factor = 2.0
cap = "15m"
reset_after = "1h"
action = "block"
[[limit]]
id = "limit.ip"
key = "ip"
events = ["otp_send"]
rate = "20/1h"
burst = 10
action = "block"
[[limit]]
id = "limit.device"
key = "device"
rate = "10/1h"
action = "block"
"#;
use tollgate::request::{AssessInput, Channel, Event, Outcome, ReportInput};

fn send(phone: &str, ip: &str, account: &str, session: &str) -> AssessInput {
    AssessInput {
        event: Event::OtpSend,
        channel: Some(Channel::Sms),
        phone: Some(phone.parse().unwrap()),
        email: None,
        ip: Some(ip.parse().unwrap()),
        device_id: Some(format!("dev-{account}")),
        account_id: Some(account.into()),
        session_id: Some(session.into()),
        user_agent: None,
        tenant: None,
        amount_minor: None,
        currency: None,
        attributes: vec![],
    }
}

fn report(outcome: Outcome, account: &str, session: &str) -> ReportInput {
    ReportInput {
        assessment_id: None,
        outcome,
        phone: None,
        email: None,
        account_id: Some(account.into()),
        session_id: Some(session.into()),
        device_id: None,
        tenant: None,
    }
}

#[test]
fn a_flood_is_shed_and_every_refusal_survives() {
    let clock = FakeClock::new();
    let limits = StoreLimits {
        max_rate_keys: 1_000,
        max_subjects: 200,
        max_windows: 50,
        max_assessments: 1_000,
    };
    let engine = Engine::new(
        compile("flood.toml", POLICY).unwrap(),
        MemoryStore::new(limits),
        KeyHasher::from_secret(b"t"),
        Arc::new(clock.clone()),
        EngineOptions::default(),
    );
    let verdict = |i: &AssessInput| now(engine.assess(i)).unwrap().decision;

    // The flood: distinct numbers, IPs, devices, accounts, sessions.
    for i in 0..3_000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        verdict(&send(
            &format!("+3367{:07}", i),
            &ip,
            &format!("flood-{i}"),
            &format!("fs-{i}"),
        ));
        clock.advance(Duration::from_millis(1));
    }
    // The flood's numbers are past their 30 s backoff: nothing of it refuses
    // anything any more.
    clock.advance(Duration::from_secs(31));

    // Things that refuse requests.
    // A number backing off.
    assert_eq!(
        verdict(&send("+33611111111", "192.0.2.1", "a-backoff", "s-backoff")).verdict,
        Verdict::Allow
    );
    // An IP over limit.ip (10 at once): throttled for a while.
    for i in 0..11 {
        verdict(&send(
            &format!("+336222222{i:02}"),
            "192.0.2.99",
            &format!("a-ip-{i}"),
            &format!("s-ip-{i}"),
        ));
    }
    // A locked account.
    for _ in 0..5 {
        now(engine.report(&report(Outcome::LoginFailed, "a-locked", "s-locked"))).unwrap();
    }
    // An exhausted session (3 wrong codes).
    verdict(&send(
        "+33633333333",
        "192.0.2.3",
        "a-session",
        "s-exhausted",
    ));
    for _ in 0..3 {
        now(engine.report(&report(Outcome::OtpWrongCode, "a-session", "s-exhausted"))).unwrap();
    }

    let before = engine.store().stats();
    assert!(before.rate_keys > limits.max_rate_keys, "{before:?}");
    assert!(
        before.phone_keys > limits.max_subjects && before.session_keys > limits.max_subjects,
        "{before:?}"
    );
    assert!(before.account_keys > limits.max_subjects, "{before:?}");
    let shed = engine.relieve();
    let after = engine.store().stats();
    assert!(shed > 0);
    assert!(after.rate_keys <= limits.max_rate_keys, "{after:?}");
    assert!(
        after.phone_keys <= limits.max_subjects && after.account_keys <= limits.max_subjects,
        "{after:?}"
    );
    assert!(after.session_keys <= limits.max_subjects, "{after:?}");

    // Every refusal is still there.
    let r = verdict(&send("+33611111111", "192.0.2.1", "a-backoff", "s-backoff"));
    assert!(
        r.reasons.iter().any(|x| &*x.code == "backoff.phone"),
        "{r:?}"
    );
    let r = verdict(&send("+33644444444", "192.0.2.99", "a-other", "s-other"));
    assert!(r.reasons.iter().any(|x| &*x.code == "limit.ip"), "{r:?}");
    let login = AssessInput {
        event: Event::Login,
        channel: None,
        phone: None,
        ..send("+33600000000", "192.0.2.7", "a-locked", "x")
    };
    let r = verdict(&login);
    assert!(
        r.reasons.iter().any(|x| &*x.code == "account.locked"),
        "{r:?}"
    );
    let verify = AssessInput {
        event: Event::OtpVerify,
        ..send("+33633333333", "192.0.2.3", "a-session", "s-exhausted")
    };
    let r = verdict(&verify);
    assert!(
        r.reasons
            .iter()
            .any(|x| &*x.code == "session.code_attempts"),
        "{r:?}"
    );
}
