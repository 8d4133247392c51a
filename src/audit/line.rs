//! One record as one JSON line. Runs on the writer thread: all masking and
//! formatting happens here, none on the hot path.
//!
//! The field names are the module's contract (see the table in [`super`]);
//! serde writes the fields in the order of the structs below.

use super::Record;
use crate::decision::Decision;
use crate::mask;
use crate::request::{AdminSubject, AssessInput, ReportInput, E164};
use crate::signals::Signals;
use serde::ser::{Serialize, Serializer};
use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Longest user-agent preview written when masking is on.
pub const USER_AGENT_PREVIEW: usize = 64;
/// Longest attribute-value preview written when masking is on.
pub const ATTRIBUTE_PREVIEW: usize = 24;

/// Appends the JSON line of `record`, with its `\n`, to `out`.
pub(super) fn write(record: &Record, unmasked: bool, out: &mut Vec<u8>) {
    let m = Masking { unmasked };
    let result = match record {
        Record::Assessment {
            time,
            id,
            input,
            signals,
            decision,
        } => serde_json::to_writer(
            &mut *out,
            &assessment(&m, *time, id.to_string(), input, signals, decision),
        ),
        Record::Report { time, input } => {
            serde_json::to_writer(&mut *out, &report(&m, *time, input))
        }
        Record::Admin {
            time,
            caller,
            action,
            subject,
            reason,
            ok,
        } => serde_json::to_writer(
            &mut *out,
            &AdminLine {
                kind: "admin",
                time: rfc3339(*time),
                masked: !m.unmasked,
                caller,
                action,
                subject: subject.as_ref().map(|s| m.subject(s)),
                reason,
                ok: *ok,
            },
        ),
    };
    // Only a failing `Serialize` impl or writer can fail, and neither does
    // here (plain structs into a Vec).
    debug_assert!(result.is_ok(), "{result:?}");
    out.push(b'\n');
}

/// Unix nanoseconds as RFC 3339 UTC with microseconds:
/// `2026-01-01T00:00:00.000000Z`.
fn rfc3339(unix_nanos: u64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(unix_nanos);
    humantime::format_rfc3339_micros(t).to_string()
}

/// Identifiers in full or masked, as the operator chose.
struct Masking {
    unmasked: bool,
}

impl Masking {
    fn phone<'a>(&self, p: &'a E164) -> Cow<'a, str> {
        if self.unmasked {
            Cow::Borrowed(p.as_str())
        } else {
            Cow::Owned(mask::phone(p))
        }
    }

    fn email<'a>(&self, e: &'a str) -> Cow<'a, str> {
        if self.unmasked {
            Cow::Borrowed(e)
        } else {
            Cow::Owned(mask::email(e))
        }
    }

    fn ip(&self, ip: IpAddr) -> String {
        if self.unmasked {
            ip.to_string()
        } else {
            mask::ip(ip)
        }
    }

    fn id<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if self.unmasked {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(mask::text(s))
        }
    }

    fn preview<'a>(&self, s: &'a str, max: usize) -> Cow<'a, str> {
        if self.unmasked {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(mask::preview(s, max))
        }
    }

    fn subject(&self, s: &AdminSubject) -> String {
        if self.unmasked {
            mask::subject_unmasked(s)
        } else {
            mask::subject(s)
        }
    }
}

#[derive(serde::Serialize)]
struct AssessmentLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    assessment_id: String,
    masked: bool,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'static str>,
    #[serde(flatten)]
    ids: Ids<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_minor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    #[serde(skip_serializing_if = "Attributes::is_empty")]
    attributes: Attributes<'a>,
    signals: SignalsLine,
    decision: &'static str,
    score: u8,
    reasons: Vec<ReasonLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    step_up: Vec<&'static str>,
    policy_version: &'a str,
}

/// The identifiers an assessment and a report share.
#[derive(serde::Serialize)]
struct Ids<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<Cow<'a, str>>,
    /// An operator-defined name, not a person: in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct ReasonLine<'a> {
    code: &'a str,
    shadow: bool,
}

#[derive(serde::Serialize)]
struct SignalsLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<PhoneLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<IpLine>,
}

impl IpLine {
    /// `None` when the data said nothing about the address.
    fn known(self) -> Option<IpLine> {
        let nothing = self.country.is_none()
            && self.asn.is_none()
            && self.as_org.is_none()
            && self.anonymous.is_empty()
            && self.connection.is_none();
        (!nothing).then_some(self)
    }
}

/// What the data files said about the IP (facts about networks, not the
/// address itself).
#[derive(serde::Serialize)]
struct IpLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_org: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    anonymous: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<&'static str>,
}

