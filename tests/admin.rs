//! The AdminService over gRPC, and the `tollgate admin` CLI against a live
//! server.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;
use tollgate::proto::v1 as pb;
use tollgate::server::ServerLimits;
use tonic::Code;
use tonic_types::StatusExt;

use pb::subject::Kind;

fn subj(k: Kind) -> Option<pb::Subject> {
    Some(pb::Subject { kind: Some(k) })
}

fn secs(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s,
        nanos: 0,
    })
}

#[tokio::test]
async fn calls_without_or_with_a_wrong_token_are_refused() {
    let srv = TestServer::default_policy().await;
    for token in [None, Some("wrong-token-0123456789"), Some("")] {
        let mut a = srv.admin(token).await;
        let e = a
            .get_subject(pb::GetSubjectRequest {
                subject: subj(Kind::AccountId("a".into())),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}");
        let e = a
            .block(pb::BlockRequest {
                subject: subj(Kind::Prefix("+88216".into())),
                duration: None,
                reason: "x".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = a
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // Nothing was blocked by the refused calls.
    let mut c = srv.client().await;
    let r = c
        .assess(otp_send("+882161234567", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!codes(&r).contains(&"admin.block"), "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn blocks_by_prefix_network_and_country_apply_with_their_reason_and_end() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let mut a = srv.admin(Some(ADMIN_TOKEN)).await;

    a.block(pb::BlockRequest {
        subject: subj(Kind::Prefix("+33699".into())),
        duration: secs(24 * 3600),
        reason: "pumping, ticket 99".into(),
    })
    .await
    .unwrap();
    let r = c
        .assess(otp_send("+33699123456", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Block);
    assert_eq!(codes(&r), vec!["admin.block"]);
    assert_eq!(r.reasons[0].message, "pumping, ticket 99");
    assert_eq!(retry_secs(&r), Some(86_400.0));
    // Outside the range: untouched.
    assert_eq!(
        decision(
            &c.assess(otp_send("+33698123456", ""))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::Decision::Allow
    );
    // It ends by itself.
    srv.advance(Duration::from_secs(86_400));
    assert_eq!(
        decision(
            &c.assess(otp_send("+33699123499", ""))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::Decision::Allow
    );

    // A network, permanent until unblocked; matched for IPv4-mapped IPv6 too.
    a.block(pb::BlockRequest {
        subject: subj(Kind::Network("203.0.113.0/24".into())),
        duration: None,
        reason: "bot farm".into(),
    })
    .await
    .unwrap();
    let login = |ip: &str| pb::AssessRequest {
        event: pb::Event::Login as i32,
        ip: ip.into(),
        ..Default::default()
    };
    assert_eq!(
        codes(
            &c.assess(login("::ffff:203.0.113.200"))
                .await
                .unwrap()
                .into_inner()
        ),
        vec!["admin.block"]
    );
    assert_eq!(
        decision(&c.assess(login("203.0.114.1")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    let un = a
        .unblock(pb::UnblockRequest {
            subject: subj(Kind::Network("203.0.113.0/24".into())),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(un.was_blocked);
    assert_eq!(
        decision(&c.assess(login("203.0.113.200")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    let again = a
        .unblock(pb::UnblockRequest {
            subject: subj(Kind::Network("203.0.113.0/24".into())),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.was_blocked);

    // A destination country; Guernsey is not the United Kingdom.
    a.block(pb::BlockRequest {
        subject: subj(Kind::Country("GG".into())),
        duration: None,
        reason: "no customers there".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        codes(
            &c.assess(otp_send("+447911123456", ""))
                .await
                .unwrap()
                .into_inner()
        ),
        vec!["admin.block"]
    );
    assert_eq!(
        decision(
            &c.assess(otp_send("+447400123456", ""))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::Decision::Allow
    );
    srv.stop().await;
}

#[tokio::test]
async fn an_operator_block_applies_even_in_global_shadow() {
    let policy = tollgate::policy::DEFAULT_POLICY.replacen("shadow = false", "shadow = true", 1);
    assert_ne!(policy, tollgate::policy::DEFAULT_POLICY);
    let srv = TestServer::start(&policy).await;
    let mut c = srv.client().await;
    let mut a = srv.admin(Some(ADMIN_TOKEN)).await;
    a.block(pb::BlockRequest {
        subject: subj(Kind::AccountId("mule-7".into())),
        duration: None,
        reason: "money mule".into(),
    })
    .await
    .unwrap();
    let r = c
        .assess(pb::AssessRequest {
            event: pb::Event::Transaction as i32,
            account_id: "mule-7".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Block, "{r:?}");
    assert!(!r.reasons[0].shadow);
    srv.stop().await;
}

#[tokio::test]
async fn blocks_of_a_number_a_device_an_ip_and_a_128_apply_to_requests_naming_them() {
    let srv = TestServer::start(tollgate::policy::DEFAULT_POLICY).await;
    let mut c = srv.client().await;
    let mut a = srv.admin(Some(ADMIN_TOKEN)).await;
    let send = |phone: &str, ip: &str, device: &str| pb::AssessRequest {
        device_id: device.into(),
        ..otp_send(phone, ip)
    };
    // Before any block, each of these sends is allowed.
    for (phone, ip, device) in [
        ("+33612345001", "198.51.100.11", "dev-1"),
        ("+33612345002", "198.51.100.12", "dev-2"),
        ("+33612345003", "198.51.100.13", "dev-3"),
        ("+33612345004", "2001:db8::7", "dev-4"),
    ] {
        let r = c
            .assess(send(phone, ip, device))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    }
    for kind in [
        Kind::PhoneNumber("+33612345001".into()),
        Kind::DeviceId("dev-2".into()),
        Kind::Ip("198.51.100.13".into()),
        // The longest network there is: one IPv6 address.
        Kind::Network("2001:db8::7/128".into()),
    ] {
        a.block(pb::BlockRequest {
            subject: subj(kind),
            duration: None,
            reason: "fraud ticket 9".into(),
        })
        .await
        .unwrap();
    }
    srv.clock.advance(Duration::from_secs(3600));
    for (phone, ip, device) in [
        ("+33612345001", "198.51.100.21", "dev-9"),
        ("+33612345009", "198.51.100.22", "dev-2"),
        ("+33612345008", "198.51.100.13", "dev-8"),
        ("+33612345006", "2001:db8::7", "dev-6"),
    ] {
        let r = c
            .assess(send(phone, ip, device))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            decision(&r),
            pb::Decision::Block,
            "{phone} {ip} {device}: {r:?}"
        );
        assert!(
            r.reasons
                .iter()
                .any(|x| x.message.contains("fraud ticket 9")),
            "{r:?}"
        );
    }
    // A request naming none of them is still allowed.
    let r = c
        .assess(send("+33612345007", "198.51.100.27", "dev-7"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    srv.stop().await;
}

const SAFE: &str = r#"
version = "safe-test"
[[limit]]
id = "limit.ip"
key = "ip"
rate = "1/1h"
bypassable = true
action = "block"
[[limit]]
id = "limit.phone"
key = "phone"
rate = "2/1h"
action = "block"
"#;

#[tokio::test]
async fn the_safe_list_skips_bypassable_limits_only() {
    let srv = TestServer::start(SAFE).await;
    let mut c = srv.client().await;
    let mut a = srv.admin(Some(ADMIN_TOKEN)).await;
    a.allow(pb::AllowRequest {
        subject: subj(Kind::Ip("198.51.100.5".into())),
        duration: None,
        reason: "office NAT".into(),
    })
    .await
    .unwrap();
    for n in ["+33611111111", "+33622222222", "+33633333333"] {
        let r = c
            .assess(otp_send(n, "198.51.100.5"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    }
    // limit.phone is not bypassable.
    let r1 = c
        .assess(otp_send("+33644444444", "198.51.100.5"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r1), pb::Decision::Allow);
    let _ = c
        .assess(otp_send("+33644444444", "198.51.100.5"))
        .await
        .unwrap();
    let r = c
        .assess(otp_send("+33644444444", "198.51.100.5"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r), vec!["limit.phone"]);
    // Off the list, limit.ip applies again (its cells were never taken).
    let d = a
        .disallow(pb::DisallowRequest {
            subject: subj(Kind::Ip("198.51.100.5".into())),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d.was_allowed);
    assert_eq!(
        decision(
            &c.assess(otp_send("+33655555555", "198.51.100.5"))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::Decision::Allow
    );
    assert_eq!(
        codes(
            &c.assess(otp_send("+33666666666", "198.51.100.5"))
                .await
                .unwrap()
                .into_inner()
        ),
        vec!["limit.ip"]
    );
    srv.stop().await;
}

#[tokio::test]
async fn get_subject_shows_backoff_and_throttling_and_reset_all_clears_them() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let mut a = srv.admin(Some(ADMIN_TOKEN)).await;
    let n = "+33612345678";
    for _ in 0..3 {
        c.assess(otp_send(n, "")).await.unwrap();
        srv.advance(Duration::from_secs(300));
    }
    let phone = || subj(Kind::PhoneNumber(n.into()));
    c.assess(otp_send(n, "")).await.unwrap();
    let st = a
        .get_subject(pb::GetSubjectRequest { subject: phone() })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert_eq!(st.unverified_sends, 4);
    assert_eq!(st.backoff_level, 4);
    assert_eq!(st.backoff_remaining.map(|d| d.seconds), Some(240));
    let st = a
        .reset_counters(pb::ResetCountersRequest {
            subject: phone(),
            scope: pb::ResetScope::Sends as i32,
            reason: "support".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert_eq!(
        (st.unverified_sends, st.backoff_level, st.backoff_remaining),
        (0, 0, None)
    );
    // SENDS leaves rate limits alone: four codes within the hour used up limit.phone.
    let r = c.assess(otp_send(n, "")).await.unwrap().into_inner();
    assert_eq!(codes(&r), vec!["limit.phone"], "{r:?}");
    a.reset_counters(pb::ResetCountersRequest {
        subject: phone(),
        scope: pb::ResetScope::All as i32,
        reason: "support".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        decision(&c.assess(otp_send(n, "")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );

    // An IP over limit.ip (10 at once): throttled, until a reset of everything.
    for i in 0..11 {
        c.assess(otp_send(&format!("+336700000{i:02}"), "192.0.2.9"))
            .await
            .unwrap();
    }
    let ip = || subj(Kind::Ip("192.0.2.9".into()));
    let st = a
        .get_subject(pb::GetSubjectRequest { subject: ip() })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert!(st.throttled.contains_key("limit.ip"), "{st:?}");
    let st = a
        .reset_counters(pb::ResetCountersRequest {
            subject: ip(),
            scope: pb::ResetScope::All as i32,
            reason: "false positive".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert!(st.throttled.is_empty(), "{st:?}");
    let r = c
        .assess(otp_send("+33670000099", "192.0.2.9"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn malformed_admin_calls_name_the_field() {
    let srv = TestServer::default_policy().await;
    let mut a = srv.admin(Some(ADMIN_TOKEN)).await;
    let field = |e: tonic::Status| {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        e.get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect::<Vec<_>>()
    };
    let e = a
        .block(pb::BlockRequest {
            subject: subj(Kind::Prefix("88216".into())),
            duration: None,
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), vec!["subject.prefix"]);
    let e = a
        .block(pb::BlockRequest {
            subject: subj(Kind::Prefix("+88216".into())),
            duration: None,
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), vec!["reason"]);
    let e = a
        .get_subject(pb::GetSubjectRequest { subject: None })
        .await
        .unwrap_err();
    assert_eq!(field(e), vec!["subject"]);
    let e = a
        .get_subject(pb::GetSubjectRequest {
            subject: subj(Kind::Network("10.0.0.0/40".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), vec!["subject.network"]);
    let e = a
        .reset_counters(pb::ResetCountersRequest {
            subject: subj(Kind::AccountId("a".into())),
            scope: 0,
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), vec!["scope"]);
    let e = a
        .allow(pb::AllowRequest {
            subject: subj(Kind::Country("FR".into())),
            duration: None,
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), vec!["subject"]);
    let e = a
        .get_conversion(pb::GetConversionRequest {
            country: "France".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), vec!["country"]);
    // The built-in policy cannot be reloaded from a file.
    let e = a
        .reload_policy(pb::ReloadPolicyRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    srv.stop().await;
}

#[tokio::test]
async fn reload_policy_swaps_a_good_file_and_reports_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let v1 = "version = \"file-1\"\n";
    std::fs::write(&path, v1).unwrap();
    let srv = TestServer::start_full(
        v1,
        ServerLimits::default(),
        Some(path.clone()),
        Default::default(),
    )
    .await;
    let mut a = srv.admin(Some(ADMIN_TOKEN)).await;
    std::fs::write(&path, "version = \"file-2\"\n").unwrap();
    let r = a
        .reload_policy(pb::ReloadPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(r.ok && r.version == "file-2", "{r:?}");
    std::fs::write(&path, "version = \"file-3\"\n[[limit]]\nid = \"x\"\n").unwrap();
    let r = a
        .reload_policy(pb::ReloadPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!r.ok);
    assert_eq!(r.version, "file-2", "the old policy keeps serving");
    assert_eq!(r.problems.len(), 1);
    assert_eq!(
        r.problems,
        vec![format!("{}:2: missing field `action`", path.display())]
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_help_desk_cli_talks_to_the_admin_service() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    for _ in 0..5 {
        c.report(pb::ReportRequest {
            account_id: "cust-42".into(),
            outcome: pb::Outcome::LoginFailed as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let addr = format!("http://{}", srv.admin_addr);
    let run = |args: Vec<String>, token: String| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
                .args(["admin", "--addr", &addr])
                .args(&args)
                .env("TOLLGATE_ADMIN_TOKEN", token)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let (code, out, _) = run(s(&["get", "--account", "cust-42"]), ADMIN_TOKEN.into())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(out.contains("locked: yes, until reset"), "{out}");
    assert!(out.contains("consecutive failures: 5"), "{out}");

    let (code, out, _) = run(
        s(&[
            "reset",
            "--account",
            "cust-42",
            "--scope",
            "failures",
            "--reason",
            "id checked",
        ]),
        ADMIN_TOKEN.into(),
    )
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        out.contains("reset done") && !out.contains("locked: yes"),
        "{out}"
    );

    let (code, out, _) = run(
        s(&[
            "block", "--prefix", "+88216", "--for", "24h", "--reason", "pumping",
        ]),
        ADMIN_TOKEN.into(),
    )
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (Some(0), "blocked\n"));
    let r = c
        .assess(otp_send("+882161234567", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Block);
    assert_eq!(codes(&r)[0], "admin.block");

    let (code, out, _) = run(s(&["conversion"]), ADMIN_TOKEN.into()).await.unwrap();
    assert_eq!(code, Some(0));
    assert!(out.starts_with("window: "), "{out}");

    let (code, _, err) = run(
        s(&["get", "--account", "cust-42"]),
        "wrong-token-0123456789".into(),
    )
    .await
    .unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("tollgate admin:"), "{err}");
    srv.stop().await;
}
