//! Proto messages <-> domain types. All request validation happens here, once.

use crate::decision::{Decision, StepUpMethod, Verdict};
use crate::engine::Assessment;
use crate::proto::v1 as pb;
use crate::request::{
    check_text, preview, AssessInput, Channel, Event, Outcome, ReportInput, RequestError,
    Violations, MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY_LEN, MAX_ATTRIBUTE_VALUE_LEN, MAX_ID_LEN,
    MAX_TENANT_LEN, MAX_USER_AGENT_LEN,
};

fn event(v: i32, errs: &mut Violations) -> Option<Event> {
    let e = match pb::Event::try_from(v) {
        Ok(pb::Event::OtpSend) => Event::OtpSend,
        Ok(pb::Event::OtpVerify) => Event::OtpVerify,
        Ok(pb::Event::Login) => Event::Login,
        Ok(pb::Event::Transaction) => Event::Transaction,
        Ok(pb::Event::Registration) => Event::Registration,
        Ok(pb::Event::CredentialChange) => Event::CredentialChange,
        Ok(pb::Event::AccountRecovery) => Event::AccountRecovery,
        Ok(pb::Event::Unspecified) => {
            errs.add("event", "is required (EVENT_UNSPECIFIED is not an event)");
            return None;
        }
        Err(_) => {
            errs.add("event", format!("unknown value {v}"));
            return None;
        }
    };
    Some(e)
}

fn channel(v: i32, errs: &mut Violations) -> Option<Channel> {
    match pb::Channel::try_from(v) {
        Ok(pb::Channel::Unspecified) => None,
        Ok(pb::Channel::Sms) => Some(Channel::Sms),
        Ok(pb::Channel::Voice) => Some(Channel::Voice),
        Ok(pb::Channel::Email) => Some(Channel::Email),
        Ok(pb::Channel::Whatsapp) => Some(Channel::Whatsapp),
        Ok(pb::Channel::Push) => Some(Channel::Push),
        Err(_) => {
            errs.add("channel", format!("unknown value {v}"));
            None
        }
    }
}

fn outcome(v: i32, errs: &mut Violations) -> Option<Outcome> {
    let o = match pb::Outcome::try_from(v) {
        Ok(pb::Outcome::OtpDelivered) => Outcome::OtpDelivered,
        Ok(pb::Outcome::OtpUndelivered) => Outcome::OtpUndelivered,
        Ok(pb::Outcome::OtpVerified) => Outcome::OtpVerified,
        Ok(pb::Outcome::OtpWrongCode) => Outcome::OtpWrongCode,
        Ok(pb::Outcome::OtpExpired) => Outcome::OtpExpired,
        Ok(pb::Outcome::LoginSucceeded) => Outcome::LoginSucceeded,
        Ok(pb::Outcome::LoginFailed) => Outcome::LoginFailed,
        Ok(pb::Outcome::StepUpPassed) => Outcome::StepUpPassed,
        Ok(pb::Outcome::StepUpFailed) => Outcome::StepUpFailed,
        Ok(pb::Outcome::Unspecified) => {
            errs.add(
                "outcome",
                "is required (OUTCOME_UNSPECIFIED is not an outcome)",
            );
            return None;
        }
        Err(_) => {
            errs.add("outcome", format!("unknown value {v}"));
            return None;
        }
    };
    Some(o)
}

impl TryFrom<pb::AssessRequest> for AssessInput {
    type Error = RequestError;

    fn try_from(r: pb::AssessRequest) -> Result<Self, RequestError> {
        let mut errs = Violations::default();
        let event = event(r.event, &mut errs);
        let channel = channel(r.channel, &mut errs);
        let phone = errs.phone("phone_number", &r.phone_number);
        let email_given = !r.email.is_empty();
        let email = errs.email("email", r.email);
        if let Some(e) = event.filter(|e| e.is_otp()) {
            match channel {
                None if r.channel == 0 => {
                    errs.add("channel", format!("is required for {}", e.as_str()))
                }
                Some(c) if c.needs_phone() && r.phone_number.is_empty() => errs.add(
                    "phone_number",
                    format!("is required for {} over {}", e.as_str(), c.as_str()),
                ),
                Some(Channel::Email) if !email_given => errs.add(
                    "email",
                    format!("is required for {} over email", e.as_str()),
                ),
                _ => {}
            }
        }
        let ip = errs.ip("ip", &r.ip);
        let device_id = errs.text("device_id", r.device_id, MAX_ID_LEN);
        let account_id = errs.text("account_id", r.account_id, MAX_ID_LEN);
        let session_id = errs.text("session_id", r.session_id, MAX_ID_LEN);
        let user_agent = errs.text("user_agent", r.user_agent, MAX_USER_AGENT_LEN);
        let tenant = errs.text("tenant", r.tenant, MAX_TENANT_LEN);
        if r.amount_minor < 0 {
            errs.add(
                "amount_minor",
                format!("must not be negative, is {}", r.amount_minor),
            );
        }
        let currency = (!r.currency.is_empty()).then_some(r.currency);
        if let Some(c) = &currency {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                errs.add(
                    "currency",
                    format!(
                        "{:?} is not an ISO 4217 code (3 upper-case letters)",
                        preview(c)
                    ),
                );
            }
        }
        if r.attributes.len() > MAX_ATTRIBUTES {
            errs.add(
                "attributes",
                format!(
                    "at most {MAX_ATTRIBUTES} entries, has {}",
                    r.attributes.len()
                ),
            );
        }
        let mut attributes: Vec<(String, String)> = r.attributes.into_iter().collect();
        attributes.sort();
        for (k, v) in &attributes {
            if k.is_empty() {
                errs.add("attributes", "keys must not be empty");
            } else if let Err(e) = check_text(k, MAX_ATTRIBUTE_KEY_LEN) {
                errs.add("attributes", format!("key {:?}: {e}", preview(k)));
            } else if let Err(e) = check_text(v, MAX_ATTRIBUTE_VALUE_LEN) {
                errs.add(format!("attributes[{k}]"), e);
            }
        }
        errs.finish(|| AssessInput {
            event: event.expect("checked"),
            channel,
            phone,
            email,
            ip,
            device_id,
            account_id,
            session_id,
            user_agent,
            tenant,
            amount_minor: (r.amount_minor != 0).then_some(r.amount_minor),
            currency,
            attributes,
        })
    }
}

