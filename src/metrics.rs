//! Metric names, help texts and recording, in one place.
//!
//! Prometheus naming (`tollgate_<what>_<unit>`, counters `_total`). Labels come
//! only from bounded sets: event, channel, decision, outcome, result, and rule
//! ids (bounded by the policy). Never a phone number, IP, device or account.

use crate::decision::Decision;
use crate::limits::conversion::{ConversionStats, Label, Scope};
use crate::limits::StoreStats;
use crate::policy::Snapshot;
use crate::request::{AssessInput, Channel, Event, Outcome};
use crate::signals::CountryCode;
use dashmap::DashMap;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const DECISIONS: &str = "tollgate_decisions_total";
pub const REASONS: &str = "tollgate_reasons_total";
pub const ASSESS_SECONDS: &str = "tollgate_assess_duration_seconds";
pub const REPORTS: &str = "tollgate_reports_total";
pub const REPORT_SECONDS: &str = "tollgate_report_duration_seconds";
pub const INVALID_REQUESTS: &str = "tollgate_invalid_requests_total";
pub const POLICY_RELOADS: &str = "tollgate_policy_reloads_total";
pub const POLICY_RULES: &str = "tollgate_policy_rules";
pub const STORE_KEYS: &str = "tollgate_store_keys";
pub const STORE_EVICTIONS: &str = "tollgate_store_evictions_total";
pub const STORE_ERRORS: &str = "tollgate_store_errors_total";
pub const OTP_SENDS: &str = "tollgate_otp_sends_total";
pub const OTP_VERIFICATIONS: &str = "tollgate_otp_verifications_total";
pub const CONVERSION_RATIO: &str = "tollgate_conversion_ratio";
pub const PROTECTIONS_ACTIVE: &str = "tollgate_protections_active";
pub const PROTECTION_ACTIVATIONS: &str = "tollgate_protection_activations_total";
pub const ADMIN_ACTIONS: &str = "tollgate_admin_actions_total";
pub const DATA_RELOADS: &str = "tollgate_data_reloads_total";
pub const DATA_ENTRIES: &str = "tollgate_data_entries";
pub const DATA_LOAD_SECONDS: &str = "tollgate_data_load_seconds";
pub const READY: &str = "tollgate_ready";
pub const AUDIT_DROPPED: &str = "tollgate_audit_dropped_total";
pub const AUDIT_WRITE_ERRORS: &str = "tollgate_audit_write_errors_total";

/// Latency buckets from 5 µs to 1 s: the engine answers in microseconds, the
/// RPC in well under a millisecond; the upper buckets catch store stalls.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often recorded latencies are folded into their histogram buckets.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
///
/// The recorder keeps every latency recorded (8 bytes each) until upkeep folds
/// them into bucket counts. A scrape does that, but a service nobody scrapes,
/// or scrapes rarely, would grow by 8 bytes per request without end, so a
/// thread (`tollgate-metrics`) runs upkeep every [`UPKEEP_EVERY`].
pub fn install() -> PrometheusHandle {
    install_with_upkeep(Some(UPKEEP_EVERY))
}

