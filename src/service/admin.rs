//! `tollgate.v1.AdminService`: the help desk's and fraud team's calls, on their
//! own listener, every call authenticated by a bearer token and logged with the
//! caller's token id (never the token) and a masked subject.

use super::{to_status, ServiceError};
use crate::engine::{Engine, SubjectView};
use crate::limits::{List, ResetScope, StateStore};
use crate::mask;
use crate::metrics;
use crate::proto::v1 as pb;
use crate::reload::Reload;
use crate::request::{check_text, AdminSubject, RequestError, Violations};
use crate::signals::CountryCode;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub use pb::admin_service_server::AdminServiceServer;

const MAX_REASON_LEN: usize = 256;

/// Admin bearer tokens, each with an id that is safe to log.
#[derive(Clone, Default)]
pub struct Tokens(Arc<Vec<(Arc<str>, Vec<u8>)>>);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("admin token {id:?} is shorter than 16 characters")]
    TooShort { id: String },
}

impl Tokens {
    /// Tokens from a file: one per line, `ID TOKEN` or just `TOKEN` (its id is
    /// then `line-N`); `#` comments and blank lines are skipped.
    pub fn parse(file: &str, text: &str) -> Result<Tokens, TokenError> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (id, token) = match (words.next(), words.next(), words.next()) {
                (Some(t), None, None) => (format!("line-{}", i + 1), t),
                (Some(id), Some(t), None) => (id.to_owned(), t),
                _ => {
                    return Err(TokenError::Line {
                        file: file.into(),
                        line: i + 1,
                        message: "expected `ID TOKEN` or `TOKEN`".into(),
                    })
                }
            };
            out.push(Self::entry(id, token)?);
        }
        Ok(Tokens(Arc::new(out)))
    }

    /// One token with the given id.
    pub fn single(id: &str, token: &str) -> Result<Tokens, TokenError> {
        Ok(Tokens(Arc::new(vec![Self::entry(
            id.to_owned(),
            token.trim(),
        )?])))
    }

    fn entry(id: String, token: &str) -> Result<(Arc<str>, Vec<u8>), TokenError> {
        if token.chars().count() < 16 {
            return Err(TokenError::TooShort { id });
        }
        Ok((id.into(), token.as_bytes().to_vec()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The id of the token presented, comparing in time independent of where
    /// the bytes differ.
    fn find(&self, presented: &[u8]) -> Option<Arc<str>> {
        let mut found = None;
        for (id, token) in self.0.iter() {
            if token.len() == presented.len()
                && token
                    .iter()
                    .zip(presented)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            {
                found = Some(id.clone());
            }
        }
        found
    }
}

/// The authenticated caller, put in the request extensions by [`authenticate`].
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<str>);

/// Interceptor: `authorization: Bearer <token>` or UNAUTHENTICATED.
pub fn authenticate(
    tokens: Tokens,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented.and_then(|t| tokens.find(t.as_bytes())) {
            Some(id) => {
                req.extensions_mut().insert(Caller(id));
                Ok(req)
            }
            None => {
                metrics::admin_action("unauthenticated");
                tracing::warn!(
                    token_presented = presented.is_some(),
                    "admin call refused: missing or unknown bearer token"
                );
                Err(Status::unauthenticated("missing or invalid bearer token"))
            }
        }
    }
}

fn caller<T>(req: &Request<T>) -> Arc<str> {
    req.extensions()
        .get::<Caller>()
        .map_or_else(|| "unknown".into(), |c| c.0.clone())
}

