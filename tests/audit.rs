//! The audit log through its public API: the lines it writes, masking,
//! report linkage, rotation, a full queue, and shutdown.
//!
//! No test waits for time to pass. Where the writer thread must reach a point
//! (blocked in the sink, drained), the test waits for it with a generous bound
//! that only a hang would hit.

use serde_json::Value;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tollgate::audit::{Audit, AuditConfig, AuditError, AuditSink, AuditTask};
use tollgate::clock::{Clock, FakeClock, SharedClock};
use tollgate::decision::{Decision, Reason, StepUpMethod, Verdict};
use tollgate::request::{
    AdminSubject, AssessInput, AssessmentId, Channel, Event, Outcome, ReportInput,
};
use tollgate::signals::Signals;

/// Only a hang takes this long.
const HANG: Duration = Duration::from_secs(60);

const PHONE: &str = "+33612345678";
const EMAIL: &str = "jeanne.martin@example.com";
const IP: &str = "192.0.2.77";
const DEVICE: &str = "device-8f3a2c";
const ACCOUNT: &str = "acct-00042";
const SESSION: &str = "sess-7d1e90";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

fn otp_send() -> AssessInput {
    AssessInput {
        event: Event::OtpSend,
        channel: Some(Channel::Sms),
        phone: Some(PHONE.parse().unwrap()),
        email: Some(EMAIL.into()),
        ip: Some(IP.parse().unwrap()),
        device_id: Some(DEVICE.into()),
        account_id: Some(ACCOUNT.into()),
        session_id: Some(SESSION.into()),
        user_agent: Some(USER_AGENT.into()),
        tenant: Some("retail".into()),
        amount_minor: None,
        currency: None,
        attributes: vec![("journey".into(), "password-reset-from-mobile-app".into())],
    }
}

fn throttled() -> Decision {
    Decision {
        verdict: Verdict::Block,
        score: 100,
        reasons: vec![
            Reason {
                code: "phone.backoff".into(),
                message: "wait before sending another code".into(),
                shadow: false,
            },
            Reason {
                code: "ip.datacenter".into(),
                message: "datacenter source".into(),
                shadow: true,
            },
        ],
        retry_after: Some(Duration::from_millis(30_000)),
        step_up: vec![],
        policy_version: "2026-01-01".into(),
    }
}

fn allowed() -> Decision {
    Decision {
        verdict: Verdict::Allow,
        score: 0,
        reasons: vec![],
        retry_after: None,
        step_up: vec![],
        policy_version: "2026-01-01".into(),
    }
}

fn report(id: Option<AssessmentId>, outcome: Outcome) -> ReportInput {
    ReportInput {
        assessment_id: id,
        outcome,
        phone: Some(PHONE.parse().unwrap()),
        email: None,
        account_id: Some(ACCOUNT.into()),
        session_id: Some(SESSION.into()),
        device_id: None,
        tenant: Some("retail".into()),
    }
}

fn file_config(path: &Path, unmasked: bool) -> AuditConfig {
    AuditConfig {
        sink: AuditSink::File {
            path: path.to_owned(),
            max_bytes: 64 << 20,
            keep: 3,
        },
        capacity: 65_536,
        unmasked,
    }
}