/// [`install`], with upkeep every `every`, or (`None`) only when the caller
/// runs it: for a profiler that counts instructions, under which a second of
/// wall time is a hundred times fewer calls than natively.
pub fn install_with_upkeep(every: Option<Duration>) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            if let Some(every) = every {
                let upkeep = handle.clone();
                std::thread::Builder::new()
                    .name("tollgate-metrics".into())
                    .spawn(move || loop {
                        std::thread::sleep(every);
                        upkeep.run_upkeep();
                    })
                    .expect("spawning the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        DECISIONS,
        "Assess decisions by event, channel and decision."
    );
    describe_counter!(
        REASONS,
        "Rules that fired, by rule id and whether the rule was in shadow."
    );
    describe_histogram!(
        ASSESS_SECONDS,
        Unit::Seconds,
        "Time to decide one Assess, inside the engine."
    );
    describe_counter!(REPORTS, "Report calls by outcome.");
    describe_histogram!(
        REPORT_SECONDS,
        Unit::Seconds,
        "Time to apply one Report, inside the engine."
    );
    describe_counter!(
        INVALID_REQUESTS,
        "Requests rejected as INVALID_ARGUMENT, by method."
    );
    describe_counter!(POLICY_RELOADS, "Policy loads by result (ok, error).");
    describe_gauge!(POLICY_RULES, "Rules in the policy in force.");
    describe_gauge!(STORE_KEYS, "Keys held by the state store, by kind.");
    describe_counter!(STORE_EVICTIONS, "Idle state-store entries evicted.");
    describe_counter!(STORE_ERRORS, "State-store calls that failed.");
    describe_counter!(
        OTP_SENDS,
        "OTP sends allowed, by destination country (ISO 3166 alpha-2, or unknown)."
    );
    describe_counter!(
        OTP_VERIFICATIONS,
        "Codes verified (Report OTP_VERIFIED), by destination country."
    );
    describe_gauge!(
        CONVERSION_RATIO,
        "Codes verified / codes sent over the policy's conversion window, by destination country."
    );
    describe_gauge!(
        PROTECTIONS_ACTIVE,
        "Automatic conversion protections in force, by scope (country, prefix)."
    );
    describe_counter!(
        PROTECTION_ACTIVATIONS,
        "Automatic conversion protections started, by scope."
    );
    describe_counter!(ADMIN_ACTIONS, "AdminService calls, by action.");
    describe_counter!(
        DATA_RELOADS,
        "Data file loads by dataset and result (ok, error)."
    );
    describe_gauge!(
        DATA_ENTRIES,
        "Entries (networks, addresses, ASNs, database records) in each dataset as last loaded."
    );
    describe_gauge!(
        DATA_LOAD_SECONDS,
        Unit::Seconds,
        "How long the last successful load of each dataset took."
    );
    describe_gauge!(
        READY,
        "1 once every data file has loaded and decisions are served, else 0."
    );
    describe_counter!(
        AUDIT_DROPPED,
        "Audit records dropped because the audit queue was full (or closed): the decision went ahead, its evidence line is missing."
    );
    describe_counter!(
        AUDIT_WRITE_ERRORS,
        "Audit records that could not be written to the audit sink (I/O errors)."
    );
    // Error counters exist from the start at 0, so the first error is an
    // increase that alert rules see.
    counter!(STORE_ERRORS).absolute(0);
    counter!(POLICY_RELOADS, "result" => "error").absolute(0);
    counter!(AUDIT_DROPPED).absolute(0);
    counter!(AUDIT_WRITE_ERRORS).absolute(0);
}

/// Handles of the series recorded on every call, registered once: after
/// that, recording one is an atomic add, with no label lookup, allocation or
/// lock. Cached only once [`install`] has put the Prometheus recorder in place
/// (before, recording goes to the no-op recorder and nothing is kept).
/// `slot` `None` (an index past a table: a variant missing from an `ALL`
/// list) records uncached.
fn with<T>(slot: Option<&OnceLock<T>>, make: impl FnOnce() -> T, f: impl FnOnce(&T)) {
    match slot {
        Some(slot) if HANDLE.get().is_some() => f(slot.get_or_init(make)),
        _ => f(&make()),
    }
}

const EVENTS: usize = Event::ALL.len();
/// Channels and "none".
const CHANNELS: usize = Channel::ALL.len() + 1;
const VERDICTS: usize = 3;
/// Two-letter codes and "unknown".
const COUNTRIES: usize = 26 * 26 + 1;

static DECISION_COUNTERS: [OnceLock<Counter>; EVENTS * CHANNELS * VERDICTS] =
    [const { OnceLock::new() }; EVENTS * CHANNELS * VERDICTS];
