//! `tollgate admin ...`: a small client of the AdminService for the help desk.

use crate::proto::v1 as pb;
use crate::settings::{AdminAction, AdminArgs, ResetArg, SubjectArgs};
use pb::admin_service_client::AdminServiceClient;
use std::fmt::Write as _;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

#[derive(Debug, thiserror::Error)]
pub enum AdminCliError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("the token is not valid in an HTTP header")]
    Token,
}

fn subject(s: SubjectArgs) -> pb::Subject {
    use pb::subject::Kind;
    let kind = [
        s.phone.map(Kind::PhoneNumber),
        s.prefix.map(Kind::Prefix),
        s.account.map(Kind::AccountId),
        s.device.map(Kind::DeviceId),
        s.ip.map(Kind::Ip),
        s.network.map(Kind::Network),
        s.country.map(Kind::Country),
        s.session.map(Kind::SessionId),
    ]
    .into_iter()
    .flatten()
    .next();
    pb::Subject { kind }
}

fn duration(d: Option<Duration>) -> Option<prost_types::Duration> {
    d.map(|d| prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    })
}

fn show(d: &Option<prost_types::Duration>) -> String {
    match d {
        Some(d) => {
            humantime::format_duration(Duration::new(d.seconds.max(0) as u64, 0)).to_string()
        }
        None => "until reset".into(),
    }
}

/// Human-readable state of a subject.
pub fn render_state(s: &pb::SubjectState) -> String {
    let mut out = String::new();
    if s.blocked {
        let _ = writeln!(
            out,
            "blocked: yes ({}), {}",
            s.block_reason,
            show(&s.block_remaining)
        );
    } else {
        let _ = writeln!(out, "blocked: no");
    }
    let _ = writeln!(
        out,
        "safe listed: {}",
        if s.safe_listed { "yes" } else { "no" }
    );
    if s.locked {
        let _ = writeln!(out, "locked: yes, {}", show(&s.lock_remaining));
    }
    let _ = writeln!(out, "consecutive failures: {}", s.consecutive_failures);
    let _ = writeln!(out, "unverified sends: {}", s.unverified_sends);
    if let Some(b) = &s.backoff_remaining {
        let _ = writeln!(
            out,
            "backoff: level {}, {} left",
            s.backoff_level,
            show(&Some(*b))
        );
    }
    if s.session_sends > 0 || s.session_failed {
        let _ = writeln!(
            out,
            "session: {} sends, {} wrong codes, {} destination changes{}",
            s.session_sends,
            s.session_wrong_codes,
            s.session_destination_changes,
            if s.session_failed { ", failed" } else { "" }
        );
    }
    let mut throttled: Vec<_> = s.throttled.iter().collect();
    throttled.sort_by(|a, b| a.0.cmp(b.0));
    for (rule, wait) in throttled {
        let _ = writeln!(out, "throttled by {rule}: {} left", show(&Some(*wait)));
    }
    out
}

/// Runs one admin command and returns what to print.
pub async fn run(args: AdminArgs) -> Result<String, AdminCliError> {
    let channel = Channel::from_shared(args.addr.clone())
        .map_err(|_| AdminCliError::Status(tonic::Status::invalid_argument("bad --addr")))?
        .connect()
        .await
        .map_err(|source| AdminCliError::Connect {
            addr: args.addr.clone(),
            source,
        })?;
    let bearer: MetadataValue<_> = format!("Bearer {}", args.token)
        .parse()
        .map_err(|_| AdminCliError::Token)?;
    let mut client = AdminServiceClient::with_interceptor(channel, move |mut req: Request<()>| {
        req.metadata_mut().insert("authorization", bearer.clone());
        Ok(req)
    });
    Ok(match args.action {
        AdminAction::Get(s) => {
            let r = client
                .get_subject(pb::GetSubjectRequest {
                    subject: Some(subject(s)),
                })
                .await?
                .into_inner();
            render_state(&r.state.unwrap_or_default())
        }
        AdminAction::Reset {
            subject: s,
            scope,
            reason,
        } => {
            let scope = match scope {
                ResetArg::Failures => pb::ResetScope::Failures,
                ResetArg::Sends => pb::ResetScope::Sends,
                ResetArg::All => pb::ResetScope::All,
            };
            let r = client
                .reset_counters(pb::ResetCountersRequest {
                    subject: Some(subject(s)),
                    scope: scope as i32,
                    reason,
                })
                .await?
                .into_inner();
            format!("reset done\n{}", render_state(&r.state.unwrap_or_default()))
        }
        AdminAction::Block {
            subject: s,
            duration: d,
            reason,
        } => {
            client
                .block(pb::BlockRequest {
                    subject: Some(subject(s)),
                    duration: duration(d),
                    reason,
                })
                .await?;
            "blocked\n".into()
        }
        AdminAction::Unblock { subject: s, reason } => {
            let r = client
                .unblock(pb::UnblockRequest {
                    subject: Some(subject(s)),
                    reason,
                })
                .await?
                .into_inner();
            if r.was_blocked {
                "unblocked\n"
            } else {
                "was not blocked\n"
            }
            .into()
        }
        AdminAction::Allow {
            subject: s,
            duration: d,
            reason,
        } => {
            client
                .allow(pb::AllowRequest {
                    subject: Some(subject(s)),
                    duration: duration(d),
                    reason,
                })
                .await?;
            "safe listed\n".into()
        }
        AdminAction::Disallow { subject: s, reason } => {
            let r = client
                .disallow(pb::DisallowRequest {
                    subject: Some(subject(s)),
                    reason,
                })
                .await?
                .into_inner();
            if r.was_allowed {
                "removed from the safe list\n"
            } else {
                "was not safe listed\n"
            }
            .into()
        }
        AdminAction::Conversion { country } => {
            let r = client
                .get_conversion(pb::GetConversionRequest {
                    country: country.unwrap_or_default(),
                })
                .await?
                .into_inner();
            let mut out = format!("window: {}\n", show(&r.window));
            let _ = writeln!(
                out,
                "{:<8} {:<18} {:>8} {:>8} {:>6}  protection",
                "scope", "subject", "sent", "verified", "ratio"
            );
            for e in r.entries {
                let _ = writeln!(
                    out,
                    "{:<8} {:<18} {:>8} {:>8} {:>6.2}  {}",
                    e.scope,
                    e.subject,
                    e.sent,
                    e.verified,
                    e.ratio,
                    if e.protected {
                        format!("{} left", show(&e.protection_remaining))
                    } else {
                        "-".into()
                    }
                );
            }
            out
        }
        AdminAction::Reload => {
            let r = client
                .reload_policy(pb::ReloadPolicyRequest {})
                .await?
                .into_inner();
            if r.ok {
                format!("policy reloaded: version {}\n", r.version)
            } else {
                format!(
                    "policy rejected; still serving version {}\n{}\n",
                    r.version,
                    r.problems.join("\n")
                )
            }
        }
    })
}
