//! End to end over gRPC: throttling, retry_after, backoff, verification, shadow
//! rules, step-up, reload. Time moves by the fake clock only.

mod common;

use common::*;
use std::time::Duration;
use tollgate::proto::v1 as pb;

const BACKOFF_ONLY: &str = r#"
version = "backoff-test"
[backoff]
id = "backoff.phone"
base = "30s"
factor = 2.0
cap = "100s"
reset_after = "1h"
action = "block"
"#;

#[tokio::test]
async fn allow_then_throttle_with_retry_after_then_allow_again() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;

    let first = c
        .assess(otp_send("+33612345678", "192.0.2.10"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&first), pb::Decision::Allow, "{first:?}");
    assert_eq!(first.score, 0);
    assert!(first.reasons.is_empty());
    assert_eq!(first.assessment_id.len(), 32);
    assert_eq!(first.policy_version, "default-2026-11");
    let sig = first.signals.as_ref().unwrap();
    assert_eq!(
        (sig.phone_region.as_str(), sig.phone_calling_code),
        ("FR", 33)
    );
    assert_eq!(sig.phone_type, "mobile");

    let again = c
        .assess(otp_send("+33612345678", "192.0.2.10"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&again), pb::Decision::Block, "{again:?}");
    assert_eq!(codes(&again), vec!["backoff.phone"]);
    assert_eq!(retry_secs(&again), Some(30.0));
    assert_ne!(again.assessment_id, first.assessment_id);

    // Another number is not affected.
    let other = c
        .assess(otp_send("+33698765432", "192.0.2.10"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&other), pb::Decision::Allow);

    srv.advance(Duration::from_secs(29));
    let early = c
        .assess(otp_send("+33612345678", "192.0.2.10"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&early), pb::Decision::Block);
    assert_eq!(retry_secs(&early), Some(1.0));

    srv.advance(Duration::from_secs(1));
    let later = c
        .assess(otp_send("+33612345678", "192.0.2.10"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&later), pb::Decision::Allow, "{later:?}");
    srv.stop().await;
}