static ASSESS_HISTOGRAM: OnceLock<Histogram> = OnceLock::new();
static REPORT_HISTOGRAM: OnceLock<Histogram> = OnceLock::new();
static REPORT_COUNTERS: [OnceLock<Counter>; Outcome::ALL.len()] =
    [const { OnceLock::new() }; Outcome::ALL.len()];
static SEND_COUNTERS: [OnceLock<Counter>; COUNTRIES] = [const { OnceLock::new() }; COUNTRIES];
static VERIFIED_COUNTERS: [OnceLock<Counter>; COUNTRIES] = [const { OnceLock::new() }; COUNTRIES];
/// Rule id -> [not shadow, shadow]. Bounded by the rule ids policies have had.
/// Rule ids come from the operator's policy, not from requests, so a fast
/// unkeyed hash is safe (a refused request looks up one per reason).
type ReasonCounters = DashMap<Arc<str>, [OnceLock<Counter>; 2], rustc_hash::FxBuildHasher>;
static REASON_COUNTERS: OnceLock<ReasonCounters> = OnceLock::new();

pub fn decision(input: &AssessInput, d: &Decision, took: Duration) {
    let channel = input.channel.map_or(0, |c| c as usize + 1);
    let event = input.event as usize;
    let i = if event < EVENTS && channel < CHANNELS {
        (event * CHANNELS + channel) * VERDICTS + d.verdict as usize
    } else {
        usize::MAX
    };
    with(
        DECISION_COUNTERS.get(i),
        || {
            let channel = input.channel.map_or("none", |c| c.as_str());
            counter!(DECISIONS, "event" => input.event.as_str(), "channel" => channel, "decision" => d.verdict.as_str())
        },
        |c| c.increment(1),
    );
    for r in &d.reasons {
        let make = || counter!(REASONS, "rule" => r.code.to_string(), "shadow" => if r.shadow { "true" } else { "false" });
        if HANDLE.get().is_none() {
            make().increment(1);
            continue;
        }
        let rules = REASON_COUNTERS.get_or_init(ReasonCounters::default);
        let slot = usize::from(r.shadow);
        if let Some(c) = rules.get(&*r.code) {
            c[slot].get_or_init(make).increment(1);
            continue;
        }
        rules.entry(r.code.clone()).or_default()[slot]
            .get_or_init(make)
            .increment(1);
    }
    with(
        Some(&ASSESS_HISTOGRAM),
        || histogram!(ASSESS_SECONDS),
        |h| h.record(took.as_secs_f64()),
    );
}

/// A country label: an ISO code from the number plan (a bounded set), or
/// "unknown".
fn country(region: Option<CountryCode>) -> String {
    region.map_or_else(|| "unknown".to_owned(), |r| r.as_str().to_owned())
}

fn country_index(region: Option<CountryCode>) -> usize {
    let letter = |c: u8| c.checked_sub(b'A').filter(|&i| i < 26).map(usize::from);
    region
        .and_then(|r| Some(letter(r.as_bytes()[0])? * 26 + letter(r.as_bytes()[1])?))
        .unwrap_or(COUNTRIES - 1)
}

pub fn otp_sent(region: Option<CountryCode>) {
    with(
        SEND_COUNTERS.get(country_index(region)),
        || counter!(OTP_SENDS, "country" => country(region)),
        |c| c.increment(1),
    );
}

pub fn report(outcome: Outcome, region: Option<CountryCode>, took: Duration) {
    with(
        REPORT_COUNTERS.get(outcome as usize),
        || counter!(REPORTS, "outcome" => outcome.as_str()),
        |c| c.increment(1),
    );
    if outcome == Outcome::OtpVerified {
        with(
            VERIFIED_COUNTERS.get(country_index(region)),
            || counter!(OTP_VERIFICATIONS, "country" => country(region)),
            |c| c.increment(1),
        );
    }
    with(
        Some(&REPORT_HISTOGRAM),
        || histogram!(REPORT_SECONDS),
        |h| h.record(took.as_secs_f64()),
    );
}