fn start(config: AuditConfig) -> (Audit, AuditTask, FakeClock) {
    let clock = FakeClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let (audit, task) = Audit::start(config, shared).unwrap();
    (audit, task, clock)
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn read_lines(path: &Path) -> Vec<Value> {
    parse_lines(&std::fs::read_to_string(path).unwrap())
}

fn rotated(path: &Path, i: usize) -> PathBuf {
    PathBuf::from(format!("{}.{i}", path.display()))
}

#[test]
fn an_assessment_is_one_json_line_with_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, _clock) = start(file_config(&path, false));
    let input = otp_send();
    let id = AssessmentId(0x2a);
    audit.assessment(
        id,
        &input,
        &Signals::gather(&input, &tollgate::signals::data::DataSet::empty()),
        &throttled(),
    );
    let stats = task.finish_blocking();
    assert_eq!(
        (stats.written, stats.dropped, stats.write_errors),
        (1, 0, 0)
    );

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let lines = parse_lines(&text);
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l["type"], "assessment");
    assert_eq!(l["time"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(l["assessment_id"], "0000000000000000000000000000002a");
    assert_eq!(l["masked"], true);
    assert_eq!(l["event"], "otp_send");
    assert_eq!(l["channel"], "sms");
    assert_eq!(l["phone"], "+336••••••78");
    assert_eq!(l["email"], "j•••@example.com");
    assert_eq!(l["ip"], "192.0.2.0/24");
    assert_eq!(l["device_id"], "de… (13 chars)");
    assert_eq!(l["account_id"], "ac… (10 chars)");
    assert_eq!(l["session_id"], "se… (11 chars)");
    assert_eq!(l["tenant"], "retail");
    assert_eq!(
        l["user_agent"].as_str().unwrap().chars().count(),
        tollgate::audit::USER_AGENT_PREVIEW + 1,
        "a bounded preview and its ellipsis"
    );
    assert_eq!(l["attributes"]["journey"], "password-reset-from-mobi…");
    assert_eq!(
        l["signals"]["phone"],
        serde_json::json!({"calling_code": 33, "region": "FR", "type": "mobile", "valid": true})
    );
    assert_eq!(l["decision"], "block");
    assert_eq!(l["score"], 100);
    assert_eq!(
        l["reasons"],
        serde_json::json!([
            {"code": "phone.backoff", "shadow": false},
            {"code": "ip.datacenter", "shadow": true}
        ])
    );
    assert_eq!(l["retry_after_ms"], 30_000);
    assert!(l.get("step_up").is_none(), "only on step-up decisions");
    assert_eq!(l["policy_version"], "2026-01-01");

    // Nothing identifying is anywhere in the file.
    for raw in [
        &PHONE[1..],
        "jeanne",
        IP,
        DEVICE,
        ACCOUNT,
        SESSION,
        "Safari",
        "from-mobile-app",
    ] {
        assert!(!text.contains(raw), "{raw} leaked: {text}");
    }
}

#[test]
fn unmasked_lines_carry_the_identifiers_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, _clock) = start(file_config(&path, true));
    let input = otp_send();
    audit.assessment(
        AssessmentId(1),
        &input,
        &Signals::gather(&input, &tollgate::signals::data::DataSet::empty()),
        &allowed(),
    );
    audit.report(&report(Some(AssessmentId(1)), Outcome::OtpDelivered));
    let who: Arc<str> = "helpdesk".into();
    let subject = AdminSubject::parse("account_id", ACCOUNT).unwrap();
    audit.admin(&who, "reset_counters", Some(&subject), "", true);
    task.finish_blocking();

    let lines = read_lines(&path);
    let (a, r, adm) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(a["masked"], false);
    assert_eq!(a["phone"], PHONE);
    assert_eq!(a["email"], EMAIL);
    assert_eq!(a["ip"], IP);
    assert_eq!(a["device_id"], DEVICE);
    assert_eq!(a["account_id"], ACCOUNT);
    assert_eq!(a["session_id"], SESSION);
    assert_eq!(a["user_agent"], USER_AGENT);
    assert_eq!(a["attributes"]["journey"], "password-reset-from-mobile-app");
    assert_eq!(r["masked"], false);
    assert_eq!(r["phone"], PHONE);
    assert_eq!(r["account_id"], ACCOUNT);
    assert_eq!(adm["subject"], format!("account {ACCOUNT}"));
}