#[tokio::test]
async fn backoff_doubles_up_to_its_cap_and_resets_on_verification() {
    let srv = TestServer::start(BACKOFF_ONLY).await;
    let mut c = srv.client().await;
    let n = "+447400123456";

    let mut waits = Vec::new();
    let mut last_allowed = String::new();
    for _ in 0..5 {
        let ok = c.assess(otp_send(n, "")).await.unwrap().into_inner();
        assert_eq!(decision(&ok), pb::Decision::Allow, "{ok:?}");
        last_allowed = ok.assessment_id;
        let blocked = c.assess(otp_send(n, "")).await.unwrap().into_inner();
        assert_eq!(decision(&blocked), pb::Decision::Block);
        let w = retry_secs(&blocked).unwrap();
        waits.push(w);
        srv.advance(Duration::from_secs_f64(w));
    }
    assert_eq!(waits, vec![30.0, 60.0, 100.0, 100.0, 100.0]);

    // A send is backing off again; the verified code resets it.
    let ok = c.assess(otp_send(n, "")).await.unwrap().into_inner();
    assert_eq!(decision(&ok), pb::Decision::Allow);
    assert_eq!(
        decision(&c.assess(otp_send(n, "")).await.unwrap().into_inner()),
        pb::Decision::Block
    );
    c.report(pb::ReportRequest {
        assessment_id: ok.assessment_id.clone(),
        outcome: pb::Outcome::OtpVerified as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    let after = c.assess(otp_send(n, "")).await.unwrap().into_inner();
    assert_eq!(
        decision(&after),
        pb::Decision::Allow,
        "verified code resets backoff: {after:?}"
    );
    let next = c.assess(otp_send(n, "")).await.unwrap().into_inner();
    assert_eq!(retry_secs(&next), Some(30.0), "the run starts over at base");

    // Report by identifiers (no assessment id) resets too.
    c.report(pb::ReportRequest {
        outcome: pb::Outcome::OtpVerified as i32,
        phone_number: n.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        decision(&c.assess(otp_send(n, "")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );

    // Other outcomes do not reset.
    c.report(pb::ReportRequest {
        assessment_id: last_allowed,
        outcome: pb::Outcome::OtpDelivered as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        decision(&c.assess(otp_send(n, "")).await.unwrap().into_inner()),
        pb::Decision::Block
    );
    srv.stop().await;
}

#[tokio::test]
async fn backoff_starts_over_after_quiet_period() {
    let srv = TestServer::start(BACKOFF_ONLY).await;
    let mut c = srv.client().await;
    let n = "+447400123456";
    c.assess(otp_send(n, "")).await.unwrap();
    srv.advance(Duration::from_secs(30));
    c.assess(otp_send(n, "")).await.unwrap();
    srv.advance(Duration::from_secs(3600));
    assert_eq!(
        decision(&c.assess(otp_send(n, "")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    let r = c.assess(otp_send(n, "")).await.unwrap().into_inner();
    assert_eq!(retry_secs(&r), Some(30.0));
    srv.stop().await;
}

#[tokio::test]
async fn report_for_unknown_assessment_is_not_found() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let err = c
        .report(pb::ReportRequest {
            assessment_id: "0123456789abcdef0123456789abcdef".into(),
            outcome: pb::Outcome::OtpVerified as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(err.message().contains("0123456789abcdef0123456789abcdef"));
    srv.stop().await;
}

#[tokio::test]
async fn remembered_assessment_expires() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let a = c
        .assess(otp_send("+33612345678", ""))
        .await
        .unwrap()
        .into_inner();
    srv.advance(Duration::from_secs(3601));
    let err = c
        .report(pb::ReportRequest {
            assessment_id: a.assessment_id,
            outcome: pb::Outcome::OtpVerified as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    srv.stop().await;
}

const SHADOW: &str = r#"
version = "shadow-test"
[[limit]]
id = "limit.phone"
key = "phone"
rate = "1/1h"
action = "block"
shadow = true

[[limit]]
id = "limit.device"
key = "device"
rate = "1/1h"
action = "block"
"#;

#[tokio::test]
async fn shadow_rules_are_reported_but_not_enforced() {
    let srv = TestServer::start(SHADOW).await;
    let mut c = srv.client().await;
    let mut req = otp_send("+33612345678", "");
    c.assess(req.clone()).await.unwrap();
    let r = c.assess(req.clone()).await.unwrap().into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    assert_eq!(r.reasons.len(), 1);
    assert_eq!(r.reasons[0].code, "limit.phone");
    assert!(r.reasons[0].shadow);
    assert!(r.retry_after.is_none());

    // The enforced rule next to it still blocks.
    req.device_id = "dev-1".into();
    req.phone_number = "+33600000001".into();
    c.assess(req.clone()).await.unwrap();
    let r = c.assess(req.clone()).await.unwrap().into_inner();
    assert_eq!(decision(&r), pb::Decision::Block);
    assert!(r
        .reasons
        .iter()
        .any(|x| x.code == "limit.device" && !x.shadow));

    // Global shadow: nothing enforced, everything reported.
    srv.engine
        .set_policy(tollgate::policy::compile("t", &format!("shadow = true\n{SHADOW}")).unwrap());
    let r = c.assess(req.clone()).await.unwrap().into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    assert!(r.reasons.iter().all(|x| x.shadow));
    assert!(r.reasons.iter().any(|x| x.code == "limit.device"));
    srv.stop().await;
}

const KEYS: &str = r#"
version = "keys-test"
[[limit]]
id = "limit.ip"
key = "ip"
rate = "1/1h"
action = "step_up"
step_up_methods = ["captcha", "reverse_sms"]

[[limit]]
id = "limit.prefix"
key = "phone_prefix"
prefix_digits = 2
events = ["otp_send"]
channels = ["sms"]
rate = "2/1h"
action = "block"
"#;

#[tokio::test]
async fn step_up_with_methods_and_ipv4_mapped_ipv6_is_the_same_subject() {
    let srv = TestServer::start(KEYS).await;
    let mut c = srv.client().await;
    let login = |ip: &str| pb::AssessRequest {
        event: pb::Event::Login as i32,
        ip: ip.into(),
        account_id: "acct-1".into(),
        ..Default::default()
    };
    assert_eq!(
        decision(&c.assess(login("198.51.100.7")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    let r = c
        .assess(login("::ffff:198.51.100.7"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::StepUp, "{r:?}");
    assert_eq!(codes(&r), vec!["limit.ip"]);
    assert_eq!(
        r.step_up,
        vec![
            pb::StepUpMethod::Captcha as i32,
            pb::StepUpMethod::ReverseSms as i32
        ]
    );
    assert!(retry_secs(&r).unwrap() > 3599.0);
    // A different address is another subject.
    assert_eq!(
        decision(&c.assess(login("198.51.100.8")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    srv.stop().await;
}

#[tokio::test]
async fn prefix_limits_count_a_number_range_and_respect_channel_scope() {
    let srv = TestServer::start(KEYS).await;
    let mut c = srv.client().await;
    // +33 6 1…: three numbers in one range, two allowed by the prefix limit.
    for (n, want) in [
        ("+33612345678", pb::Decision::Allow),
        ("+33612000001", pb::Decision::Allow),
        ("+33612999999", pb::Decision::Block),
    ] {
        let r = c.assess(otp_send(n, "")).await.unwrap().into_inner();
        assert_eq!(decision(&r), want, "{n}: {r:?}");
    }
    // Another range is untouched.
    let r = c
        .assess(otp_send("+33712345678", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow);
    // The rule is scoped to SMS: voice sends to the same range pass.
    let mut voice = otp_send("+33612555555", "");
    voice.channel = pb::Channel::Voice as i32;
    assert_eq!(
        decision(&c.assess(voice).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    srv.stop().await;
}

#[tokio::test]
async fn counters_survive_a_policy_reload_and_a_bad_file_keeps_the_old_policy() {
    let srv = TestServer::start(KEYS).await;
    let mut c = srv.client().await;
    let login = pb::AssessRequest {
        event: pb::Event::Login as i32,
        ip: "203.0.113.9".into(),
        ..Default::default()
    };
    c.assess(login.clone()).await.unwrap();

    // Same rule id, new action: the counter carries over, the decision changes.
    let changed = KEYS.replace("keys-test", "keys-test-2").replacen(
        "action = \"step_up\"\nstep_up_methods = [\"captcha\", \"reverse_sms\"]",
        "action = \"block\"",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, &changed).unwrap();
    tollgate::reload::reload_policy(&srv.engine, &path).unwrap();
    let r = c.assess(login.clone()).await.unwrap().into_inner();
    assert_eq!(r.policy_version, "keys-test-2");
    assert_eq!(decision(&r), pb::Decision::Block, "{r:?}");

    // A broken file is rejected with its line; the old policy keeps serving.
    std::fs::write(&path, "version = \"broken\"\n[[limit]]\nid = \"x\"\nkey = \"ip\"\nrate = \"0/1h\"\naction = \"block\"\n").unwrap();
    let err = tollgate::reload::reload_policy(&srv.engine, &path).unwrap_err();
    assert!(err.to_string().contains("policy.toml:5:"), "{err}");
    let r = c.assess(login).await.unwrap().into_inner();
    assert_eq!(r.policy_version, "keys-test-2");
    assert_eq!(decision(&r), pb::Decision::Block);
    srv.stop().await;
}

#[tokio::test]
async fn limits_counting_allowed_requests_ignore_refused_retries() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let n = "+33611111111";
    // Three codes (the burst of limit.phone), each after its backoff, with
    // impatient retries in between that the backoff refuses.
    for (round, wait) in [30, 60, 120].into_iter().enumerate() {
        assert_eq!(
            decision(&c.assess(otp_send(n, "")).await.unwrap().into_inner()),
            pb::Decision::Allow
        );
        for _ in 0..3 {
            let r = c.assess(otp_send(n, "")).await.unwrap().into_inner();
            if round < 2 {
                assert_eq!(codes(&r), vec!["backoff.phone"], "{r:?}");
            } else {
                // The third code used the burst up: both now say no.
                assert_eq!(codes(&r), vec!["limit.phone", "backoff.phone"], "{r:?}");
            }
        }
        srv.advance(Duration::from_secs(wait));
    }
    // The fourth code is over limit.phone (3 in a row, then one per 12 min);
    // the refused retries did not use it up any sooner.
    let r = c.assess(otp_send(n, "")).await.unwrap().into_inner();
    assert_eq!(decision(&r), pb::Decision::Block);
    assert_eq!(codes(&r), vec!["limit.phone"], "{r:?}");
    // 3 cells taken at t=0, 30 s, 90 s with one cell per 720 s: the next
    // conforms at 720 s, and 210 s have passed.
    assert_eq!(retry_secs(&r), Some(510.0));
    srv.stop().await;
}
