//! The Prometheus rules and the Grafana dashboard under `rules/`.
//!
//! - promtool (from Debian's `prometheus` package, which `.ci/run` installs)
//!   checks `rules/tollgate.rules.yml` and runs its unit tests,
//!   `rules/tollgate.rules.test.yml`. A missing promtool is a failure, not a
//!   skip: rules that were never evaluated are not known to work.
//! - Every metric name in the rules, their tests and the dashboard is one that
//!   tollgate exports (the catalogue below) or a series the rules record, so a
//!   renamed metric cannot silently leave an alert watching nothing.
//! - The dashboard is importable as is, its queries parse, and it charts every
//!   catalogue metric.
//! - Every alert has a severity, a summary, a description and a runbook link to
//!   a section of the operator docs that exists.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The metrics tollgate exports, as the rules and the dashboard expect them.
/// A metric is added here when it is added to `src/metrics.rs`.
const CATALOGUE: &[&str] = &[
    "tollgate_decisions_total",
    "tollgate_reasons_total",
    "tollgate_assess_duration_seconds",
    "tollgate_report_duration_seconds",
    "tollgate_reports_total",
    "tollgate_invalid_requests_total",
    "tollgate_otp_sends_total",
    "tollgate_otp_verifications_total",
    "tollgate_conversion_ratio",
    "tollgate_protections_active",
    "tollgate_protection_activations_total",
    "tollgate_store_errors_total",
    "tollgate_store_fallback_active",
    "tollgate_store_keys",
    "tollgate_store_evictions_total",
    "tollgate_policy_reloads_total",
    "tollgate_data_reloads_total",
    "tollgate_data_entries",
    "tollgate_data_load_seconds",
    "tollgate_ready",
    "tollgate_admin_actions_total",
    "tollgate_audit_dropped_total",
    "tollgate_audit_write_errors_total",
];

/// Histograms: their series carry `_bucket`, `_count` and `_sum` suffixes.
const HISTOGRAMS: &[&str] = &[
    "tollgate_assess_duration_seconds",
    "tollgate_report_duration_seconds",
];

/// Metrics in `src/metrics.rs` that the rules and the dashboard deliberately
/// leave out.
const NOT_CHARTED: &[&str] = &[
    // Rules in the policy in force: a configuration fact, not a signal.
    "tollgate_policy_rules",
];

const RULES: &str = "rules/tollgate.rules.yml";
const RULE_TESTS: &str = "rules/tollgate.rules.test.yml";
const DASHBOARD: &str = "rules/dashboard.json";
/// Where the runbook sections live (the README's operator section).
const RUNBOOK_DOCS: &[&str] = &["README.md"];
const RUNBOOK_BASE: &str = "https://github.com/tollgate/tollgate#";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Runs promtool (or `$PROMTOOL`) from the repository root and fails with its
/// whole output unless it succeeds.
fn promtool(args: &[&str]) {
    let program = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let out: Output = match Command::new(&program)
        .args(args)
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed ({program:?} not found). The alert-rule tests need it: \
             install Debian's `prometheus` package, which ships /usr/bin/promtool \
             (`apt-get install --no-install-recommends prometheus`; `.ci/run` does this), \
             or set PROMTOOL to a promtool binary."
        ),
        Err(e) => panic!("running {program:?}: {e}"),
    };
    if !out.status.success() {
        panic!(
            "`promtool {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

#[test]
fn promtool_accepts_the_rule_file() {
    promtool(&["check", "rules", RULES]);
}

#[test]
fn rule_unit_tests_pass() {
    promtool(&["test", "rules", RULE_TESTS]);
}

/// Identifiers that name a tollgate series: maximal runs of `[A-Za-z0-9_:]`
/// containing `tollgate_` (`tollgate_x_total`, `job:tollgate_x:rate5m`).
/// Alert names (`TollgateX`), group names (`tollgate.x`) and the repository
/// URL (`tollgate/tollgate`) are not series and do not match.
fn series_names(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.contains("tollgate_"))
        .collect()
}

/// The names the rule file records, from its `record:` lines.
fn recorded_series() -> BTreeSet<String> {
    let recorded: BTreeSet<String> = read(RULES)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(|name| name.trim().to_string())
        .collect();
    assert!(!recorded.is_empty(), "{RULES} records no series");
    recorded
}

/// The catalogue metric a series name belongs to, if any.
fn catalogue_metric(name: &str) -> Option<&'static str> {
    if let Some(m) = CATALOGUE.iter().find(|m| **m == name) {
        return Some(m);
    }
    HISTOGRAMS.iter().copied().find(|h| {
        name.strip_prefix(h)
            .is_some_and(|suffix| ["_bucket", "_count", "_sum"].contains(&suffix))
    })
}