#[test]
fn reports_carry_the_assessment_id_so_an_otp_trail_can_be_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, clock) = start(file_config(&path, false));

    // Request and send a code, deliver it, a wrong code, then the right one.
    let send = otp_send();
    let send_id = AssessmentId(0x51);
    audit.assessment(
        send_id,
        &send,
        &Signals::gather(&send, &tollgate::signals::data::DataSet::empty()),
        &allowed(),
    );
    clock.advance(Duration::from_secs(2));
    audit.report(&report(Some(send_id), Outcome::OtpDelivered));
    let verify = AssessInput {
        event: Event::OtpVerify,
        ..otp_send()
    };
    let verify_id = AssessmentId(0x52);
    clock.advance(Duration::from_secs(20));
    audit.assessment(
        verify_id,
        &verify,
        &Signals::gather(&verify, &tollgate::signals::data::DataSet::empty()),
        &allowed(),
    );
    audit.report(&report(Some(verify_id), Outcome::OtpWrongCode));
    clock.advance(Duration::from_secs(10));
    audit.report(&report(Some(verify_id), Outcome::OtpVerified));
    // An unrelated assessment, and a report naming none.
    audit.assessment(
        AssessmentId(0x99),
        &send,
        &Signals::gather(&send, &tollgate::signals::data::DataSet::empty()),
        &allowed(),
    );
    audit.report(&report(None, Outcome::LoginSucceeded));
    task.finish_blocking();

    let lines = read_lines(&path);
    let trail = |id: AssessmentId| -> Vec<(String, String)> {
        lines
            .iter()
            .filter(|l| l["assessment_id"] == id.to_string())
            .map(|l| {
                let what = match l["type"].as_str().unwrap() {
                    "assessment" => l["event"].as_str().unwrap(),
                    "report" => l["outcome"].as_str().unwrap(),
                    other => panic!("unexpected {other}"),
                };
                (l["time"].as_str().unwrap().to_owned(), what.to_owned())
            })
            .collect()
    };
    assert_eq!(
        trail(send_id),
        [
            ("2026-01-01T00:00:00.000000Z".into(), "otp_send".into()),
            ("2026-01-01T00:00:02.000000Z".into(), "otp_delivered".into()),
        ]
    );
    assert_eq!(
        trail(verify_id),
        [
            ("2026-01-01T00:00:22.000000Z".into(), "otp_verify".into()),
            (
                "2026-01-01T00:00:22.000000Z".into(),
                "otp_wrong_code".into()
            ),
            ("2026-01-01T00:00:32.000000Z".into(), "otp_verified".into()),
        ]
    );
    let unlinked = lines.last().unwrap();
    assert_eq!(unlinked["type"], "report");
    assert_eq!(unlinked["outcome"], "login_succeeded");
    assert!(unlinked.get("assessment_id").is_none());
    assert_eq!(unlinked["account_id"], "ac… (10 chars)");
}

#[test]
fn admin_calls_are_logged_with_the_caller_and_a_masked_subject() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, _clock) = start(file_config(&path, false));
    let who: Arc<str> = "helpdesk-7".into();
    let phone = AdminSubject::parse("phone_number", PHONE).unwrap();
    audit.admin(&who, "block", Some(&phone), "pumping from +88216", true);
    audit.admin(&who, "reload_policy", None, "", false);
    task.finish_blocking();

    let lines = read_lines(&path);
    assert_eq!(
        lines[0],
        serde_json::json!({
            "type": "admin",
            "time": "2026-01-01T00:00:00.000000Z",
            "masked": true,
            "caller": "helpdesk-7",
            "action": "block",
            "subject": "phone +336••••••78",
            "reason": "pumping from +88216",
            "ok": true
        })
    );
    assert_eq!(
        lines[1],
        serde_json::json!({
            "type": "admin",
            "time": "2026-01-01T00:00:00.000000Z",
            "masked": true,
            "caller": "helpdesk-7",
            "action": "reload_policy",
            "ok": false
        })
    );
}

/// Lines numbered by their assessment id, oldest file first.
fn ids_in(path: &Path, keep: usize) -> Vec<u128> {
    let mut files: Vec<PathBuf> = (1..=keep).rev().map(|i| rotated(path, i)).collect();
    files.push(path.to_owned());
    files
        .iter()
        .filter(|f| f.exists())
        .flat_map(|f| read_lines(f))
        .map(|l| u128::from_str_radix(l["assessment_id"].as_str().unwrap(), 16).unwrap())
        .collect()
}

