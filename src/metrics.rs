//! Metric names, help texts and recording, in one place.
//!
//! Prometheus naming (`tollgate_<what>_<unit>`, counters `_total`). Labels come
//! only from bounded sets: event, channel, decision, outcome, result, and rule
//! ids (bounded by the policy). Never a phone number, IP, device or account.

use crate::decision::Decision;
use crate::limits::StoreStats;
use crate::policy::Snapshot;
use crate::request::{AssessInput, Outcome};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
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

/// Latency buckets from 5 µs to 1 s: the engine answers in microseconds, the
/// RPC in well under a millisecond; the upper buckets catch store stalls.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
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
}

pub fn decision(input: &AssessInput, d: &Decision, took: Duration) {
    let channel = input.channel.map_or("none", |c| c.as_str());
    counter!(DECISIONS, "event" => input.event.as_str(), "channel" => channel, "decision" => d.verdict.as_str())
        .increment(1);
    for r in &d.reasons {
        counter!(REASONS, "rule" => r.code.to_string(), "shadow" => if r.shadow { "true" } else { "false" })
            .increment(1);
    }
    histogram!(ASSESS_SECONDS).record(took.as_secs_f64());
}

pub fn report(outcome: Outcome, took: Duration) {
    counter!(REPORTS, "outcome" => outcome.as_str()).increment(1);
    histogram!(REPORT_SECONDS).record(took.as_secs_f64());
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
    gauge!(STORE_KEYS, "kind" => "rate").set(s.rate_keys as f64);
    gauge!(STORE_KEYS, "kind" => "backoff").set(s.backoff_keys as f64);
    gauge!(STORE_KEYS, "kind" => "assessment").set(s.assessments as f64);
    counter!(STORE_EVICTIONS).increment(evicted as u64);
}
