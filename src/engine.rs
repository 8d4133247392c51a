//! One request through the stages: signals -> one store call -> pure findings
//! and evaluation -> effects (what the decision changes, metrics). Also the
//! operator's view and changes of one subject (used by the AdminService).

use crate::audit::Audit;
use crate::clock::SharedClock;
use crate::decision::{Decision, Verdict};
use crate::effects::{self, SubjectKeys};
use crate::keys::{domain_tag, KeyHasher, SubjectHash};
use crate::limits::conversion::{ConversionStats, Label, Scope};
use crate::limits::listing::{KindSet, LengthSet, ListKind, Listing};
use crate::limits::{
    CheckBatch, Effect, Inspect, Inspection, Keep, Labels, List, ListKeys, RateCheck, Rates,
    Remembered, ResetScope, StateStore, StoreError, RATES_INLINE,
};
use crate::metrics;
use crate::policy::findings::{self, Asked};
use crate::policy::{evaluate, Count, KeyKind, ListNames, Rule, Snapshot};
use crate::request::{
    AdminSubject, AssessInput, AssessmentId, Channel, Event, Outcome, ReportInput, E164,
};
use crate::signals::data::DataSet;
use crate::signals::{ip, phone, CountryCode, PhoneFacts, Signals, SubjectBuf};
use arc_swap::ArcSwap;
use smallvec::SmallVec;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no assessment {0}: unknown or expired")]
    UnknownAssessment(AssessmentId),
    #[error("not ready: the data files have not all loaded yet")]
    NotReady,
}

/// Restart-only engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How long an assessment can be named in a `Report`.
    pub assessment_ttl: Duration,
    /// The custom lists the data files provide (policies are compiled against
    /// them).
    pub list_names: ListNames,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            assessment_ttl: Duration::from_secs(3600),
            list_names: ListNames {
                checked: true,
                ..ListNames::default()
            },
        }
    }
}

/// The answer to an `Assess`.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub id: AssessmentId,
    pub decision: Decision,
    pub signals: Signals,
}

/// What an operator sees of one subject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectView {
    pub state: Inspection,
    /// Rate limits keyed on the subject that are throttling now.
    pub throttled: Vec<(Arc<str>, Duration)>,
    pub now: u64,
}

/// Key domains: one per kind of subject, fixed so state survives renames.
struct Domains {
    phone: u64,
    session: u64,
    session_fallback: u64,
    account: u64,
    destination: u64,
    lists: [u64; 7],
}

impl Domains {
    fn new() -> Self {
        let list = |k: ListKind| domain_tag(&format!("list/{}", k.as_str()));
        Domains {
            phone: domain_tag("phone"),
            session: domain_tag("session"),
            session_fallback: domain_tag("session/account+destination"),
            account: domain_tag("account"),
            destination: domain_tag("destination"),
            lists: [
                ListKind::Phone,
                ListKind::Prefix,
                ListKind::Account,
                ListKind::Device,
                ListKind::Ip,
                ListKind::Network,
                ListKind::Country,
            ]
            .map(list),
        }
    }
}

/// The subjects of a request hashed once (see [`crate::keys`]): the keys of
/// every rule and state keyed on them derive from these.
#[derive(Debug, Clone, Copy)]
struct Hashed {
    phone: Option<SubjectHash>,
    account: Option<SubjectHash>,
}

/// The identifiers of a request or report that name its subjects.
struct Ids<'a> {
    phone: Option<&'a E164>,
    email: Option<&'a str>,
    account: Option<&'a str>,
    session: Option<&'a str>,
    channel: Option<Channel>,
}