fn write_numbered(path: &Path, max_bytes: u64, keep: usize, n: u128) {
    let (audit, task, _clock) = start(AuditConfig {
        sink: AuditSink::File {
            path: path.to_owned(),
            max_bytes,
            keep,
        },
        capacity: 65_536,
        unmasked: false,
    });
    let input = otp_send();
    let signals = Signals::gather(&input, &tollgate::signals::data::DataSet::empty());
    for i in 0..n {
        audit.assessment(AssessmentId(i), &input, &signals, &allowed());
    }
    let stats = task.finish_blocking();
    assert_eq!(stats.written, n as u64);
    assert_eq!(stats.dropped, 0);
}

#[test]
fn rotation_by_size_loses_no_line_and_never_exceeds_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let max = 4096;
    // Enough old files to hold everything: every line must be there, in order.
    write_numbered(&path, max, 100, 300);
    assert_eq!(ids_in(&path, 100), (0..300).collect::<Vec<_>>());
    let files = (1..=100).filter(|&i| rotated(&path, i).exists()).count();
    assert!(files >= 5, "expected several rotations, got {files}");
    for f in (1..=files).map(|i| rotated(&path, i)).chain([path.clone()]) {
        let len = std::fs::metadata(&f).unwrap().len();
        assert!(len <= max, "{} is {len} bytes", f.display());
    }
}

#[test]
fn rotation_keeps_only_the_newest_n_old_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    write_numbered(&path, 4096, 2, 300);
    assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
    assert!(!rotated(&path, 3).exists());
    // What is kept is the newest lines, contiguous and in order.
    let ids = ids_in(&path, 2);
    let first = ids[0];
    assert!(first > 0, "the oldest lines were rotated out");
    assert_eq!(ids, (first..300).collect::<Vec<_>>());

    // A restart appends to the current file and goes on rotating.
    write_numbered(&path, 4096, 2, 10);
    assert!(!rotated(&path, 3).exists());
    let ids = ids_in(&path, 2);
    assert_eq!(&ids[ids.len() - 10..], (0..10).collect::<Vec<_>>());
}

/// A sink that blocks on its first write until released, and reports when it
/// got there: the writer thread stuck on a slow disk or a full pipe.
struct Gate {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
    held: bool,
    out: Arc<Mutex<Vec<u8>>>,
}

struct GateControl {
    entered: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
    out: Arc<Mutex<Vec<u8>>>,
}

fn gate() -> (Gate, GateControl) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let out = Arc::new(Mutex::new(Vec::new()));
    (
        Gate {
            entered: entered_tx,
            release: release_rx,
            held: false,
            out: out.clone(),
        },
        GateControl {
            entered: entered_rx,
            release: release_tx,
            out,
        },
    )
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.held {
            self.held = true;
            let _ = self.entered.send(());
            // Released by a message or by the test dropping its end.
            let _ = self.release.recv();
        }
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl GateControl {
    fn wait_until_blocked(&self) {
        self.entered
            .recv_timeout(HANG)
            .expect("the writer reached the sink");
    }

    fn lines(&self) -> Vec<Value> {
        parse_lines(std::str::from_utf8(&self.out.lock().unwrap()).unwrap())
    }
}

