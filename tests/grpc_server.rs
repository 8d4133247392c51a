//! The server around the service: health, reflection, /metrics, limits.

mod common;

use common::*;
use tokio_stream::StreamExt;
use tollgate::proto::v1 as pb;
use tollgate::server::ServerLimits;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[tokio::test]
async fn health_reports_serving_for_the_risk_service() {
    let srv = TestServer::default_policy().await;
    let mut h = HealthClient::new(srv.channel().await);
    for service in ["", "tollgate.v1.RiskService"] {
        let r = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = h
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    srv.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let srv = TestServer::default_policy().await;
    let mut r = ServerReflectionClient::new(srv.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer {resp:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "tollgate.v1.RiskService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    srv.stop().await;
}

/// The value of the series whose name and labels contain all of `parts`.
fn series(scrape: &str, name: &str, parts: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_decisions_and_reasons() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let before = srv.scrape().await;
    let allow_label = [
        "event=\"otp_send\"",
        "channel=\"sms\"",
        "decision=\"allow\"",
    ];
    let block_label = [
        "event=\"otp_send\"",
        "channel=\"sms\"",
        "decision=\"block\"",
    ];
    let reason = ["rule=\"backoff.phone\"", "shadow=\"false\""];
    let a0 = series(&before, "tollgate_decisions_total", &allow_label).unwrap_or(0.0);
    let b0 = series(&before, "tollgate_decisions_total", &block_label).unwrap_or(0.0);
    let r0 = series(&before, "tollgate_reasons_total", &reason).unwrap_or(0.0);

    c.assess(otp_send("+33655555555", "192.0.2.200"))
        .await
        .unwrap();
    c.assess(otp_send("+33655555555", "192.0.2.200"))
        .await
        .unwrap();
    c.assess(otp_send("+33655555555", "192.0.2.200"))
        .await
        .unwrap();

    let after = srv.scrape().await;
    // Other tests in this binary share the process-wide recorder: compare deltas,
    // at least ours.
    assert!(series(&after, "tollgate_decisions_total", &allow_label).unwrap() >= a0 + 1.0);
    assert!(series(&after, "tollgate_decisions_total", &block_label).unwrap() >= b0 + 2.0);
    assert!(series(&after, "tollgate_reasons_total", &reason).unwrap() >= r0 + 2.0);
    assert!(after.contains("# HELP tollgate_decisions_total"));
    assert!(
        after.contains("tollgate_assess_duration_seconds_bucket{le=\"0.00001\"}"),
        "explicit µs buckets"
    );
    // No identifier ever becomes a label.
    assert!(!after.contains("33655555555") && !after.contains("192.0.2.200"));
    srv.stop().await;
}

/// Two rules firing on one request, one in shadow: each reason is counted
/// under its own rule id and shadow label, including a rule id's first count
/// and the same rule counted shadowed once the whole policy is in shadow.
#[tokio::test]
async fn reason_counters_keep_rules_and_shadow_apart() {
    const TWO_RULES: &str = r#"
version = "reasons-test"
[[limit]]
id = "test.shadowed"
key = "phone"
rate = "1/1h"
action = "block"
shadow = true

[[limit]]
id = "test.enforced"
key = "device"
rate = "1/1h"
action = "block"
"#;
    let srv = TestServer::start(TWO_RULES).await;
    let mut c = srv.client().await;
    let mut req = otp_send("+33655555501", "");
    req.device_id = "dev-reasons".into();
    for _ in 0..3 {
        c.assess(req.clone()).await.unwrap();
    }
    srv.engine.set_policy(
        tollgate::policy::compile("t", &format!("shadow = true\n{TWO_RULES}")).unwrap(),
    );
    let r = c.assess(req).await.unwrap().into_inner();
    assert_eq!(codes(&r), ["test.shadowed", "test.enforced"], "{r:?}");

    // The rule ids are this test's own: exact counts.
    let after = srv.scrape().await;
    let count = |rule: &str, shadow: &str| {
        series(
            &after,
            "tollgate_reasons_total",
            &[&format!("rule=\"{rule}\""), &format!("shadow=\"{shadow}\"")],
        )
    };
    assert_eq!(count("test.shadowed", "true"), Some(3.0), "{after}");
    assert_eq!(count("test.shadowed", "false"), None);
    assert_eq!(count("test.enforced", "false"), Some(2.0));
    assert_eq!(count("test.enforced", "true"), Some(1.0));
    srv.stop().await;
}

#[tokio::test]
async fn oversized_requests_are_refused_before_decoding() {
    let limits = ServerLimits {
        max_message_bytes: 4096,
        ..ServerLimits::default()
    };
    let srv = TestServer::start_with(tollgate::policy::DEFAULT_POLICY, limits).await;
    let mut c = srv.client().await;
    let mut r = otp_send("+33612345678", "");
    r.attributes.insert("blob".into(), "x".repeat(8000));
    let err = c.assess(r).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    // The server is still fine.
    let ok = c
        .assess(otp_send("+33612345678", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&ok), pb::Decision::Allow);
    srv.stop().await;
}

#[tokio::test]
async fn many_concurrent_calls_are_all_answered() {
    let srv = TestServer::default_policy().await;
    let c = srv.client().await;
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let r = c
                .assess(otp_send(&format!("+3361{:07}", i), "198.51.100.1"))
                .await
                .unwrap()
                .into_inner();
            decision(&r)
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() == pb::Decision::Allow {
            allowed += 1;
        }
    }
    // Distinct numbers from one IP: limit.ip (burst 10) turns the rest into
    // step-ups; nothing errors.
    assert_eq!(allowed, 10);
    srv.stop().await;
}

#[tokio::test]
async fn conversion_metrics_are_per_country_and_never_per_prefix() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let before = srv.scrape().await;
    let sends0 = series(&before, "tollgate_otp_sends_total", &["country=\"BE\""]).unwrap_or(0.0);
    let ver0 = series(
        &before,
        "tollgate_otp_verifications_total",
        &["country=\"BE\""],
    )
    .unwrap_or(0.0);
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = c
            .assess(otp_send(&format!("+3247012345{i}"), ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
        ids.push(r.assessment_id);
    }
    c.report(pb::ReportRequest {
        assessment_id: ids[0].clone(),
        outcome: pb::Outcome::OtpVerified as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    srv.engine.maintain().await;
    let after = srv.scrape().await;
    assert_eq!(
        series(&after, "tollgate_otp_sends_total", &["country=\"BE\""]),
        Some(sends0 + 4.0)
    );
    assert_eq!(
        series(
            &after,
            "tollgate_otp_verifications_total",
            &["country=\"BE\""]
        ),
        Some(ver0 + 1.0)
    );
    // This server's own window: 1 of 4 Belgian codes verified.
    assert_eq!(
        series(&after, "tollgate_conversion_ratio", &["country=\"BE\""]),
        Some(0.25)
    );
    assert!(after.contains("tollgate_protections_active{scope=\"prefix\"}"));
    assert!(!after.contains("+32470"), "no prefix as a label");
    srv.stop().await;
}

#[tokio::test]
async fn promtool_finds_nothing_wrong_with_a_live_scrape() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    // Every kind of call, so every kind of series exists.
    let r = c
        .assess(otp_send("+33612345678", "192.0.2.1"))
        .await
        .unwrap()
        .into_inner();
    c.assess(otp_send("+33612345678", "192.0.2.1"))
        .await
        .unwrap();
    c.report(pb::ReportRequest {
        assessment_id: r.assessment_id,
        outcome: pb::Outcome::OtpVerified as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    let _ = c.assess(otp_send("not a number", "")).await;
    let mut admin = srv.admin(Some(ADMIN_TOKEN)).await;
    admin
        .get_conversion(pb::GetConversionRequest::default())
        .await
        .unwrap();
    srv.engine.maintain().await;
    let scrape = srv.scrape().await;
    assert!(
        scrape.contains("tollgate_store_errors_total 0"),
        "error counters start at 0"
    );

    let mut child = std::process::Command::new(
        std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into()),
    )
    .args(["check", "metrics"])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("promtool is installed (Debian's prometheus package; .ci/run installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n---\n{scrape}"
    );
    srv.stop().await;
}