impl TryFrom<pb::ReportRequest> for ReportInput {
    type Error = RequestError;

    fn try_from(r: pb::ReportRequest) -> Result<Self, RequestError> {
        let mut errs = Violations::default();
        let assessment_id = if r.assessment_id.is_empty() {
            None
        } else {
            match r.assessment_id.parse() {
                Ok(id) => Some(id),
                Err(e) => {
                    errs.add("assessment_id", e);
                    None
                }
            }
        };
        let outcome = outcome(r.outcome, &mut errs);
        let names_subject = !r.assessment_id.is_empty()
            || !r.phone_number.is_empty()
            || !r.account_id.is_empty()
            || !r.session_id.is_empty()
            || !r.device_id.is_empty();
        let phone = errs.phone("phone_number", &r.phone_number);
        let email = errs.email("email", r.email);
        let account_id = errs.text("account_id", r.account_id, MAX_ID_LEN);
        let session_id = errs.text("session_id", r.session_id, MAX_ID_LEN);
        let device_id = errs.text("device_id", r.device_id, MAX_ID_LEN);
        let tenant = errs.text("tenant", r.tenant, MAX_TENANT_LEN);
        if !names_subject {
            errs.add(
                "assessment_id",
                "give the assessment_id from Assess, or the subject (phone_number, account_id, session_id or device_id)",
            );
        }
        errs.finish(|| ReportInput {
            assessment_id,
            outcome: outcome.expect("checked"),
            phone,
            email,
            account_id,
            session_id,
            device_id,
            tenant,
        })
    }
}

fn verdict(v: Verdict) -> pb::Decision {
    match v {
        Verdict::Allow => pb::Decision::Allow,
        Verdict::StepUp => pb::Decision::StepUp,
        Verdict::Block => pb::Decision::Block,
    }
}

fn method(m: StepUpMethod) -> pb::StepUpMethod {
    match m {
        StepUpMethod::Captcha => pb::StepUpMethod::Captcha,
        StepUpMethod::EmailOtp => pb::StepUpMethod::EmailOtp,
        StepUpMethod::KnowledgeFactor => pb::StepUpMethod::KnowledgeFactor,
        StepUpMethod::ReverseSms => pb::StepUpMethod::ReverseSms,
        StepUpMethod::PushApproval => pb::StepUpMethod::PushApproval,
    }
}

impl From<Assessment> for pb::AssessResponse {
    fn from(a: Assessment) -> Self {
        let Decision {
            verdict: v,
            score,
            reasons,
            retry_after,
            step_up,
            policy_version,
        } = a.decision;
        let phone = a.signals.phone.as_ref();
        let ip = a.signals.ip.as_ref().map(|i| &i.facts);
        pb::AssessResponse {
            assessment_id: a.id.to_string(),
            decision: verdict(v) as i32,
            score: u32::from(score),
            reasons: reasons
                .into_iter()
                .map(|r| pb::Reason {
                    code: String::from(&*r.code),
                    message: String::from(&*r.message),
                    shadow: r.shadow,
                })
                .collect(),
            retry_after: retry_after.map(|d| prost_types::Duration {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            }),
            step_up: step_up.into_iter().map(|m| method(m) as i32).collect(),
            signals: Some(pb::Signals {
                phone_region: phone
                    .and_then(|p| p.region)
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
                phone_calling_code: phone.map_or(0, |p| u32::from(p.calling_code)),
                phone_type: phone
                    .map(|p| p.number_type.as_str().to_owned())
                    .unwrap_or_default(),
                phone_valid: phone.is_some_and(|p| p.valid),
                ip_country: ip
                    .and_then(|f| f.country)
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
                asn: ip.and_then(|f| f.asn).unwrap_or(0),
                asn_org: ip
                    .and_then(|f| f.as_org.as_deref())
                    .unwrap_or_default()
                    .to_owned(),
                ip_tor: ip.is_some_and(|f| f.anonymous.tor_exit),
                ip_vpn: ip.is_some_and(|f| f.anonymous.vpn),
                ip_hosting: ip.is_some_and(|f| f.anonymous.hosting),
                ip_proxy: ip
                    .is_some_and(|f| f.anonymous.public_proxy || f.anonymous.residential_proxy),
            }),
            policy_version: String::from(&*policy_version),
        }
    }
}