fn dropped_metric(rendered: &str) -> f64 {
    rendered
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_audit_dropped_total "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[test]
fn a_blocked_sink_never_holds_the_caller_records_are_dropped_and_counted() {
    let metrics = tollgate::metrics::install();
    let (sink, ctl) = gate();
    let capacity = 8;
    let (audit, task, _clock) = start(AuditConfig {
        sink: AuditSink::Writer(Box::new(sink)),
        capacity,
        unmasked: false,
    });
    let input = otp_send();
    let signals = Signals::gather(&input, &tollgate::signals::data::DataSet::empty());
    let decision = allowed();

    // The first record takes the writer into the sink, where it stays.
    audit.assessment(AssessmentId(0), &input, &signals, &decision);
    ctl.wait_until_blocked();

    // Many thousands of decisions while the sink is stuck. Run them on their
    // own thread so that a `record` that waits fails the test instead of
    // hanging it.
    let n: u64 = 20_000;
    let (done_tx, done_rx) = mpsc::channel();
    let flood = {
        let audit = audit.clone();
        std::thread::spawn(move || {
            for i in 1..=n {
                audit.assessment(AssessmentId(u128::from(i)), &input, &signals, &decision);
            }
            done_tx.send(()).unwrap();
        })
    };
    done_rx
        .recv_timeout(HANG)
        .expect("recording never waits for the sink");
    flood.join().unwrap();

    // The queue took `capacity` records; every other one was dropped and counted.
    let dropped = n - capacity as u64;
    assert_eq!(audit.dropped(), dropped);
    assert_eq!(task.stats().dropped, dropped);
    let rendered = metrics.render();
    assert!(
        rendered.contains("# HELP tollgate_audit_dropped_total"),
        "{rendered}"
    );
    assert!(dropped_metric(&rendered) >= dropped as f64, "{rendered}");

    // Once the sink moves again, what was queued is written.
    ctl.release.send(()).unwrap();
    let stats = task.finish_blocking();
    assert_eq!(stats.written, 1 + capacity as u64);
    assert_eq!(stats.dropped, dropped);
    let ids: Vec<String> = ctl
        .lines()
        .iter()
        .map(|l| l["assessment_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..=capacity as u128)
        .map(|i| AssessmentId(i).to_string())
        .collect();
    assert_eq!(ids, expected);
}

#[test]
fn finish_writes_everything_queued_and_later_records_are_counted_as_dropped() {
    let (sink, ctl) = gate();
    let (audit, task, _clock) = start(AuditConfig {
        sink: AuditSink::Writer(Box::new(sink)),
        capacity: 1_000,
        unmasked: false,
    });
    let input = otp_send();
    let signals = Signals::gather(&input, &tollgate::signals::data::DataSet::empty());
    audit.assessment(AssessmentId(0), &input, &signals, &allowed());
    ctl.wait_until_blocked();
    // Queued behind the stuck write when shutdown starts.
    for i in 1..=500 {
        audit.assessment(AssessmentId(i), &input, &signals, &allowed());
    }
    let (stats_tx, stats_rx) = mpsc::channel();
    let finishing = std::thread::spawn(move || stats_tx.send(task.finish_blocking()).unwrap());
    ctl.release.send(()).unwrap();
    let stats = stats_rx.recv_timeout(HANG).expect("finish returns");
    finishing.join().unwrap();

    assert_eq!(stats.written, 501);
    assert_eq!(stats.dropped, 0);
    let lines = ctl.lines();
    assert_eq!(lines.len(), 501);
    assert_eq!(lines[500]["assessment_id"], AssessmentId(500).to_string());

    // After shutdown nothing is queued for nobody: it is dropped and counted.
    audit.report(&report(Some(AssessmentId(1)), Outcome::OtpVerified));
    assert_eq!(audit.dropped(), 1);
}

#[tokio::test]
async fn async_finish_flushes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, _clock) = start(file_config(&path, false));
    let input = otp_send();
    let signals = Signals::gather(&input, &tollgate::signals::data::DataSet::empty());
    for i in 0..2_000 {
        audit.assessment(AssessmentId(i), &input, &signals, &allowed());
    }
    let stats = task.finish().await;
    assert_eq!(stats.written, 2_000);
    assert_eq!(read_lines(&path).len(), 2_000);
}

#[test]
fn write_errors_are_counted_not_raised() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("no space left on device"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let (audit, task, _clock) = start(AuditConfig {
        sink: AuditSink::Writer(Box::new(Broken)),
        capacity: 100,
        unmasked: false,
    });
    let who: Arc<str> = "ops".into();
    for _ in 0..10 {
        audit.admin(&who, "get_conversion", None, "", true);
    }
    let stats = task.finish_blocking();
    assert_eq!(stats.written, 0);
    assert_eq!(stats.write_errors, 10);
    assert_eq!(stats.dropped, 0);
}

#[test]
fn a_disabled_audit_records_nothing() {
    let audit = Audit::disabled();
    assert!(!audit.is_enabled());
    let input = otp_send();
    audit.assessment(
        AssessmentId(1),
        &input,
        &Signals::gather(&input, &tollgate::signals::data::DataSet::empty()),
        &allowed(),
    );
    audit.report(&report(None, Outcome::OtpDelivered));
    assert_eq!(audit.dropped(), 0);
}

#[test]
fn bad_settings_fail_at_start_and_say_what_is_wrong() {
    let clock: SharedClock = Arc::new(FakeClock::new());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("audit.log");
    let e = Audit::start(file_config(&missing, false), clock.clone()).unwrap_err();
    assert!(matches!(e, AuditError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-dir/audit.log"), "{e}");

    let e = Audit::start(
        AuditConfig {
            capacity: 0,
            ..AuditConfig::default()
        },
        clock.clone(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "audit queue capacity must be 1 to 16777216, got 0"
    );

    let e = Audit::start(
        AuditConfig {
            sink: AuditSink::File {
                path: dir.path().join("audit.log"),
                max_bytes: 0,
                keep: 1,
            },
            ..AuditConfig::default()
        },
        clock,
    )
    .unwrap_err();
    assert!(matches!(e, AuditError::MaxBytes { .. }), "{e:?}");
}

#[test]
fn the_time_is_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, clock) = start(file_config(&path, false));
    clock.advance(Duration::from_nanos(86_400_000_000_000 + 1_500));
    assert_eq!(clock.now_nanos() % 1_000, 500);
    audit.report(&report(None, Outcome::OtpExpired));
    task.finish_blocking();
    assert_eq!(read_lines(&path)[0]["time"], "2026-01-02T00:00:00.000001Z");
}

#[test]
fn step_up_decisions_list_their_methods() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, _clock) = start(file_config(&path, false));
    let input = AssessInput {
        event: Event::Login,
        channel: None,
        phone: None,
        email: None,
        ip: Some("2001:db8:aa:bb::1".parse().unwrap()),
        device_id: None,
        account_id: None,
        session_id: None,
        user_agent: None,
        tenant: None,
        amount_minor: Some(12_500),
        currency: Some("EUR".into()),
        attributes: vec![],
    };
    let d = Decision {
        verdict: Verdict::StepUp,
        score: 60,
        step_up: vec![StepUpMethod::Captcha, StepUpMethod::EmailOtp],
        ..allowed()
    };
    audit.assessment(
        AssessmentId(7),
        &input,
        &Signals::gather(&input, &tollgate::signals::data::DataSet::empty()),
        &d,
    );
    task.finish_blocking();
    let l = &read_lines(&path)[0];
    assert_eq!(l["decision"], "step_up");
    assert_eq!(l["step_up"], serde_json::json!(["captcha", "email_otp"]));
    assert_eq!(l["ip"], "2001:db8:aa::/48");
    assert_eq!(l["amount_minor"], 12_500);
    assert_eq!(l["currency"], "EUR");
    assert_eq!(l["signals"], serde_json::json!({}));
    for absent in ["channel", "phone", "email", "attributes", "retry_after_ms"] {
        assert!(l.get(absent).is_none(), "{absent} should be left out: {l}");
    }
}

