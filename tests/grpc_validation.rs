//! Malformed requests get INVALID_ARGUMENT with the offending field named in a
//! google.rpc.BadRequest field violation, and change no state.

mod common;

use common::*;
use tollgate::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

fn base() -> pb::AssessRequest {
    otp_send("+33612345678", "192.0.2.1")
}

/// The fields named in the BadRequest detail of an INVALID_ARGUMENT status.
async fn rejected_fields(
    c: &mut RiskServiceClient<tonic::transport::Channel>,
    r: pb::AssessRequest,
) -> Vec<String> {
    let err = c
        .assess(r.clone())
        .await
        .expect_err(&format!("{r:?} should be rejected"));
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let bad = err.get_details_bad_request().expect("BadRequest detail");
    assert!(!bad.field_violations.is_empty());
    for v in &bad.field_violations {
        assert!(!v.description.is_empty());
        assert!(
            err.message().contains(&v.field),
            "message names {}: {}",
            v.field,
            err.message()
        );
    }
    bad.field_violations.into_iter().map(|v| v.field).collect()
}

#[tokio::test]
async fn each_malformed_field_is_named() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let long = |n: usize| "a".repeat(n);

    type Spoil = Box<dyn Fn(&mut pb::AssessRequest)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("event", Box::new(|r| r.event = 0)),
        ("event", Box::new(|r| r.event = 99)),
        ("channel", Box::new(|r| r.channel = 0)),
        ("channel", Box::new(|r| r.channel = 42)),
        ("phone_number", Box::new(|r| r.phone_number.clear())),
        (
            "phone_number",
            Box::new(|r| r.phone_number = "33612345678".into()),
        ),
        (
            "phone_number",
            Box::new(|r| r.phone_number = "+3361234567x".into()),
        ),
        (
            "phone_number",
            Box::new(|r| r.phone_number = "+1234567890123456".into()),
        ),
        (
            "phone_number",
            Box::new(|r| r.phone_number = "+0612345678".into()),
        ),
        (
            "phone_number",
            Box::new(|r| r.phone_number = "+３３６１２３４５６７８".into()),
        ),
        (
            "phone_number",
            Box::new(|r| r.phone_number = "+٣٣٦١٢٣٤٥٦٧٨".into()),
        ),
        (
            "phone_number",
            Box::new(|r| r.phone_number = "＋33612345678".into()),
        ),
        ("ip", Box::new(|r| r.ip = "0127.0.0.1".into())),
        ("ip", Box::new(|r| r.ip = "1.2.3".into())),
        ("ip", Box::new(|r| r.ip = "fe80::1%eth0".into())),
        ("ip", Box::new(|r| r.ip = "example.com".into())),
        ("device_id", Box::new(move |r| r.device_id = long(129))),
        ("device_id", Box::new(|r| r.device_id = "dev\u{0}1".into())),
        ("account_id", Box::new(move |r| r.account_id = long(129))),
        ("account_id", Box::new(|r| r.account_id = "acct\n1".into())),
        ("session_id", Box::new(move |r| r.session_id = long(129))),
        (
            "session_id",
            Box::new(|r| r.session_id = "s\u{1b}[31m".into()),
        ),
        ("user_agent", Box::new(move |r| r.user_agent = long(513))),
        (
            "user_agent",
            Box::new(|r| r.user_agent = "UA\r\nX-Injected: 1".into()),
        ),
        ("tenant", Box::new(move |r| r.tenant = long(65))),
        ("email", Box::new(|r| r.email = "not-an-address".into())),
        ("currency", Box::new(|r| r.currency = "eur".into())),
        ("amount_minor", Box::new(|r| r.amount_minor = -5)),
        (
            "attributes",
            Box::new(|r| {
                r.attributes = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
            }),
        ),
        (
            "attributes",
            Box::new(|r| {
                r.attributes.insert("k\u{7}".into(), "v".into());
            }),
        ),
        (
            "attributes[k]",
            Box::new(move |r| {
                r.attributes.insert("k".into(), long(257));
            }),
        ),
    ];
    for (field, mutate) in &cases {
        let mut r = base();
        mutate(&mut r);
        let fields = rejected_fields(&mut c, r.clone()).await;
        assert_eq!(fields, vec![field.to_string()], "for {r:?}");
    }

    // An e-mail OTP needs an address; a push OTP needs neither.
    let mut r = base();
    r.channel = pb::Channel::Email as i32;
    r.phone_number.clear();
    assert_eq!(rejected_fields(&mut c, r.clone()).await, vec!["email"]);
    r.email = "user@example.com".into();
    assert!(c.assess(r).await.is_ok());

    // Several problems are reported together.
    let mut r = base();
    r.ip = "1.2.3".into();
    r.device_id = long(200);
    r.phone_number = "12".into();
    let mut fields = rejected_fields(&mut c, r).await;
    fields.sort();
    assert_eq!(fields, vec!["device_id", "ip", "phone_number"]);

    // Limits are inclusive.
    let mut r = base();
    r.device_id = long(128);
    r.user_agent = long(512);
    r.tenant = long(64);
    r.attributes = (0..16).map(|i| (format!("k{i}"), long(256))).collect();
    assert!(c.assess(r).await.is_ok());
    srv.stop().await;
}

#[tokio::test]
async fn rejected_requests_change_no_state() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let mut bad = base();
    bad.ip = "1.2.3".into();
    for _ in 0..5 {
        assert!(c.assess(bad.clone()).await.is_err());
    }
    // The number was never sent a code: the first valid send is allowed.
    let r = c.assess(base()).await.unwrap().into_inner();
    assert_eq!(decision(&r), pb::Decision::Allow, "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn malformed_reports_are_rejected() {
    let srv = TestServer::default_policy().await;
    let mut c = srv.client().await;
    let cases = [
        (
            pb::ReportRequest {
                outcome: pb::Outcome::OtpVerified as i32,
                ..Default::default()
            },
            "assessment_id",
        ),
        (
            pb::ReportRequest {
                assessment_id: "nope".into(),
                outcome: pb::Outcome::OtpVerified as i32,
                ..Default::default()
            },
            "assessment_id",
        ),
        (
            pb::ReportRequest {
                phone_number: "+33612345678".into(),
                ..Default::default()
            },
            "outcome",
        ),
        (
            pb::ReportRequest {
                phone_number: "+33612345678".into(),
                outcome: 77,
                ..Default::default()
            },
            "outcome",
        ),
        (
            pb::ReportRequest {
                phone_number: "0612345678".into(),
                outcome: pb::Outcome::OtpVerified as i32,
                ..Default::default()
            },
            "phone_number",
        ),
        (
            pb::ReportRequest {
                account_id: "a\u{0}".into(),
                outcome: pb::Outcome::LoginFailed as i32,
                ..Default::default()
            },
            "account_id",
        ),
    ];
    for (req, field) in cases {
        let err = c.report(req.clone()).await.expect_err(&format!("{req:?}"));
        assert_eq!(err.code(), Code::InvalidArgument);
        let fields: Vec<_> = err
            .get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, vec![field], "{req:?}");
    }
    srv.stop().await;
}