pub struct Engine<S> {
    audit: Audit,
    policy: ArcSwap<Snapshot>,
    data: ArcSwap<DataSet>,
    ready: tokio::sync::watch::Sender<bool>,
    store: S,
    keys: KeyHasher,
    clock: SharedClock,
    ids: IdGen,
    options: EngineOptions,
    d: Domains,
    /// The subject of limits keyed on everything (`key = "global"`).
    global: SubjectHash,
    /// Kinds of subject listed by this process, and the lengths of listed
    /// prefixes and networks: a request looks up only those. (The listings
    /// themselves live in the store; these are what this process set.)
    listed: KindSet,
    prefix_lens: LengthSet,
    v4_lens: LengthSet,
    v6_lens: LengthSet,
}

impl<S: StateStore> Engine<S> {
    pub fn new(
        policy: Snapshot,
        store: S,
        keys: KeyHasher,
        clock: SharedClock,
        options: EngineOptions,
    ) -> Self {
        metrics::policy_loaded(&policy);
        Engine {
            audit: Audit::disabled(),
            policy: ArcSwap::from_pointee(policy),
            data: ArcSwap::from_pointee(DataSet::empty()),
            ready: tokio::sync::watch::Sender::new(true),
            store,
            global: keys.subject(&[]),
            keys,
            clock,
            ids: IdGen::new(),
            options,
            d: Domains::new(),
            listed: KindSet::default(),
            prefix_lens: LengthSet::default(),
            v4_lens: LengthSet::default(),
            v6_lens: LengthSet::default(),
        }
    }