/// The names in `text` that are neither catalogue metrics nor recorded series.
fn unknown_series<'a>(text: &'a str, recorded: &BTreeSet<String>) -> Vec<&'a str> {
    series_names(text)
        .into_iter()
        .filter(|name| {
            if name.contains(':') {
                !recorded.contains(*name)
            } else {
                catalogue_metric(name).is_none()
            }
        })
        .collect()
}

#[test]
fn rules_use_only_catalogue_metrics() {
    let recorded = recorded_series();
    let rules = read(RULES);
    let unknown = unknown_series(&rules, &recorded);
    assert!(
        unknown.is_empty(),
        "{RULES} uses series tollgate does not export: {unknown:?}"
    );
    // Recorded series are built only from catalogue metrics (the check above
    // covers their expressions); a recorded name never shadows a raw metric.
    for name in &recorded {
        assert!(
            name.contains(':'),
            "recorded series {name} must be named level:metric:operations"
        );
    }
}

#[test]
fn rule_tests_feed_only_catalogue_metrics() {
    // Input series with a misspelt name would test the rules against a metric
    // that never exists.
    let recorded = recorded_series();
    let tests = read(RULE_TESTS);
    let unknown = unknown_series(&tests, &recorded);
    assert!(
        unknown.is_empty(),
        "{RULE_TESTS} uses series tollgate does not export: {unknown:?}"
    );
}

/// `## Alert: TollgateX` -> `alert-tollgatex`, as GitHub makes heading anchors.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_that_exists() {
    let rules = read(RULES);
    let mut anchors = BTreeSet::new();
    for doc in RUNBOOK_DOCS {
        let Ok(text) = std::fs::read_to_string(root().join(doc)) else {
            continue;
        };
        for line in text.lines() {
            if let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) {
                anchors.insert(github_anchor(heading));
            }
        }
    }

    // One block per rule: from its `- alert:` / `- record:` line to the next.
    let mut alerts = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in rules.lines() {
        let t = line.trim_start();
        if t.starts_with("- alert:") || t.starts_with("- record:") || t.starts_with("- name:") {
            alerts.extend(current.take());
            if let Some(name) = t.strip_prefix("- alert:") {
                current = Some((name.trim().to_string(), Vec::new()));
            }
        } else if let Some((_, body)) = current.as_mut() {
            body.push(t);
        }
    }
    alerts.extend(current);
    assert!(
        alerts.len() >= 7,
        "expected the alerts (a) to (g), found {alerts:?}"
    );

    for (name, body) in &alerts {
        let field = |key: &str| body.iter().find_map(|l| l.strip_prefix(key)).map(str::trim);
        let severity = field("severity:").unwrap_or_else(|| panic!("{name}: no severity label"));
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?} is not critical, warning or info"
        );
        for key in ["summary:", "description:"] {
            assert!(
                field(key).is_some_and(|v| !v.is_empty()),
                "{name}: no {key} annotation"
            );
        }
        let runbook = field("runbook:").unwrap_or_else(|| panic!("{name}: no runbook annotation"));
        let anchor = runbook.strip_prefix(RUNBOOK_BASE).unwrap_or_else(|| {
            panic!("{name}: runbook {runbook} does not start with {RUNBOOK_BASE}")
        });
        assert_eq!(
            anchor,
            format!("alert-{}", name.to_lowercase()),
            "{name}: runbook anchor"
        );
        assert!(
            anchors.contains(anchor),
            "{name}: runbook anchor #{anchor} has no heading `Alert: {name}` in {RUNBOOK_DOCS:?}"
        );
    }
}

/// Every panel, including those inside collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