fn subject(s: Option<pb::Subject>, errs: &mut Violations) -> Option<AdminSubject> {
    use pb::subject::Kind;
    let Some(kind) = s.and_then(|s| s.kind) else {
        errs.add("subject", "is required: one of phone_number, prefix, account_id, device_id, ip, network, country, session_id");
        return None;
    };
    let (field, value) = match &kind {
        Kind::PhoneNumber(v) => ("phone_number", v),
        Kind::Prefix(v) => ("prefix", v),
        Kind::AccountId(v) => ("account_id", v),
        Kind::DeviceId(v) => ("device_id", v),
        Kind::Ip(v) => ("ip", v),
        Kind::Network(v) => ("network", v),
        Kind::Country(v) => ("country", v),
        Kind::SessionId(v) => ("session_id", v),
    };
    match AdminSubject::parse(field, value) {
        Ok(s) => Some(s),
        Err(e) => {
            errs.add(format!("subject.{field}"), e);
            None
        }
    }
}

fn reason(r: String, required: bool, errs: &mut Violations) -> String {
    if required && r.trim().is_empty() {
        errs.add(
            "reason",
            "is required: say why (it is logged with the caller)",
        );
    } else if let Err(e) = check_text(&r, MAX_REASON_LEN) {
        errs.add("reason", e);
    }
    r
}

