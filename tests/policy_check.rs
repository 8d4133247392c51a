//! Policy rejections, one fixture per rejection with the exact expected message.
//!
//! `tests/policy/invalid/NAME.toml` is a policy the compiler must refuse and
//! `NAME.err` the exact text it must print, one `FILE:LINE: message` per line,
//! with the file name written as `FILE`. To add a rejection, add a pair; to
//! change a message, change its `.err`.

use std::fs;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tollgate::decision::StepUpMethod;
use tollgate::policy::{compile, Action, Count, KeyKind, Quota};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/policy")
        .join(dir)
}

/// The invalid fixtures, sorted, each with its expected error text: FILE
/// replaced by the path, without the final newline.
fn invalid_fixtures() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(fixtures("invalid")).expect("tests/policy/invalid") {
        let toml = entry.unwrap().path();
        if toml.extension().is_some_and(|e| e == "toml") {
            let err = toml.with_extension("err");
            let expected = fs::read_to_string(&err)
                .unwrap_or_else(|e| panic!("{}: no expected .err file: {e}", toml.display()));
            let name = toml.display().to_string();
            let expected = expected.trim_end_matches('\n').replace("FILE", &name);
            out.push((toml, expected));
        }
    }
    out.sort();
    out
}

#[test]
fn every_invalid_fixture_is_rejected_with_its_exact_message() {
    let all = invalid_fixtures();
    assert!(!all.is_empty(), "no fixtures in tests/policy/invalid");

    // An .err without its .toml would be a rejection that is never checked.
    for entry in fs::read_dir(fixtures("invalid")).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            path.extension().is_some_and(|e| e == "toml")
                || (path.extension().is_some_and(|e| e == "err")
                    && path.with_extension("toml").is_file()),
            "{}: not part of a NAME.toml + NAME.err pair",
            path.display()
        );
    }

    let mut failures = Vec::new();
    for (path, expected) in &all {
        let name = path.display().to_string();
        let src = fs::read_to_string(path).unwrap();
        match compile(&name, &src) {
            Ok(_) => failures.push(format!("{name}: compiled, expected:\n{expected}")),
            Err(e) => {
                let got = e.to_string();
                if got != *expected {
                    failures.push(format!(
                        "{name}:\n  expected: {expected:?}\n  got:      {got:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}

#[test]
fn check_policy_prints_every_problem_and_exits_1() {
    let path = fixtures("invalid").join("several_problems.toml");
    let expected = fs::read_to_string(path.with_extension("err"))
        .unwrap()
        .replace("FILE", &path.display().to_string());
    assert!(
        expected.lines().count() > 1,
        "the fixture should have several problems"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("check-policy")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8(out.stderr).unwrap(), expected);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "");
}

#[test]
fn check_policy_accepts_the_default_policy() {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check-policy", "rules/default.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("rules/default.toml: ok (version "),
        "{stdout:?}"
    );
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[test]
fn the_full_fixture_compiles_every_feature() {
    let path = fixtures("valid").join("full.toml");
    let src = fs::read_to_string(&path).unwrap();
    let p = compile("full.toml", &src).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(&*p.version, "full-1");
    assert!(p.shadow);
    assert_eq!((p.step_up_at, p.block_at), (30, 70));
    assert_eq!(
        p.step_up_methods,
        [
            StepUpMethod::PushApproval,
            StepUpMethod::EmailOtp,
            StepUpMethod::Captcha
        ]
    );

    // One limit per key kind, in file order, then the backoff.
    assert_eq!(p.limits.len(), 10);
    let keys: Vec<KeyKind> = p.limits.iter().map(|l| l.key).collect();
    assert_eq!(
        keys,
        [
            KeyKind::Ip,
            KeyKind::Subnet { v4: 22, v6: 48 },
            KeyKind::Device,
            KeyKind::Account,
            KeyKind::Phone,
            KeyKind::PhonePrefix { digits: 4 },
            KeyKind::PhoneCountry,
            KeyKind::Session,
            KeyKind::Tenant,
            KeyKind::Global,
        ]
    );
    assert_eq!(p.rule_ids().count(), 11);
    assert_eq!(p.rule_ids().last(), Some("backoff.phone"));

    let limit = |id: &str| p.limits.iter().find(|l| &*l.rule.id == id).unwrap();

    // "5/1h", burst 3: one cell every 12 minutes, three at once.
    let phone = limit("limit.phone");
    assert_eq!(
        phone.quota,
        Quota::with_period(Duration::from_secs(720))
            .unwrap()
            .allow_burst(nz(3))
    );
    assert_eq!(phone.count, Count::Allowed);
    assert_eq!(phone.rule.action, Action::Block);
    assert_eq!(phone.rule.points, 100);
    // Burst defaults to COUNT; "10/h" reads as "10/1h".
    assert_eq!(
        limit("limit.device").quota,
        Quota::with_period(Duration::from_secs(360))
            .unwrap()
            .allow_burst(nz(10))
    );
    assert_eq!(
        &*limit("limit.device").rule.message,
        "too many requests from this device"
    );
    assert_eq!(limit("limit.session").count, Count::Attempts);
    assert_eq!(limit("limit.ip").count, Count::Attempts);

    // Every action: step_up with the scoring methods or its own, and score.
    assert_eq!(
        limit("limit.ip").rule.action,
        Action::StepUp(p.step_up_methods.clone())
    );
    assert_eq!(limit("limit.ip").rule.points, 30);
    assert_eq!(
        limit("limit.account").rule.action,
        Action::StepUp(vec![StepUpMethod::Captcha, StepUpMethod::KnowledgeFactor])
    );
    assert_eq!(limit("limit.tenant").rule.points, 35);
    assert_eq!(limit("limit.subnet").rule.action, Action::Score);
    assert_eq!(limit("limit.phone_prefix").rule.points, 50);

    // Per-rule shadow.
    assert!(limit("limit.phone_country").rule.shadow);
    assert!(!phone.rule.shadow);

    // Events and channels scope a rule; omitted, they match everything.
    use tollgate::request::{Channel, Event};
    assert!(phone.rule.applies(Event::OtpSend, Some(Channel::Sms)));
    assert!(!phone.rule.applies(Event::OtpSend, Some(Channel::Email)));
    assert!(!phone.rule.applies(Event::OtpSend, None));
    assert!(!phone.rule.applies(Event::Login, Some(Channel::Sms)));
    let tenant = &limit("limit.tenant").rule;
    assert!(tenant.applies(Event::Login, Some(Channel::Push)));
    assert!(!tenant.applies(Event::Login, Some(Channel::Sms)));
    assert!(limit("limit.ip").rule.applies(Event::Transaction, None));

    let backoff = p.backoff.as_ref().expect("backoff");
    assert_eq!(backoff.params.base, Duration::from_secs(20));
    assert_eq!(backoff.params.factor, 3.0);
    assert_eq!(backoff.params.cap, Duration::from_secs(600));
    assert_eq!(backoff.params.reset_after, Duration::from_secs(7200));
    assert_eq!(
        backoff.rule.action,
        Action::StepUp(vec![StepUpMethod::ReverseSms])
    );
    assert_eq!(
        &*backoff.rule.message,
        "wait before asking for another code"
    );
    assert!(backoff.rule.applies(Event::OtpSend, Some(Channel::Voice)));
    assert!(!backoff
        .rule
        .applies(Event::OtpSend, Some(Channel::Whatsapp)));
}