pub fn invalid_request(method: &'static str) {
    counter!(INVALID_REQUESTS, "method" => method).increment(1);
}

pub fn policy_loaded(p: &Snapshot) {
    counter!(POLICY_RELOADS, "result" => "ok").increment(1);
    gauge!(POLICY_RULES).set(p.rule_ids().count() as f64);
}

pub fn policy_rejected() {
    counter!(POLICY_RELOADS, "result" => "error").increment(1);
}

pub fn store_error() {
    counter!(STORE_ERRORS).increment(1);
}

pub fn store_stats(s: StoreStats, evicted: usize) {
    for (kind, n) in [
        ("rate", s.rate_keys),
        ("phone", s.phone_keys),
        ("session", s.session_keys),
        ("account", s.account_keys),
        ("conversion", s.conversion_windows),
        ("listing", s.listings),
        ("assessment", s.assessments),
    ] {
        gauge!(STORE_KEYS, "kind" => kind).set(n as f64);
    }
    counter!(STORE_EVICTIONS).increment(evicted as u64);
}

pub fn protection_started(scope: Scope) {
    counter!(PROTECTION_ACTIVATIONS, "scope" => scope.as_str()).increment(1);
}

/// Per-country conversion ratios and active protections (prefixes are counted,
/// never labelled).
pub fn conversion(windows: &[(Label, ConversionStats)], now: u64) {
    let (mut countries, mut prefixes) = (0u32, 0u32);
    for (label, stats) in windows {
        match label.scope {
            Scope::Country => {
                if stats.protected(now) {
                    countries += 1;
                }
                if CountryCode::parse(label.as_str()).is_some() && stats.sent > 0 {
                    gauge!(CONVERSION_RATIO, "country" => label.as_str().to_owned())
                        .set(stats.ratio());
                }
            }
            Scope::Prefix => {
                if stats.protected(now) {
                    prefixes += 1;
                }
            }
        }
    }
    gauge!(PROTECTIONS_ACTIVE, "scope" => "country").set(f64::from(countries));
    gauge!(PROTECTIONS_ACTIVE, "scope" => "prefix").set(f64::from(prefixes));
}

pub fn data_loaded(dataset: &str, entries: usize, took: Duration) {
    counter!(DATA_RELOADS, "dataset" => dataset.to_owned(), "result" => "ok").increment(1);
    gauge!(DATA_ENTRIES, "dataset" => dataset.to_owned()).set(entries as f64);
    gauge!(DATA_LOAD_SECONDS, "dataset" => dataset.to_owned()).set(took.as_secs_f64());
}

pub fn data_rejected(dataset: &str) {
    counter!(DATA_RELOADS, "dataset" => dataset.to_owned(), "result" => "error").increment(1);
}

pub fn ready(ready: bool) {
    gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

pub fn admin_action(action: &'static str) {
    counter!(ADMIN_ACTIONS, "action" => action).increment(1);
}

/// One audit record dropped: the queue to the audit writer was full or closed.
/// Called on the hot path, only when a record is dropped.
pub fn audit_dropped() {
    counter!(AUDIT_DROPPED).increment(1);
}

/// `n` audit records lost to an I/O error of the audit sink.
pub fn audit_write_errors(n: u64) {
    counter!(AUDIT_WRITE_ERRORS).increment(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_value_has_its_own_handle_slot() {
        // The tables are indexed by discriminant: each list must be complete
        // and in declaration order.
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
        for (i, c) in Channel::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        let codes: std::collections::HashSet<_> = ["AA", "FR", "GG", "ZZ", "ZA"]
            .iter()
            .map(|c| country_index(CountryCode::parse(c)))
            .collect();
        assert_eq!(codes.len(), 5);
        assert!(codes.iter().all(|&i| i < COUNTRIES - 1));
        assert_eq!(country_index(None), COUNTRIES - 1);
    }
}