#[tokio::test]
async fn records_offered_during_shutdown_are_written_or_counted_never_lost() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let (sink, ctl) = gate();
    let capacity = 64;
    let (audit, task, _clock) = start(AuditConfig {
        sink: AuditSink::Writer(Box::new(sink)),
        capacity,
        unmasked: false,
    });
    let input = otp_send();
    let signals = Signals::gather(&input, &tollgate::signals::data::DataSet::empty());
    audit.assessment(AssessmentId(0), &input, &signals, &allowed());
    ctl.wait_until_blocked();
    for i in 1..=10 {
        audit.assessment(AssessmentId(i), &input, &signals, &allowed());
    }
    // Shutdown starts while the sink is stuck: one poll queues the stop
    // marker behind records 1..=10 (there is room), then finish waits.
    let mut finish = std::pin::pin!(task.finish());
    let poll = finish
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(poll, Poll::Pending));
    // Records keep coming: some fit behind the marker, the rest are dropped.
    let offered_late: u64 = 5_000;
    for i in 0..offered_late {
        audit.assessment(
            AssessmentId(1_000 + u128::from(i)),
            &input,
            &signals,
            &allowed(),
        );
    }
    let behind_marker = capacity as u64 - 11;
    assert_eq!(audit.dropped(), offered_late - behind_marker);

    ctl.release.send(()).unwrap();
    let stats = tokio::time::timeout(HANG, finish)
        .await
        .expect("finish returns");
    // Those that fit behind the marker were written, not lost with the queue.
    assert_eq!(stats.written, capacity as u64);
    assert_eq!(
        stats.written + stats.dropped,
        11 + offered_late,
        "{stats:?}"
    );
    assert_eq!(ctl.lines().len() as u64, stats.written);
    // And after the queue closed, offers are counted as dropped.
    audit.report(&report(None, Outcome::OtpVerified));
    assert_eq!(audit.dropped(), stats.dropped + 1);
}

