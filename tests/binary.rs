//! The real `tollgate` binary: serve with the built-in policy, answer, take an
//! admin call, stop on SIGTERM with exit code 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use tollgate::proto::v1 as pb;
use tollgate::proto::v1::risk_service_client::RiskServiceClient;

const TOKEN: &str = "binary-test-token-0123456789";

/// The value after `name=` in a log line.
fn field(line: &str, name: &str) -> Option<String> {
    line.split(&format!("{name}="))
        .nth(1)
        .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
}

#[tokio::test]
async fn serve_with_defaults_answers_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--audit-log")
        .arg(&audit_path)
        .env("TOLLGATE_LOG", "info")
        .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts the binary");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The start-up lines name the bound addresses.
    let (mut addr, mut admin) = (None, None);
    while addr.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("start-up log lines");
        addr = addr.or_else(|| field(&line, "grpc"));
        admin = admin.or_else(|| field(&line, "admin"));
    }
    let (addr, admin) = (addr.unwrap(), admin.unwrap());

    let mut c = RiskServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let r = c
        .assess(pb::AssessRequest {
            event: pb::Event::OtpSend as i32,
            channel: pb::Channel::Sms as i32,
            phone_number: "+33612345678".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision, pb::Decision::Allow as i32);
    assert_eq!(r.policy_version, "default-2026-11");
    c.report(pb::ReportRequest {
        assessment_id: r.assessment_id.clone(),
        outcome: pb::Outcome::OtpVerified as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    drop(c);

    // An admin call through the CLI is logged with the token's id, never the token.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["admin", "--addr", &format!("http://{admin}"), "block"])
            .args(["--prefix", "+88216", "--reason", "pumping"])
            .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code.code(), Some(0), "exits 0 after SIGTERM");
    // The child has exited: the reader thread reaches EOF and ends.
    let rest: Vec<String> = tokio::task::spawn_blocking(move || rx.iter().collect())
        .await
        .unwrap();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    let audit = rest
        .iter()
        .find(|l| l.contains("admin call"))
        .expect("the admin call is logged");
    assert_eq!(
        field(audit, "caller").as_deref(),
        Some("\"env\""),
        "{audit}"
    );
    assert_eq!(
        field(audit, "action").as_deref(),
        Some("\"block\""),
        "{audit}"
    );
    assert!(
        !rest.iter().any(|l| l.contains(TOKEN)),
        "the token is never logged"
    );
    // Logs never carry the raw number.
    assert!(!rest.iter().any(|l| l.contains("33612345678")));

    // The evidence trail, written out before exit: the decision, the report
    // linked by assessment id, the admin call; identifiers masked.
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let of = |t: &str| lines.iter().filter(|l| l["type"] == t).collect::<Vec<_>>();
    let (assessed, reported, admin) = (of("assessment"), of("report"), of("admin"));
    assert_eq!(
        (assessed.len(), reported.len(), admin.len()),
        (1, 1, 1),
        "{text}"
    );
    assert_eq!(assessed[0]["assessment_id"], r.assessment_id.as_str());
    assert_eq!(assessed[0]["decision"], "allow");
    assert_eq!(assessed[0]["phone"], "+336••••••78");
    assert_eq!(assessed[0]["signals"]["phone"]["region"], "FR");
    assert_eq!(reported[0]["assessment_id"], r.assessment_id.as_str());
    assert_eq!(reported[0]["outcome"], "otp_verified");
    assert_eq!(admin[0]["caller"], "env");
    assert_eq!(admin[0]["action"], "block");
    assert_eq!(admin[0]["ok"], true);
    assert!(!text.contains("33612345678") && !text.contains(TOKEN));
}
