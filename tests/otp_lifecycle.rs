//! The OTP lifecycle end to end over gRPC with a fake clock: sessions, account
//! locks and help-desk resets, unverified sends, budgets, conversion
//! protection.

mod common;

use common::*;
use std::time::Duration;
use tollgate::proto::v1 as pb;

fn send(phone: &str, session: &str) -> pb::AssessRequest {
    pb::AssessRequest {
        session_id: session.into(),
        account_id: "acct-1".into(),
        ..otp_send(phone, "")
    }
}

fn verify(session: &str) -> pb::AssessRequest {
    pb::AssessRequest {
        event: pb::Event::OtpVerify as i32,
        channel: pb::Channel::Sms as i32,
        phone_number: "+33612345678".into(),
        session_id: session.into(),
        account_id: "acct-1".into(),
        ..Default::default()
    }
}

fn outcome(session: &str, o: pb::Outcome) -> pb::ReportRequest {
    pb::ReportRequest {
        session_id: session.into(),
        outcome: o as i32,
        ..Default::default()
    }
}

/// `OTP_VERIFIED` for the code of assessment `id`.
fn verified(id: &str) -> pb::ReportRequest {
    pb::ReportRequest {
        assessment_id: id.into(),
        outcome: pb::Outcome::OtpVerified as i32,
        ..Default::default()
    }
}

fn subject_account(a: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        kind: Some(pb::subject::Kind::AccountId(a.into())),
    })
}

/// The default policy's backoff between two sends to one number is at most this
/// long for the first few sends.
const PAST_BACKOFF: Duration = Duration::from_secs(300);