/// The examples in the module documentation, byte for byte.
#[test]
fn the_documented_examples_are_what_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (audit, task, clock) = start(file_config(&path, false));
    let input = AssessInput {
        event: Event::OtpSend,
        channel: Some(Channel::Sms),
        phone: Some(PHONE.parse().unwrap()),
        email: None,
        ip: Some(IP.parse().unwrap()),
        device_id: None,
        account_id: Some("acct-0042".into()),
        session_id: None,
        user_agent: None,
        tenant: None,
        amount_minor: None,
        currency: None,
        attributes: vec![],
    };
    let decision = Decision {
        reasons: throttled().reasons[..1].to_vec(),
        ..throttled()
    };
    audit.assessment(
        AssessmentId(0x2a),
        &input,
        &Signals::gather(&input, &tollgate::signals::data::DataSet::empty()),
        &decision,
    );
    clock.advance(Duration::from_secs(5));
    audit.report(&ReportInput {
        assessment_id: Some(AssessmentId(0x2a)),
        outcome: Outcome::OtpVerified,
        phone: None,
        email: None,
        account_id: Some("acct-0042".into()),
        session_id: None,
        device_id: None,
        tenant: None,
    });
    clock.advance(Duration::from_secs(55));
    let who: Arc<str> = "helpdesk".into();
    let prefix = AdminSubject::parse("prefix", "+88216").unwrap();
    audit.admin(&who, "block", Some(&prefix), "pumping", true);
    task.finish_blocking();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"type":"assessment","time":"2026-01-01T00:00:00.000000Z","assessment_id":"0000000000000000000000000000002a","masked":true,"event":"otp_send","channel":"sms","phone":"+336••••••78","account_id":"ac… (9 chars)","ip":"192.0.2.0/24","signals":{"phone":{"calling_code":33,"region":"FR","type":"mobile","valid":true}},"decision":"block","score":100,"reasons":[{"code":"phone.backoff","shadow":false}],"retry_after_ms":30000,"policy_version":"2026-01-01"}"#,
            r#"{"type":"report","time":"2026-01-01T00:00:05.000000Z","assessment_id":"0000000000000000000000000000002a","masked":true,"outcome":"otp_verified","account_id":"ac… (9 chars)"}"#,
            r#"{"type":"admin","time":"2026-01-01T00:01:00.000000Z","masked":true,"caller":"helpdesk","action":"block","subject":"prefix +88216","reason":"pumping","ok":true}"#,
        ]
    );
}