    /// Records every decision, report and admin call on `audit` (the evidence
    /// log); off by default.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Snapshot> {
        self.policy.load_full()
    }

    /// Swaps in a new policy; requests in flight finish on the old one. Counters
    /// are keyed by rule id and survive.
    pub fn set_policy(&self, policy: Snapshot) {
        metrics::policy_loaded(&policy);
        self.policy.store(Arc::new(policy));
    }

    /// The data files in force.
    pub fn data(&self) -> Arc<DataSet> {
        self.data.load_full()
    }

    /// Swaps in a new data set.
    pub fn set_data(&self, data: DataSet) {
        let ready = data.ready();
        self.data.store(Arc::new(data));
        metrics::ready(ready);
        self.ready.send_replace(ready);
    }

    /// Follows readiness (for the health service).
    pub fn subscribe_ready(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Every data file has loaded at least once: decisions can be made.
    pub fn ready(&self) -> bool {
        self.data.load().ready()
    }

    /// The custom list names policies compile against.
    pub fn list_names(&self) -> &ListNames {
        &self.options.list_names
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub async fn assess(&self, input: &AssessInput) -> Result<Assessment, EngineError> {
        let started = Instant::now();
        let snap = self.policy.load();
        let data = self.data.load();
        if !data.ready() {
            return Err(EngineError::NotReady);
        }
        let now = self.clock.now_nanos();
        // The number first: the batch's keys need it, not the IP's data.
        let mut signals = Signals::of_number(input);
        let region = signals.phone.as_ref().and_then(|p| p.region);
        let id = self.ids.next();
        // A block: the batch, its answers and the rate rules are not held
        // across the apply's await, so the future (moved whole when it is
        // boxed or polled in place) is the smaller.
        let (found, decision, changes) = {
            let (keys, batch, rate_rules) =
                self.plan(&snap, input, signals.phone.as_ref(), region, id, now);
            // The store starts loading the batch's entries while the IP is
            // looked up (a walk of the MMDB's tree and the lists' ranges):
            // both wait for memory at once.
            self.store.expect(&batch);
            signals.look_up_ip(input, &data);
            let results = self
                .store
                .check(&batch)
                .await
                .inspect_err(|_| metrics::store_error())?;

            let asked = Asked {
                rate_rules: &rate_rules,
                labels: &batch.conversion,
                destination: keys.destination,
            };
            let found = findings::collect(&snap, input, &signals, &asked, &results, now);
            let decision = evaluate(&snap, &signals, &found.fired);
            let changes = effects::after_assess(
                &snap,
                input.event,
                input.channel,
                &keys,
                &batch,
                &results,
                &found,
                &decision,
                now,
            );
            (found, decision, changes)
        };
        if !changes.is_empty() {
            self.store
                .apply(now, &changes)
                .await
                .inspect_err(|_| metrics::store_error())?;
        }
        for label in &found.protect {
            metrics::protection_started(label.scope);
        }
        if decision.verdict == Verdict::Allow && input.event == Event::OtpSend {
            metrics::otp_sent(region);
        }
        metrics::decision(input, &decision, started.elapsed());
        self.audit.assessment(id, input, &signals, &decision);
        Ok(Assessment {
            id,
            decision,
            signals,
        })
    }

    pub async fn report(&self, input: &ReportInput) -> Result<(), EngineError> {
        let started = Instant::now();
        let snap = self.policy.load();
        let now = self.clock.now_nanos();
        let facts = input.phone.as_ref().map(phone::facts);
        let (mut keys, _) = self.subject_keys(
            &snap,
            Ids {
                phone: input.phone.as_ref(),
                email: input.email.as_deref(),
                account: input.account_id.as_deref(),
                session: input.session_id.as_deref(),
                channel: None,
            },
            facts.as_ref(),
        );
        let mut region = facts.and_then(|f| f.region);
        if let Some(id) = input.assessment_id {
            // A verification counts in the windows the assessment remembered
            // once, however often it is reported.
            let spend_windows = input.outcome == Outcome::OtpVerified && snap.conversion.is_some();
            let r = self
                .store
                .recall(id, now, spend_windows)
                .await
                .inspect_err(|_| metrics::store_error())?
                .ok_or(EngineError::UnknownAssessment(id))?;
            // What the assessment named wins; the report may add subjects.
            keys.phone = r.phone.or(keys.phone);
            keys.session = r.session.or(keys.session);
            keys.account = r.account.or(keys.account);
            // Conversion windows: the ones the assessment remembered (see
            // `plan`), so that sent and verified counts stay pairs.
            keys.labels = r.conversion.iter().flatten().copied().collect();
            region = r.region.or(region);
        }
        let changes = effects::after_report(&snap, input.outcome, &keys);
        if !changes.is_empty() {
            self.store
                .apply(now, &changes)
                .await
                .inspect_err(|_| metrics::store_error())?;
        }
        metrics::report(input.outcome, region, started.elapsed());
        self.audit.report(input);
        Ok(())
    }

    /// Sheds state that decides nothing now if the store is over its limits;
    /// cheap otherwise. Run often (every second).
    pub fn relieve(&self) -> usize {
        let snap = self.policy.load();
        let keep = Keep {
            phone_unverified: snap.phone.as_ref().map_or(0, |p| p.max_unverified_sends),
            account_unverified: snap
                .account
                .as_ref()
                .map_or(0, |a| a.params.max_unverified_sends),
            session_code_attempts: snap
                .session
                .as_ref()
                .map_or(0, |s| s.params.max_code_attempts),
        };
        let n = self.store.relieve(self.clock.now_nanos(), &keep);
        if n > 0 {
            metrics::store_stats(self.store.stats(), n);
        }
        n
    }

    /// Drops idle state and refreshes the store gauges; run on a schedule.
    pub async fn maintain(&self) -> usize {
        let now = self.clock.now_nanos();
        let n = self.store.evict_idle(now);
        metrics::store_stats(self.store.stats(), n);
        if let Ok(windows) = self.store.conversions(now).await {
            metrics::conversion(&windows, now);
        }
        n
    }

    /// What the store is asked about `input`: the request's subject keys, the
    /// batch (rate checks, state, listings, conversion windows, the
    /// assessment to remember) and the rule behind each rate check. Takes
    /// the number's facts only: the IP's data is looked up after it.
    fn plan<'s>(
        &self,
        snap: &'s Snapshot,
        input: &AssessInput,
        number: Option<&PhoneFacts>,
        region: Option<CountryCode>,
        id: AssessmentId,
        now: u64,
    ) -> (SubjectKeys, CheckBatch, SmallVec<[&'s Rule; RATES_INLINE]>) {
        let (keys, hashed) = self.subject_keys(
            snap,
            Ids {
                phone: input.phone.as_ref(),
                email: input.email.as_deref(),
                account: input.account_id.as_deref(),
                session: input.session_id.as_deref(),
                channel: input.channel,
            },
            number,
        );

        let mut buf: SubjectBuf = [0; 18];
        // What a code to this destination costs: the same for every
        // cost-weighted limit (three in the default policy).
        let cost = snap.costs.of(region);
        let mut rates = Rates::new();
        let mut rate_rules: SmallVec<[&Rule; RATES_INLINE]> = SmallVec::new();
        // Each subject hashed once, however many rules are keyed on it.
        let mut subjects: SmallVec<[Option<Option<SubjectHash>>; RATES_INLINE]> =
            smallvec::smallvec![None; snap.subjects.len()];
        for limit in &snap.limits {
            if !limit.rule.applies(input.event, input.channel) {
                continue;
            }
            let subject = match subjects[limit.subject] {
                Some(h) => h,
                None => {
                    let h = match limit.key {
                        KeyKind::Phone => hashed.phone,
                        KeyKind::Account => hashed.account,
                        KeyKind::Global => Some(self.global),
                        kind => Signals::subject(number, kind, input, &mut buf)
                            .map(|s| self.keys.subject(s)),
                    };
                    subjects[limit.subject] = Some(h);
                    h
                }
            };
            if let Some(subject) = subject {
                rates.push(RateCheck {
                    key: subject.key(limit.rule.tag),
                    quota: limit.quota,
                    cells: if limit.cost { cost } else { 1 },
                    counts_allowed: limit.count == Count::Allowed,
                    bypassable: limit.rule.bypassable,
                });
                rate_rules.push(&limit.rule);
            }
        }
        let (blocks, safe) = self.listing_keys(input, number, hashed);
        let to_phone = input.channel.is_some_and(|c| c.needs_phone());
        let counts_conversion = input.event == Event::OtpSend && to_phone;
        let conversion = if counts_conversion {
            keys.labels.clone()
        } else {
            Labels::new()
        };
        // The windows a report naming this assessment counts its code in, so
        // that verified codes pair with counted sends: for a send, those it
        // counted in (none if it counted in none; a refused send's are
        // dropped when it is given back); for the check of a code sent to a
        // phone (OTP_VERIFY on a phone channel), its number's.
        let counted_in = match input.event {
            Event::OtpVerify if to_phone => &keys.labels,
            _ => &conversion,
        };
        let counted_in = [counted_in.first().copied(), counted_in.get(1).copied()];
        let batch = CheckBatch {
            now,
            rates,
            phone: keys.phone,
            session: keys.session,
            account: keys.account,
            conversion_window: snap
                .conversion
                .as_ref()
                .map_or(Duration::ZERO, |c| c.window),
            conversion,
            blocks,
            safe,
            remember: Some((
                id,
                Remembered {
                    expires_at: now.saturating_add(self.options.assessment_ttl.as_nanos() as u64),
                    event: input.event,
                    phone: keys.phone,
                    session: keys.session,
                    account: keys.account,
                    conversion: counted_in,
                    region,
                },
            )),
        };
        (keys, batch, rate_rules)
    }

    fn subject_keys(
        &self,
        snap: &Snapshot,
        ids: Ids<'_>,
        facts: Option<&PhoneFacts>,
    ) -> (SubjectKeys, Hashed) {
        let hashed = Hashed {
            phone: ids.phone.map(|p| self.keys.subject(p.digits().as_bytes())),
            account: ids.account.map(|a| self.keys.subject(a.as_bytes())),
        };
        let phone = hashed.phone.map(|h| h.key(self.d.phone));
        let email = |e: &str| self.keys.key(self.d.destination, e.as_bytes());
        let destination = match (ids.channel, hashed.phone, ids.email) {
            (Some(Channel::Email), _, Some(e)) => Some(email(e)),
            (_, Some(p), _) => Some(p.key(self.d.destination)),
            (_, None, Some(e)) => Some(email(e)),
            _ => None,
        };
        // Never 0: 0 means "no destination".
        let destination = destination.map_or(0, |k| k | 1);
        let account = hashed.account.map(|h| h.key(self.d.account));
        let session = match (ids.session, hashed.account) {
            (Some(s), _) => Some(self.keys.key(self.d.session, s.as_bytes())),
            // No session id: the account and destination name the session.
            (None, Some(a)) if destination != 0 => {
                Some(a.key(self.d.session_fallback ^ destination))
            }
            _ => None,
        };
        let labels = match (&snap.conversion, ids.phone, facts) {
            (Some(c), Some(p), Some(f)) => {
                let country = match f.region {
                    Some(r) => Label::new(Scope::Country, r.as_str()),
                    None => Label::new(Scope::Country, &format!("+{}", f.calling_code)),
                };
                let prefix = Label::new(Scope::Prefix, f.prefix(p, c.prefix_digits));
                country.into_iter().chain(prefix).collect()
            }
            _ => Labels::new(),
        };
        let keys = SubjectKeys {
            phone,
            session,
            account,
            destination,
            labels,
        };
        (keys, hashed)
    }

    fn list_domain(&self, kind: ListKind) -> u64 {
        self.d.lists[kind as usize]
    }

    fn list_key(&self, kind: ListKind, subject: &[u8]) -> u64 {
        self.keys.key(self.list_domain(kind), subject)
    }

    /// Keys of the admin blocks and safe-list entries that could apply.
    fn listing_keys(
        &self,
        input: &AssessInput,
        number: Option<&PhoneFacts>,
        hashed: Hashed,
    ) -> (ListKeys, ListKeys) {
        let (mut blocks, mut safe) = (ListKeys::new(), ListKeys::new());
        let mut both = |k: u64| {
            blocks.push(k);
            safe.push(k);
        };
        let listed = |kind| self.listed.contains(kind);
        if let Some(p) = hashed.phone.filter(|_| listed(ListKind::Phone)) {
            both(p.key(self.list_domain(ListKind::Phone)));
        }
        if let Some(a) = hashed.account.filter(|_| listed(ListKind::Account)) {
            both(a.key(self.list_domain(ListKind::Account)));
        }
        if let Some(d) = input
            .device_id
            .as_ref()
            .filter(|_| listed(ListKind::Device))
        {
            both(self.list_key(ListKind::Device, d.as_bytes()));
        }
        if let Some(addr) = input.ip {
            let mut buf: SubjectBuf = [0; 18];
            if listed(ListKind::Ip) {
                both(self.list_key(ListKind::Ip, ip::octets(addr, &mut buf)));
            }
            let lens = match addr {
                IpAddr::V4(_) => &self.v4_lens,
                IpAddr::V6(_) => &self.v6_lens,
            };
            for len in lens.lengths() {
                let net = ip::network(addr, len, len, &mut buf);
                both(self.list_key(ListKind::Network, net));
            }
        }
        if let Some(p) = &input.phone {
            let s = p.as_str().as_bytes();
            for len in self.prefix_lens.lengths() {
                if usize::from(len) <= s.len() {
                    blocks.push(self.list_key(ListKind::Prefix, &s[..usize::from(len)]));
                }
            }
        }
        if let Some(r) = number
            .and_then(|f| f.region)
            .filter(|_| listed(ListKind::Country))
        {
            blocks.push(self.list_key(ListKind::Country, r.as_bytes()));
        }
        (blocks, safe)
    }

    /// The listing key of an admin subject (`None` for sessions, which are not
    /// listed).
    fn admin_list_key(&self, s: &AdminSubject) -> Option<(ListKind, u64)> {
        let mut buf: SubjectBuf = [0; 18];
        let (kind, subject): (_, &[u8]) = match s {
            AdminSubject::Phone(p) => (ListKind::Phone, p.digits().as_bytes()),
            AdminSubject::Prefix(p) => (ListKind::Prefix, p.as_bytes()),
            AdminSubject::Account(a) => (ListKind::Account, a.as_bytes()),
            AdminSubject::Device(d) => (ListKind::Device, d.as_bytes()),
            AdminSubject::Ip(a) => (ListKind::Ip, ip::octets(*a, &mut buf)),
            AdminSubject::Network(a, len) => {
                (ListKind::Network, ip::network(*a, *len, *len, &mut buf))
            }
            AdminSubject::Country(c) => (ListKind::Country, c.as_bytes()),
            AdminSubject::Session(_) => return None,
        };
        Some((kind, self.list_key(kind, subject)))
    }

    /// Rate-limit keys of the rules keyed on this kind of subject.
    fn admin_rate_checks(&self, snap: &Snapshot, s: &AdminSubject) -> Vec<(Arc<str>, RateCheck)> {
        let mut buf: SubjectBuf = [0; 18];
        let mut out = Vec::new();
        for l in &snap.limits {
            let subject: Option<Vec<u8>> = match (l.key, s) {
                (KeyKind::Phone, AdminSubject::Phone(p)) => Some(p.digits().as_bytes().to_vec()),
                (KeyKind::Account, AdminSubject::Account(a)) => Some(a.as_bytes().to_vec()),
                (KeyKind::Device, AdminSubject::Device(d)) => Some(d.as_bytes().to_vec()),
                (KeyKind::Session, AdminSubject::Session(x)) => Some(x.as_bytes().to_vec()),
                (KeyKind::Ip, AdminSubject::Ip(a)) => Some(ip::octets(*a, &mut buf).to_vec()),
                (KeyKind::Subnet { v4, v6 }, AdminSubject::Ip(a)) => {
                    Some(ip::network(*a, v4, v6, &mut buf).to_vec())
                }
                (KeyKind::PhonePrefix { .. }, AdminSubject::Prefix(p)) => {
                    Some(p.as_bytes().to_vec())
                }
                (KeyKind::PhoneCountry, AdminSubject::Country(c)) => Some(c.as_bytes().to_vec()),
                _ => None,
            };
            if let Some(subject) = subject {
                out.push((
                    l.rule.id.clone(),
                    RateCheck {
                        key: self.keys.key(l.rule.tag, &subject),
                        quota: l.quota,
                        cells: 1,
                        counts_allowed: false,
                        bypassable: false,
                    },
                ));
            }
        }
        out
    }

    /// The keys of the number, account or session state an admin subject names.
    fn admin_state_keys(&self, s: &AdminSubject) -> (Option<u64>, Option<u64>, Option<u64>) {
        match s {
            AdminSubject::Phone(p) => (
                Some(self.keys.key(self.d.phone, p.digits().as_bytes())),
                None,
                None,
            ),
            AdminSubject::Account(a) => (
                None,
                Some(self.keys.key(self.d.account, a.as_bytes())),
                None,
            ),
            AdminSubject::Session(x) => (
                None,
                None,
                Some(self.keys.key(self.d.session, x.as_bytes())),
            ),
            _ => (None, None, None),
        }
    }

    /// Everything tollgate holds about one subject.
    pub async fn inspect(&self, s: &AdminSubject) -> Result<SubjectView, EngineError> {
        let snap = self.policy.load();
        let now = self.clock.now_nanos();
        let rates = self.admin_rate_checks(&snap, s);
        let list = self.admin_list_key(s).map(|(_, key)| key);
        let (phone, account, session) = self.admin_state_keys(s);
        let q = Inspect {
            now,
            phone,
            account,
            session,
            block: list,
            safe: list,
            rates: rates.iter().map(|(_, r)| *r).collect(),
        };
        let state = self.store.inspect(&q).await?;
        let throttled = rates
            .iter()
            .zip(&state.rates)
            .filter_map(|((id, _), w)| w.map(|w| (id.clone(), w)))
            .collect();
        Ok(SubjectView {
            state,
            throttled,
            now,
        })
    }

    /// Puts a subject on the block list or the safe list.
    pub async fn set_listing(
        &self,
        list: List,
        s: &AdminSubject,
        duration: Option<Duration>,
        reason: &str,
    ) -> Result<bool, EngineError> {
        let Some((kind, key)) = self.admin_list_key(s) else {
            return Ok(false);
        };
        self.listed.insert(kind);
        match s {
            AdminSubject::Prefix(p) => self.prefix_lens.insert(p.len() as u8),
            AdminSubject::Network(IpAddr::V4(_), len) => self.v4_lens.insert(*len),
            AdminSubject::Network(IpAddr::V6(_), len) => self.v6_lens.insert(*len),
            _ => {}
        }
        let now = self.clock.now_nanos();
        let listing = Listing::new(now, duration, reason);
        self.store
            .apply(now, &[Effect::List { list, key, listing }])
            .await?;
        Ok(true)
    }

    /// Takes a subject off a list; returns whether it was on it.
    pub async fn remove_listing(&self, list: List, s: &AdminSubject) -> Result<bool, EngineError> {
        let Some((_, key)) = self.admin_list_key(s) else {
            return Ok(false);
        };
        let view = self.inspect(s).await?;
        let was = match list {
            List::Block => view.state.block.is_some(),
            List::Safe => view.state.safe.is_some(),
        };
        let now = self.clock.now_nanos();
        self.store
            .apply(now, &[Effect::Unlist { list, key }])
            .await?;
        Ok(was)
    }

    /// The help-desk reset; returns the subject's state after it.
    pub async fn reset(
        &self,
        s: &AdminSubject,
        scope: ResetScope,
    ) -> Result<SubjectView, EngineError> {
        let snap = self.policy.load();
        let now = self.clock.now_nanos();
        let (phone, account, session) = self.admin_state_keys(s);
        let mut changes = vec![Effect::Reset {
            scope,
            phone,
            account,
            session,
        }];
        if scope == ResetScope::All {
            changes.extend(
                self.admin_rate_checks(&snap, s)
                    .into_iter()
                    .map(|(_, r)| Effect::Forget { key: r.key }),
            );
        }
        self.store.apply(now, &changes).await?;
        drop(snap);
        self.inspect(s).await
    }

    /// Conversion windows, optionally of one country and its ranges.
    pub async fn conversions(
        &self,
        country: Option<CountryCode>,
    ) -> Result<(Duration, Vec<(Label, ConversionStats)>, u64), EngineError> {
        let snap = self.policy.load();
        let now = self.clock.now_nanos();
        let window = snap
            .conversion
            .as_ref()
            .map_or(Duration::ZERO, |c| c.window);
        let mut all = self.store.conversions(now).await?;
        if let Some(c) = country {
            // A country's ranges: prefixes whose calling code belongs to it.
            let code = phone::calling_code_of(c);
            all.retain(|(l, _)| match l.scope {
                Scope::Country => l.as_str() == c.as_str(),
                Scope::Prefix => {
                    code.is_some_and(|cc| l.as_str()[1..].starts_with(&cc.to_string()))
                }
            });
        }
        Ok((window, all, now))
    }
}

/// Unique assessment ids: a random 64-bit process prefix and a counter
/// starting at a random value (see [`AssessmentId::new`]).
struct IdGen {
    prefix: u64,
    counter: AtomicU64,
}

impl IdGen {
    fn new() -> Self {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the OS random source is available");
        IdGen {
            prefix: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            counter: AtomicU64::new(u64::from_le_bytes(b[8..].try_into().expect("8 bytes"))),
        }
    }

    fn next(&self) -> AssessmentId {
        AssessmentId::new(self.prefix, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique() {
        let g = IdGen::new();
        let ids: HashSet<_> = (0..10_000).map(|_| g.next()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