#[tokio::test]
async fn three_wrong_codes_then_a_new_code() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let r = c
        .assess(send("+33612345678", "s1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    for i in 0..3 {
        let v = c.assess(verify("s1")).await.unwrap().into_inner();
        assert_eq!(decision(&v), pb::Decision::Allow, "attempt {i}: {v:?}");
        c.report(outcome("s1", pb::Outcome::OtpWrongCode))
            .await
            .unwrap();
    }
    let v = c.assess(verify("s1")).await.unwrap().into_inner();
    assert_eq!(decision(&v), pb::Decision::Block);
    assert_eq!(codes(&v), vec!["session.code_attempts"]);
    // Still refused until a new code is sent.
    srv.advance(Duration::from_secs(40));
    assert_eq!(
        codes(&c.assess(verify("s1")).await.unwrap().into_inner()),
        vec!["session.code_attempts"]
    );
    let r = c
        .assess(send("+33612345678", "s1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    let v = c.assess(verify("s1")).await.unwrap().into_inner();
    assert_eq!(
        decision(&v),
        pb::Decision::Allow,
        "a new code has its own attempts: {v:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn resend_limit_then_failed_session() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    for i in 0..3 {
        let r = c
            .assess(send("+33612345678", "s2"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow, "send {i}: {r:?}");
        srv.advance(PAST_BACKOFF);
    }
    let r = c
        .assess(send("+33612345678", "s2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Block);
    assert_eq!(codes(&r), vec!["session.max_sends"]);
    // The session is failed: later sends are refused too, and so is verifying.
    srv.advance(PAST_BACKOFF);
    let r = c
        .assess(send("+33612345678", "s2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r), vec!["session.max_sends"]);
    let mut admin = srv.admin(Some(ADMIN_TOKEN)).await;
    let st = admin
        .get_subject(pb::GetSubjectRequest {
            subject: Some(pb::Subject {
                kind: Some(pb::subject::Kind::SessionId("s2".into())),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert!(st.session_failed);
    assert_eq!(st.session_sends, 3);
    // A new session may start.
    let r = c
        .assess(send("+33612345678", "s3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn destination_changes_once_and_never_across_channels() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    assert_eq!(
        decision(
            &c.assess(send("+33612345678", "s4"))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::Decision::Allow
    );
    // To e-mail: another channel, refused with its own reason.
    let email = pb::AssessRequest {
        channel: pb::Channel::Email as i32,
        phone_number: String::new(),
        email: "user@example.com".into(),
        ..send("", "s4")
    };
    let r = c.assess(email).await.unwrap().into_inner();
    assert_eq!(codes(&r), vec!["session.channel_change"], "{r:?}");
    // One change of number is fine.
    let r = c
        .assess(send("+33698765432", "s4"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    // A second is not.
    srv.advance(PAST_BACKOFF);
    let r = c
        .assess(send("+33611111111", "s4"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r), vec!["session.destination_change"], "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn codes_expire() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    c.assess(send("+33612345678", "s5")).await.unwrap();
    srv.advance(Duration::from_secs(299));
    assert_eq!(
        decision(&c.assess(verify("s5")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    srv.advance(Duration::from_secs(1));
    let v = c.assess(verify("s5")).await.unwrap().into_inner();
    assert_eq!(codes(&v), vec!["session.code_expired"]);
    srv.stop().await;
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_until_a_help_desk_reset() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let login = pb::AssessRequest {
        event: pb::Event::Login as i32,
        account_id: "acct-lock".into(),
        ..Default::default()
    };
    let failed = pb::ReportRequest {
        account_id: "acct-lock".into(),
        outcome: pb::Outcome::LoginFailed as i32,
        ..Default::default()
    };
    // A success in between ends the run of failures.
    for _ in 0..4 {
        c.report(failed.clone()).await.unwrap();
    }
    c.report(pb::ReportRequest {
        outcome: pb::Outcome::LoginSucceeded as i32,
        ..failed.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        decision(&c.assess(login.clone()).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    for _ in 0..5 {
        c.report(failed.clone()).await.unwrap();
    }
    let r = c.assess(login.clone()).await.unwrap().into_inner();
    assert_eq!(decision(&r), pb::Decision::Block);
    assert_eq!(codes(&r), vec!["account.locked"]);
    assert!(
        r.retry_after.is_none(),
        "locked until a reset, not for a time"
    );
    // Time does not unlock it, nor does a success.
    srv.advance(Duration::from_secs(86_400));
    c.report(pb::ReportRequest {
        outcome: pb::Outcome::LoginSucceeded as i32,
        ..failed.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        codes(&c.assess(login.clone()).await.unwrap().into_inner()),
        vec!["account.locked"]
    );
    // The help desk sees it and resets it.
    let mut admin = srv.admin(Some(ADMIN_TOKEN)).await;
    let st = admin
        .get_subject(pb::GetSubjectRequest {
            subject: subject_account("acct-lock"),
        })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert!(st.locked);
    assert_eq!(st.consecutive_failures, 5);
    let after = admin
        .reset_counters(pb::ResetCountersRequest {
            subject: subject_account("acct-lock"),
            scope: pb::ResetScope::Failures as i32,
            reason: "caller identified, ticket 4711".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert!(!after.locked);
    assert_eq!(after.consecutive_failures, 0);
    assert_eq!(
        decision(&c.assess(login).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    srv.stop().await;
}

const UNVERIFIED: &str = r#"
version = "unverified-test"
[account]
max_unverified_sends = 3
[phone]
max_unverified_sends = 5
"#;

#[tokio::test]
async fn unverified_sends_block_until_verified_or_reset() {
    let srv = TestServer::start(UNVERIFIED).await;
    let mut c = srv.client().await;
    let numbers = [
        "+33611111111",
        "+33622222222",
        "+33633333333",
        "+33644444444",
    ];
    let mut ids = Vec::new();
    for n in &numbers[..3] {
        let r = c.assess(send(n, "")).await.unwrap().into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow);
        ids.push(r.assessment_id);
    }
    let r = c.assess(send(numbers[3], "")).await.unwrap().into_inner();
    assert_eq!(codes(&r), vec!["account.unverified_sends"], "{r:?}");
    // A verification of any of those codes lifts it.
    c.report(verified(&ids[0])).await.unwrap();
    assert_eq!(
        decision(&c.assess(send(numbers[3], "")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );
    // Three more without verification: refused again, until the help desk resets.
    for n in &numbers[..2] {
        assert_eq!(
            decision(&c.assess(send(n, "")).await.unwrap().into_inner()),
            pb::Decision::Allow
        );
    }
    assert_eq!(
        codes(&c.assess(send(numbers[2], "")).await.unwrap().into_inner()),
        vec!["account.unverified_sends"]
    );
    let mut admin = srv.admin(Some(ADMIN_TOKEN)).await;
    let st = admin
        .reset_counters(pb::ResetCountersRequest {
            subject: subject_account("acct-1"),
            scope: pb::ResetScope::Sends as i32,
            reason: "customer confirmed".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap();
    assert_eq!(st.unverified_sends, 0);
    assert_eq!(
        decision(&c.assess(send(numbers[2], "")).await.unwrap().into_inner()),
        pb::Decision::Allow
    );

    // Per number too: five codes to one number from different accounts.
    let n = "+33655555555";
    for i in 0..5 {
        let mut r = send(n, "");
        r.account_id = format!("other-{i}");
        assert_eq!(
            decision(&c.assess(r).await.unwrap().into_inner()),
            pb::Decision::Allow
        );
    }
    let mut r = send(n, "");
    r.account_id = "other-9".into();
    assert_eq!(
        codes(&c.assess(r).await.unwrap().into_inner()),
        vec!["phone.unverified_sends"]
    );
    srv.stop().await;
}

const BUDGET: &str = r#"
version = "budget-test"
[costs]
default = 1
FR = 5
[[limit]]
id = "budget.country_daily"
key = "phone_country"
events = ["otp_send"]
rate = "20/1d"
cost = true
count = "allowed"
action = "step_up"
step_up_methods = ["email_otp", "knowledge_factor"]
"#;

#[tokio::test]
async fn a_spent_budget_turns_sends_into_step_up() {
    let srv = TestServer::start(BUDGET).await;
    let mut c = srv.client().await;
    // 20 units a day; a French code costs 5: four codes.
    for i in 0..4 {
        let r = c
            .assess(otp_send(&format!("+3361234560{i}"), ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow, "{i}: {r:?}");
    }
    let r = c
        .assess(otp_send("+33612345699", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::StepUp, "{r:?}");
    assert_eq!(codes(&r), vec!["budget.country_daily"]);
    assert_eq!(
        r.step_up,
        vec![
            pb::StepUpMethod::EmailOtp as i32,
            pb::StepUpMethod::KnowledgeFactor as i32
        ]
    );
    // Refused sends spent nothing; another country has its own budget (cost 1).
    let r = c
        .assess(otp_send("+447400123456", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow);
    // A day refills it (a token bucket: a fifth of a day gives one French code).
    srv.advance(Duration::from_secs(86_400 / 4));
    let r = c
        .assess(otp_send("+33612345699", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    srv.stop().await;
}

/// Added to the budget above: one code an hour per IP, counted on every
/// attempt.
const IP_LIMIT: &str = r#"
[[limit]]
id = "limit.ip"
key = "ip"
events = ["otp_send"]
rate = "1/1h"
burst = 1
action = "block"
"#;

#[tokio::test]
async fn a_send_refused_by_another_rule_spends_no_budget() {
    let srv = TestServer::start(&format!("{BUDGET}{IP_LIMIT}")).await;
    let mut c = srv.client().await;
    let send = |i: u32, ip: &str| otp_send(&format!("+336123456{i:02}"), ip);
    // The budget holds four French codes (20 units, 5 each).
    let r = c.assess(send(0, "192.0.2.1")).await.unwrap().into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    // Refused by the IP limit: the budget passed them (it had room) and
    // gives back what it took.
    for i in 1..10 {
        let r = c.assess(send(i, "192.0.2.1")).await.unwrap().into_inner();
        assert_eq!(decision(&r), pb::Decision::Block, "{i}: {r:?}");
        assert_eq!(codes(&r), vec!["limit.ip"]);
    }
    // Three more codes from other IPs fit; the fourth does not.
    for i in 10..13 {
        let ip = format!("192.0.2.{i}");
        let r = c.assess(send(i, &ip)).await.unwrap().into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow, "{i}: {r:?}");
    }
    let r = c.assess(send(13, "192.0.2.13")).await.unwrap().into_inner();
    assert_eq!(codes(&r), vec!["budget.country_daily"], "{r:?}");
    srv.stop().await;
}

const CONVERSION: &str = r#"
version = "conversion-test"
[conversion]
window = "1h"
min_sends = 10
min_ratio = 0.3
protect_for = "30m"
prefix_digits = 3
action = "block"
"#;

#[tokio::test]
async fn a_refused_send_is_not_counted_in_its_conversion_windows() {
    let srv = TestServer::start(&format!("{CONVERSION}{IP_LIMIT}")).await;
    let mut c = srv.client().await;
    // One code allowed, then four refused by the IP limit: the store counts a
    // send in its windows at the check, and a refused one is given back.
    let mut refused = Vec::new();
    for i in 0..5 {
        let r = c
            .assess(otp_send(&format!("+3361200001{i}"), "192.0.2.1"))
            .await
            .unwrap()
            .into_inner();
        let expected = if i == 0 {
            pb::Decision::Allow
        } else {
            refused.push(r.assessment_id.clone());
            pb::Decision::Block
        };
        assert_eq!(decision(&r), expected, "{i}: {r:?}");
    }
    // A code reported verified for a refused send (a client's mistake, or a
    // code that went by another way after a step-up) counts in no window:
    // its send does not either.
    c.report(verified(&refused[0])).await.unwrap();
    let sent_once = |s: &str| (s.to_string(), 1, 0);
    assert_eq!(
        fr_counts(&srv).await,
        [sent_once("+33612"), sent_once("FR")]
    );
    srv.stop().await;
}

/// Sent and verified counts of FR's windows, as the admin API lists them.
async fn fr_counts(srv: &TestServer) -> Vec<(String, u64, u64)> {
    let mut admin = srv.admin(Some(ADMIN_TOKEN)).await;
    let conv = admin
        .get_conversion(pb::GetConversionRequest {
            country: "FR".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut counts: Vec<_> = conv
        .entries
        .iter()
        .map(|e| (e.subject.clone(), e.sent, e.verified))
        .collect();
    counts.sort();
    counts
}

#[tokio::test]
async fn a_code_sent_by_email_counts_in_no_window_sent_or_verified() {
    let srv = TestServer::start(CONVERSION).await;
    let mut c = srv.client().await;
    // A code by SMS, verified: one send and one verification in each window.
    let sms = c
        .assess(otp_send("+33612000010", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&sms), pb::Decision::Allow, "{sms:?}");
    c.report(verified(&sms.assessment_id)).await.unwrap();
    // A code by email to a customer whose number is known, verified: the
    // windows count codes sent to phones, so neither its send nor its
    // verification counts (a verification without its send would hide a
    // pumped range's unverified sends).
    let email = c
        .assess(pb::AssessRequest {
            channel: pb::Channel::Email as i32,
            email: "customer@example.com".into(),
            ..otp_send("+33612000011", "")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&email), pb::Decision::Allow, "{email:?}");
    // The report names the number as well: the assessment's windows (none)
    // win over the number's.
    c.report(pb::ReportRequest {
        phone_number: "+33612000011".into(),
        ..verified(&email.assessment_id)
    })
    .await
    .unwrap();
    let one_each = |s: &str| (s.to_string(), 1, 1);
    assert_eq!(fr_counts(&srv).await, [one_each("+33612"), one_each("FR")]);
    srv.stop().await;
}

#[tokio::test]
async fn a_report_naming_the_code_check_counts_as_its_send_verified() {
    let srv = TestServer::start(CONVERSION).await;
    let mut c = srv.client().await;
    // Two codes, by SMS and by WhatsApp; each code check is assessed, and the
    // report names the check's assessment, not the send's.
    for (i, channel) in [(0, pb::Channel::Sms), (1, pb::Channel::Whatsapp)] {
        let phone = format!("+3361200002{i}");
        let session = format!("check-{i}");
        let sent = c
            .assess(pb::AssessRequest {
                channel: channel as i32,
                session_id: session.clone(),
                ..otp_send(&phone, "")
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&sent), pb::Decision::Allow, "{sent:?}");
        let check = c
            .assess(pb::AssessRequest {
                event: pb::Event::OtpVerify as i32,
                channel: channel as i32,
                phone_number: phone,
                session_id: session,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&check), pb::Decision::Allow, "{check:?}");
        c.report(verified(&check.assessment_id)).await.unwrap();
    }
    let both = |s: &str| (s.to_string(), 2, 2);
    assert_eq!(fr_counts(&srv).await, [both("+33612"), both("FR")]);
    srv.stop().await;
}

#[tokio::test]
async fn a_refused_code_check_counts_nothing_and_a_report_counts_once() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let sent = c
        .assess(send("+33612345678", "s1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&sent), pb::Decision::Allow, "{sent:?}");
    for _ in 0..3 {
        c.assess(verify("s1")).await.unwrap();
        c.report(outcome("s1", pb::Outcome::OtpWrongCode))
            .await
            .unwrap();
    }
    let refused = c.assess(verify("s1")).await.unwrap().into_inner();
    assert_eq!(codes(&refused), vec!["session.code_attempts"]);
    // A code reported verified against the refused check counts nowhere.
    c.report(verified(&refused.assessment_id)).await.unwrap();
    // Every FR window (country and range) at these counts.
    let all_at =
        |v: &[(String, u64, u64)], counts| !v.is_empty() && v.iter().all(|e| (e.1, e.2) == counts);
    let fr = fr_counts(&srv).await;
    assert!(all_at(&fr, (1, 0)), "{fr:?}");
    // Reported against its send: counted once, however often it is retried.
    for _ in 0..3 {
        c.report(verified(&sent.assessment_id)).await.unwrap();
    }
    let fr = fr_counts(&srv).await;
    assert!(all_at(&fr, (1, 1)), "{fr:?}");
    srv.stop().await;
}

#[tokio::test]
async fn a_pumped_range_is_protected_while_a_converting_country_is_not_then_recovers() {
    let srv = TestServer::start(CONVERSION).await;
    let mut c = srv.client().await;
    let mut pumped_ids = Vec::new();
    for i in 0..10 {
        // Pumping: ten numbers in +33 612, nobody ever enters a code.
        let r = c
            .assess(otp_send(&format!("+336120000{i:02}"), ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
        pumped_ids.push(r.assessment_id);
        // Meanwhile British users verify their codes.
        let g = c
            .assess(otp_send(&format!("+4474001234{i:02}"), ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision(&g), pb::Decision::Allow);
        c.report(verified(&g.assessment_id)).await.unwrap();
    }
    let r = c
        .assess(otp_send("+33612000099", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Block, "{r:?}");
    assert_eq!(codes(&r), vec!["conversion.low"]);
    assert_eq!(retry_secs(&r), Some(1800.0));
    let g = c
        .assess(otp_send("+447400123499", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decision(&g),
        pb::Decision::Allow,
        "a converting country is untouched: {g:?}"
    );

    // The fraud team sees the range under protection.
    let mut admin = srv.admin(Some(ADMIN_TOKEN)).await;
    let conv = admin
        .get_conversion(pb::GetConversionRequest {
            country: "FR".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let range = conv
        .entries
        .iter()
        .find(|e| e.subject == "+33612")
        .expect("the range is listed");
    assert_eq!(
        (range.scope.as_str(), range.sent, range.verified),
        ("prefix", 10, 0)
    );
    assert!(range.protected);
    assert!(conv
        .entries
        .iter()
        .all(|e| !e.subject.starts_with("+44") && e.subject != "GB"));
    let gb = admin
        .get_conversion(pb::GetConversionRequest {
            country: "GB".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // 10 of 11 British codes verified (the last was sent after the pumping).
    assert!(!gb.entries.is_empty());
    assert!(
        gb.entries
            .iter()
            .all(|e| !e.protected && e.sent == 11 && e.verified == 10),
        "{gb:?}"
    );

    // Late verifications bring the ratio back above 30 %: protection lifts.
    for id in &pumped_ids[..4] {
        c.report(verified(id)).await.unwrap();
    }
    let r = c
        .assess(otp_send("+33612000099", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "recovered: {r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn protection_ends_with_its_duration_once_the_window_has_moved_on() {
    let srv = TestServer::start(CONVERSION).await;
    let mut c = srv.client().await;
    for i in 0..10 {
        c.assess(otp_send(&format!("+336120000{i:02}"), ""))
            .await
            .unwrap();
    }
    assert_eq!(
        codes(
            &c.assess(otp_send("+33612000099", ""))
                .await
                .unwrap()
                .into_inner()
        ),
        vec!["conversion.low"]
    );
    srv.advance(Duration::from_secs(29 * 60));
    assert_eq!(
        decision(
            &c.assess(otp_send("+33612000099", ""))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::Decision::Block
    );
    // After the window and the protection, the old sends have slid out.
    srv.advance(Duration::from_secs(35 * 60));
    assert_eq!(
        decision(
            &c.assess(otp_send("+33612000099", ""))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::Decision::Allow
    );
    srv.stop().await;
}