#[test]
fn dashboard_is_importable() {
    let d = dashboard();
    assert_eq!(d["title"], "tollgate");
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40),
        "uid: {}",
        d["uid"]
    );
    assert!(
        d["id"].is_null(),
        "an exported dashboard has no id (Grafana assigns one)"
    );
    assert!(d["schemaVersion"].as_u64().is_some(), "schemaVersion");

    // The import form asks for a Prometheus data source; the `datasource`
    // variable defaults to it and every query uses the variable, so the choice
    // can also be changed later from the dashboard.
    let inputs = d["__inputs"].as_array().expect("__inputs");
    let input = inputs
        .iter()
        .find(|i| i["type"] == "datasource" && i["pluginId"] == "prometheus")
        .expect("a Prometheus data source input");
    let input_ref = format!("${{{}}}", input["name"].as_str().expect("input name"));

    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no templating variable {name:?}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("datasource")["current"]["value"], input_ref.as_str());
    let country = var("country");
    assert!(
        country["definition"]
            .as_str()
            .is_some_and(|q| q.contains("tollgate_otp_sends_total")),
        "the country variable lists the countries OTP codes are sent to"
    );

    let ds = serde_json::json!({ "type": "prometheus", "uid": "${datasource}" });
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], ds, "variable {}", v["name"]);
    }

    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for p in all_panels(&d) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id in {title:?}"
        );
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].as_u64().is_some(), "{title:?}: gridPos.{k}");
        }
        if p["type"] == "row" {
            continue;
        }
        titles.insert(title);
        assert_eq!(p["datasource"], ds, "{title:?}: panel data source");
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        for t in targets.unwrap_or_else(|| panic!("{title:?} has no queries")) {
            assert_eq!(t["datasource"], ds, "{title:?}: query data source");
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{title:?}: empty expr"
            );
        }
    }
    for wanted in [
        "Decisions by decision",
        "Block ratio by event",
        "Top reasons (selected range)",
        "OTP sends per minute by country",
        "OTP verifications per minute by country",
        "Conversion by country (last hour) and baseline",
        "Automatic protections",
        "Assess latency p50 / p99",
        "Store errors",
        "Store fallback active",
        "Store keys and evictions",
        "Ready",
        "Policy reloads",
        "Data reloads",
        "Data entries",
        "Data load time",
        "Audit records lost",
    ] {
        assert!(
            titles.contains(wanted),
            "no panel {wanted:?}; panels: {titles:?}"
        );
    }
}

/// Every query of the dashboard: panel targets and templating variables.
fn dashboard_queries(d: &Value) -> Vec<String> {
    let mut queries: Vec<String> = all_panels(d)
        .into_iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(String::from))
        .collect();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        queries.extend(v["definition"].as_str().map(String::from));
        queries.extend(v["query"]["query"].as_str().map(String::from));
    }
    queries
}

#[test]
fn dashboard_uses_only_catalogue_metrics_and_charts_them_all() {
    let d = dashboard();
    let recorded = recorded_series();
    let queries = dashboard_queries(&d);
    let mut charted = BTreeSet::new();
    for q in &queries {
        let unknown = unknown_series(q, &recorded);
        assert!(
            unknown.is_empty(),
            "dashboard query uses series tollgate does not export: {unknown:?} in {q}"
        );
        charted.extend(series_names(q).into_iter().filter_map(catalogue_metric));
    }
    let missing: Vec<_> = CATALOGUE.iter().filter(|m| !charted.contains(*m)).collect();
    assert!(missing.is_empty(), "no dashboard panel charts {missing:?}");
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool has no offline expression checker, but it parses every rule:
    // each panel query becomes a recording rule, with Grafana's interval
    // variables replaced by durations ($job and $country sit inside regex
    // strings and need nothing).
    let d = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, p) in all_panels(&d).into_iter().enumerate() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr");
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1d");
            rules.push_str(&format!(
                "      - record: dashboard:panel{i}:{}\n        expr: |\n",
                t["refId"].as_str().unwrap_or("X")
            ));
            for line in expr.lines() {
                rules.push_str(&format!("          {line}\n"));
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).expect("write rules");
    promtool(&["check", "rules", file.to_str().expect("utf-8 path")]);
}

#[test]
fn metrics_module_exports_only_catalogue_names() {
    // A metric renamed in src/metrics.rs would leave its alerts and panels
    // watching a series that no longer exists.
    let src = read("src/metrics.rs");
    let exported: Vec<&str> = src
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const"))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|name| name.starts_with("tollgate_"))
        .collect();
    assert!(
        !exported.is_empty(),
        "found no metric names in src/metrics.rs"
    );
    for name in exported {
        assert!(
            CATALOGUE.contains(&name) || NOT_CHARTED.contains(&name),
            "src/metrics.rs exports {name}, which the rules and dashboard do not know: \
             add it to CATALOGUE in tests/alert_rules.rs and chart it, or to NOT_CHARTED"
        );
    }
}

#[test]
fn series_names_finds_metrics_and_recordings_but_not_alert_names_or_urls() {
    let text = r#"alert: TollgateX  expr: rate(tollgate_a_total{x="1"}[5m]) / job:tollgate_b:ratio
        runbook: https://github.com/tollgate/tollgate#alert-tollgatex  group tollgate.conversion"#;
    let names: Vec<_> = series_names(text).into_iter().collect();
    assert_eq!(names, ["job:tollgate_b:ratio", "tollgate_a_total"]);
    assert_eq!(
        github_anchor(" Alert: TollgateConversionDrop"),
        "alert-tollgateconversiondrop"
    );
    assert_eq!(
        catalogue_metric("tollgate_assess_duration_seconds_bucket"),
        Some("tollgate_assess_duration_seconds")
    );
    assert_eq!(catalogue_metric("tollgate_decisions_total_bucket"), None);
}