#[derive(serde::Serialize)]
struct PhoneLine {
    calling_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(rename = "type")]
    number_type: &'static str,
    valid: bool,
}

/// The request's attributes as a JSON object, keys in request order.
struct Attributes<'a> {
    pairs: &'a [(String, String)],
    masking: &'a Masking,
}

impl Attributes<'_> {
    fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.pairs
                .iter()
                .map(|(k, v)| (k, self.masking.preview(v, ATTRIBUTE_PREVIEW))),
        )
    }
}

fn assessment<'a>(
    m: &'a Masking,
    time: u64,
    assessment_id: String,
    input: &'a AssessInput,
    signals: &Signals,
    d: &'a Decision,
) -> AssessmentLine<'a> {
    AssessmentLine {
        kind: "assessment",
        time: rfc3339(time),
        assessment_id,
        masked: !m.unmasked,
        event: input.event.as_str(),
        channel: input.channel.map(|c| c.as_str()),
        ids: Ids {
            phone: input.phone.as_ref().map(|p| m.phone(p)),
            email: input.email.as_deref().map(|e| m.email(e)),
            device_id: input.device_id.as_deref().map(|s| m.id(s)),
            account_id: input.account_id.as_deref().map(|s| m.id(s)),
            session_id: input.session_id.as_deref().map(|s| m.id(s)),
            tenant: input.tenant.as_deref(),
        },
        ip: input.ip.map(|ip| m.ip(ip)),
        user_agent: input
            .user_agent
            .as_deref()
            .map(|ua| m.preview(ua, USER_AGENT_PREVIEW)),
        amount_minor: input.amount_minor,
        currency: input.currency.as_deref(),
        attributes: Attributes {
            pairs: &input.attributes,
            masking: m,
        },
        signals: SignalsLine {
            phone: signals.phone.as_ref().map(|f| PhoneLine {
                calling_code: f.calling_code,
                region: f.region.map(|r| r.as_str().to_owned()),
                number_type: f.number_type.as_str(),
                valid: f.valid,
            }),
            ip: signals.ip.as_ref().and_then(|i| {
                let f = &i.facts;
                let a = f.anonymous;
                IpLine {
                    country: f.country.map(|c| c.as_str().to_owned()),
                    asn: f.asn,
                    as_org: f.as_org.as_deref().map(str::to_owned),
                    anonymous: [
                        (a.anonymous, "anonymous"),
                        (a.vpn, "vpn"),
                        (a.hosting, "hosting"),
                        (a.public_proxy, "public_proxy"),
                        (a.residential_proxy, "residential_proxy"),
                        (a.tor_exit, "tor"),
                    ]
                    .into_iter()
                    .filter_map(|(on, name)| on.then_some(name))
                    .collect(),
                    connection: f.connection.map(|c| c.as_str()),
                }
                .known()
            }),
        },
        decision: d.verdict.as_str(),
        score: d.score,
        reasons: d
            .reasons
            .iter()
            .map(|r| ReasonLine {
                code: &r.code,
                shadow: r.shadow,
            })
            .collect(),
        retry_after_ms: d
            .retry_after
            .map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX)),
        step_up: d.step_up.iter().map(|s| s.as_str()).collect(),
        policy_version: &d.policy_version,
    }
}

#[derive(serde::Serialize)]
struct ReportLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    assessment_id: Option<String>,
    masked: bool,
    outcome: &'static str,
    #[serde(flatten)]
    ids: Ids<'a>,
}

fn report<'a>(m: &Masking, time: u64, input: &'a ReportInput) -> ReportLine<'a> {
    ReportLine {
        kind: "report",
        time: rfc3339(time),
        assessment_id: input.assessment_id.map(|id| id.to_string()),
        masked: !m.unmasked,
        outcome: input.outcome.as_str(),
        ids: Ids {
            phone: input.phone.as_ref().map(|p| m.phone(p)),
            email: input.email.as_deref().map(|e| m.email(e)),
            device_id: input.device_id.as_deref().map(|s| m.id(s)),
            account_id: input.account_id.as_deref().map(|s| m.id(s)),
            session_id: input.session_id.as_deref().map(|s| m.id(s)),
            tenant: input.tenant.as_deref(),
        },
    }
}

#[derive(serde::Serialize)]
struct AdminLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    masked: bool,
    caller: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    ok: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_microseconds() {
        assert_eq!(
            rfc3339(1_767_225_600 * 1_000_000_000 + 1_234_567),
            "2026-01-01T00:00:00.001234Z"
        );
    }
}