fn duration(d: Option<prost_types::Duration>, errs: &mut Violations) -> Option<Duration> {
    let d = d?;
    if d.seconds < 0 || d.nanos < 0 {
        errs.add("duration", "must not be negative");
        return None;
    }
    let d = Duration::new(d.seconds as u64, d.nanos as u32);
    (!d.is_zero()).then_some(d)
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn state(v: &SubjectView) -> pb::SubjectState {
    let now = v.now;
    let s = &v.state;
    let mut out = pb::SubjectState {
        blocked: s.block.is_some(),
        block_reason: s
            .block
            .as_ref()
            .map(|l| l.reason.to_string())
            .unwrap_or_default(),
        block_remaining: s
            .block
            .as_ref()
            .and_then(|l| l.remaining(now))
            .map(proto_duration),
        safe_listed: s.safe.is_some(),
        throttled: v
            .throttled
            .iter()
            .map(|(id, w)| (id.to_string(), proto_duration(*w)))
            .collect(),
        ..Default::default()
    };
    if let Some(p) = &s.phone {
        out.backoff_level = p.backoff.filter(|b| b.in_force(now)).map_or(0, |b| b.level);
        out.backoff_remaining = p.backoff_wait(now).map(proto_duration);
        out.unverified_sends = u32::from(p.unverified(now));
    }
    if let Some(a) = &s.account {
        out.unverified_sends = u32::from(a.unverified(now));
        out.consecutive_failures = u32::from(a.failures);
        if let Some(lock) = a.lock(now) {
            out.locked = true;
            out.lock_remaining = lock.map(proto_duration);
        }
    }
    if let Some(x) = &s.session {
        out.session_sends = u32::from(x.sends);
        out.session_wrong_codes = u32::from(x.wrong_codes);
        out.session_destination_changes = u32::from(x.destination_changes);
        out.session_failed = x.failed;
    }
    out
}

/// `tollgate.v1.AdminService`.
pub struct AdminApi<S> {
    engine: Arc<Engine<S>>,
    reloader: Arc<dyn Reload>,
}

impl<S> AdminApi<S> {
    pub fn new(engine: Arc<Engine<S>>, reloader: Arc<dyn Reload>) -> Self {
        AdminApi { engine, reloader }
    }
}

fn invalid(e: RequestError) -> Status {
    to_status(ServiceError::Invalid(e))
}

fn failed(e: crate::engine::EngineError) -> Status {
    to_status(ServiceError::Engine(e))
}

impl<S: StateStore> AdminApi<S> {
    /// Block or Allow: validate, put the subject on the list, record the call.
    async fn list(
        &self,
        list: List,
        who: &Arc<str>,
        subject_in: Option<pb::Subject>,
        duration_in: Option<prost_types::Duration>,
        reason_in: String,
    ) -> Result<(), Status> {
        let mut errs = Violations::default();
        let s = subject(subject_in, &mut errs);
        match (list, &s) {
            (List::Block, Some(AdminSubject::Session(_))) => errs.add(
                "subject.session_id",
                "sessions cannot be blocked; use ResetCounters",
            ),
            (
                List::Safe,
                Some(AdminSubject::Session(_) | AdminSubject::Prefix(_) | AdminSubject::Country(_)),
            ) => errs.add(
                "subject",
                "the safe list takes a phone number, account, device, IP or network",
            ),
            _ => {}
        }
        let d = duration(duration_in, &mut errs);
        let why = reason(reason_in, true, &mut errs);
        let s = errs.finish(|| s.expect("checked")).map_err(invalid)?;
        let done = self.engine.set_listing(list, &s, d, &why).await;
        let action = match list {
            List::Block => "block",
            List::Safe => "allow",
        };
        self.record(action, who, Some(&s), &why, done.is_ok());
        done.map(|_| ()).map_err(failed)
    }

    /// Unblock or Disallow; returns whether the subject was on the list.
    async fn unlist(
        &self,
        list: List,
        who: &Arc<str>,
        subject_in: Option<pb::Subject>,
        reason_in: String,
    ) -> Result<bool, Status> {
        let mut errs = Violations::default();
        let s = subject(subject_in, &mut errs);
        let why = reason(reason_in, false, &mut errs);
        let s = errs.finish(|| s.expect("checked")).map_err(invalid)?;
        let was = self.engine.remove_listing(list, &s).await;
        let action = match list {
            List::Block => "unblock",
            List::Safe => "disallow",
        };
        self.record(action, who, Some(&s), &why, was.is_ok());
        was.map_err(failed)
    }

    /// Every admin call, once it is done: counted, logged with the caller's
    /// token id and a masked subject, and written to the audit log.
    fn record(
        &self,
        action: &'static str,
        caller: &Arc<str>,
        subject: Option<&AdminSubject>,
        reason: &str,
        ok: bool,
    ) {
        metrics::admin_action(action);
        let masked = subject.map(mask::subject).unwrap_or_default();
        tracing::info!(target: "tollgate::admin", action, caller = &**caller, subject = masked, reason, ok, "admin call");
        self.engine
            .audit()
            .admin(caller, action, subject, reason, ok);
    }
}

#[tonic::async_trait]
impl<S: StateStore> pb::admin_service_server::AdminService for AdminApi<S> {
    async fn get_subject(
        &self,
        req: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::GetSubjectResponse>, Status> {
        let who = caller(&req);
        let mut errs = Violations::default();
        let s = subject(req.into_inner().subject, &mut errs);
        let s = errs.finish(|| s.expect("checked")).map_err(invalid)?;
        let view = self.engine.inspect(&s).await;
        self.record("get_subject", &who, Some(&s), "", view.is_ok());
        let view = view.map_err(failed)?;
        Ok(Response::new(pb::GetSubjectResponse {
            state: Some(state(&view)),
        }))
    }

    async fn reset_counters(
        &self,
        req: Request<pb::ResetCountersRequest>,
    ) -> Result<Response<pb::ResetCountersResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        let mut errs = Violations::default();
        let s = subject(r.subject, &mut errs);
        let scope = match pb::ResetScope::try_from(r.scope) {
            Ok(pb::ResetScope::Failures) => Some(ResetScope::Failures),
            Ok(pb::ResetScope::Sends) => Some(ResetScope::Sends),
            Ok(pb::ResetScope::All) => Some(ResetScope::All),
            _ => {
                errs.add("scope", "is required: FAILURES, SENDS or ALL");
                None
            }
        };
        let why = reason(r.reason, false, &mut errs);
        let (s, scope) = errs
            .finish(|| (s.expect("checked"), scope.expect("checked")))
            .map_err(invalid)?;
        let view = self.engine.reset(&s, scope).await;
        self.record("reset_counters", &who, Some(&s), &why, view.is_ok());
        let view = view.map_err(failed)?;
        Ok(Response::new(pb::ResetCountersResponse {
            state: Some(state(&view)),
        }))
    }

    async fn block(
        &self,
        req: Request<pb::BlockRequest>,
    ) -> Result<Response<pb::BlockResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        self.list(List::Block, &who, r.subject, r.duration, r.reason)
            .await?;
        Ok(Response::new(pb::BlockResponse {}))
    }

    async fn unblock(
        &self,
        req: Request<pb::UnblockRequest>,
    ) -> Result<Response<pb::UnblockResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        let was = self.unlist(List::Block, &who, r.subject, r.reason).await?;
        Ok(Response::new(pb::UnblockResponse { was_blocked: was }))
    }

    async fn allow(
        &self,
        req: Request<pb::AllowRequest>,
    ) -> Result<Response<pb::AllowResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        self.list(List::Safe, &who, r.subject, r.duration, r.reason)
            .await?;
        Ok(Response::new(pb::AllowResponse {}))
    }

    async fn disallow(
        &self,
        req: Request<pb::DisallowRequest>,
    ) -> Result<Response<pb::DisallowResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        let was = self.unlist(List::Safe, &who, r.subject, r.reason).await?;
        Ok(Response::new(pb::DisallowResponse { was_allowed: was }))
    }

    async fn get_conversion(
        &self,
        req: Request<pb::GetConversionRequest>,
    ) -> Result<Response<pb::GetConversionResponse>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        let mut errs = Violations::default();
        let country = if r.country.is_empty() {
            None
        } else {
            match CountryCode::parse(&r.country)
                .filter(|_| r.country.bytes().all(|b| b.is_ascii_uppercase()))
            {
                Some(c) => Some(c),
                None => {
                    errs.add("country", "must be an ISO 3166 alpha-2 code such as FR");
                    None
                }
            }
        };
        errs.finish(|| ()).map_err(invalid)?;
        let found = self.engine.conversions(country).await;
        let subject = country.map(AdminSubject::Country);
        self.record("get_conversion", &who, subject.as_ref(), "", found.is_ok());
        let (window, all, now) = found.map_err(failed)?;
        Ok(Response::new(pb::GetConversionResponse {
            window: Some(proto_duration(window)),
            entries: all
                .into_iter()
                .map(|(label, s)| pb::ConversionEntry {
                    scope: label.scope.as_str().into(),
                    subject: label.as_str().into(),
                    sent: s.sent,
                    verified: s.verified,
                    ratio: s.ratio(),
                    protected: s.protected(now),
                    protection_remaining: s
                        .protected(now)
                        .then(|| proto_duration(Duration::from_nanos(s.protected_until - now))),
                })
                .collect(),
        }))
    }

    async fn reload_policy(
        &self,
        req: Request<pb::ReloadPolicyRequest>,
    ) -> Result<Response<pb::ReloadPolicyResponse>, Status> {
        let who = caller(&req);
        if !self.reloader.has_policy_file() {
            self.record("reload_policy", &who, None, "", false);
            return Err(Status::failed_precondition(
                "tollgate was started without --policy: the built-in policy has nothing to reload",
            ));
        }
        let r = self.reloader.clone();
        let outcome = tokio::task::spawn_blocking(move || r.reload())
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        self.record("reload_policy", &who, None, "", outcome.problems.is_empty());
        Ok(Response::new(pb::ReloadPolicyResponse {
            ok: outcome.problems.is_empty(),
            version: outcome.policy_version,
            problems: outcome.problems,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_with_ids_and_reject_short_ones() {
        let t = Tokens::parse(
            "t",
            "# help desk\nhelpdesk 0123456789abcdef0123\n\nfedcba9876543210fedc\n",
        )
        .unwrap();
        assert_eq!(t.find(b"0123456789abcdef0123").as_deref(), Some("helpdesk"));
        assert_eq!(t.find(b"fedcba9876543210fedc").as_deref(), Some("line-4"));
        assert_eq!(t.find(b"0123456789abcdef0124"), None);
        assert_eq!(t.find(b""), None);
        assert!(matches!(
            Tokens::parse("t", "a b c\n"),
            Err(TokenError::Line { line: 1, .. })
        ));
        assert!(matches!(
            Tokens::single("x", "short"),
            Err(TokenError::TooShort { .. })
        ));
    }
}
