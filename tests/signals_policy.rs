//! Signal rules end to end: real MMDB files written in the test, real list
//! files, the real server and client; reload without restart, a corrupt file
//! keeping the old decisions, readiness.

mod common;

use common::*;
use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tollgate::proto::v1 as pb;
use tollgate::reload::Reload;
use tollgate::server::ServerLimits;
use tollgate::signals::data::{DataSources, Feeds};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// A MaxMind-shaped country + ASN database.
fn geo_db(dir: &Path) -> PathBuf {
    let mut w = Writer::builder("GeoLite2-Test")
        .ip_version(IpVersion::V6)
        .build();
    let rec = |iso: &str, asn: u32, org: &str| {
        Value::map([
            ("country", Value::map([("iso_code", Value::from(iso))])),
            ("autonomous_system_number", Value::from(asn)),
            ("autonomous_system_organization", Value::from(org)),
        ])
    };
    for (net, v) in [
        ("192.0.2.0/24", rec("FR", 3215, "Orange")),
        ("198.51.100.0/24", rec("NG", 37148, "Some ISP")),
        ("203.0.113.0/24", rec("US", 16509, "Cloud Hosting Inc")),
        ("2001:db8:1::/48", rec("DE", 3320, "Deutsche Telekom")),
    ] {
        w.insert_value(net.parse::<IpNet>().unwrap(), v).unwrap();
    }
    let path = dir.join("geo.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

struct Fixture {
    _dir: tempfile::TempDir,
    vpn: PathBuf,
    geo: PathBuf,
    sources: DataSources,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let geo = geo_db(dir.path());
    let tor = write(
        dir.path(),
        "exit-addresses",
        "ExitNode 0011223344556677889900112233445566778899\nPublished 2026-11-20 10:00:00\nLastStatus 2026-11-20 11:00:00\nExitAddress 192.0.2.66 2026-11-20 11:02:03\n",
    );
    let vpn = write(
        dir.path(),
        "vpn.txt",
        "# VPN exits\n192.0.2.128/25\n2001:db8:1:ff::/64\n",
    );
    let hosting = write(
        dir.path(),
        "hosting-asn.txt",
        "AS16509 # Cloud Hosting Inc\n",
    );
    let partners = write(dir.path(), "partners.txt", "192.0.2.10/32\n");
    let sources = DataSources {
        files: vec![
            (Feeds::Mmdb, geo.clone()),
            (Feeds::TorExits, tor),
            (Feeds::VpnNetworks, vpn.clone()),
            (Feeds::HostingAsns, hosting),
            (Feeds::NamedNetworks("partners".into()), partners),
        ],
    };
    Fixture {
        _dir: dir,
        vpn,
        geo,
        sources,
    }
}

const POLICY: &str = r#"
version = "signals-test"
[scoring]
step_up_at = 40
block_at = 80

[[signal]]
id = "phone.region_not_served"
phone_region_not_in = ["FR", "BE", "GB"]
action = "block"

[[signal]]
id = "phone.gb_only"
events = ["registration"]
phone_region_in = ["GB"]
action = "step_up"

[[signal]]
id = "ip.country_denied"
ip_country_in = ["NG"]
action = "block"

[[signal]]
id = "ip.country_mismatch"
country_mismatch = true
action = "score"
score = 20

[[signal]]
id = "ip.tor"
ip_anonymous = ["tor"]
action = "block"

[[signal]]
id = "ip.vpn"
ip_anonymous = ["vpn"]
action = "step_up"
step_up_methods = ["captcha"]

[[signal]]
id = "ip.hosting"
ip_anonymous = ["hosting"]
action = "score"
score = 40

[[signal]]
id = "ip.partner"
ip_list = ["partners"]
action = "score"
score = 5

[[signal]]
id = "ip.asn_watch"
asn_in = [37148]
action = "score"
score = 1

[[signal]]
id = "phone.premium_rate"
phone_type = ["premium_rate", "shared_cost"]
action = "block"

[[signal]]
id = "phone.voip"
phone_type = ["voip"]
action = "score"
score = 25

[[signal]]
id = "phone.toll_free"
phone_type = ["toll_free"]
action = "step_up"

[[signal]]
id = "phone.invalid"
phone_valid = false
action = "block"
"#;

async fn server(f: &Fixture) -> TestServer {
    TestServer::start_full(POLICY, ServerLimits::default(), None, f.sources.clone()).await
}

async fn ask(
    c: &mut RiskServiceClient<tonic::transport::Channel>,
    phone: &str,
    ip: &str,
) -> pb::AssessResponse {
    c.assess(otp_send(phone, ip)).await.unwrap().into_inner()
}

#[tokio::test]
async fn country_rules_by_phone_and_by_ip_and_their_mismatch() {
    let f = fixture();
    let srv = server(&f).await;
    let mut c = srv.client().await;

    // A French number from a French IP: nothing.
    let r = ask(&mut c, "+33612345678", "192.0.2.1").await;
    assert!(r.reasons.is_empty(), "{r:?}");
    let s = r.signals.unwrap();
    assert_eq!(
        (s.ip_country.as_str(), s.asn, s.asn_org.as_str()),
        ("FR", 3215, "Orange")
    );

    // A German number: not served (deny by phone region).
    let r = ask(&mut c, "+4915123456789", "192.0.2.1").await;
    assert_eq!(decision(&r), pb::Decision::Block);
    assert_eq!(
        codes(&r),
        vec!["phone.region_not_served", "ip.country_mismatch"]
    );

    // From a denied IP country (and the ASN rule sees the AS).
    let r = ask(&mut c, "+33612345678", "198.51.100.7").await;
    assert_eq!(
        codes(&r),
        vec!["ip.country_denied", "ip.country_mismatch", "ip.asn_watch"]
    );
    assert_eq!(decision(&r), pb::Decision::Block);

    // Guernsey is not Great Britain: +44 7781… is GG, not served; +44 7400… is GB.
    let r = ask(&mut c, "+447781123456", "").await;
    assert_eq!(codes(&r), vec!["phone.region_not_served"]);
    assert_eq!(r.signals.unwrap().phone_region, "GG");
    let reg = |n: &str| pb::AssessRequest {
        event: pb::Event::Registration as i32,
        phone_number: n.into(),
        ..Default::default()
    };
    assert_eq!(
        codes(&c.assess(reg("+447400123456")).await.unwrap().into_inner()),
        vec!["phone.gb_only"]
    );
    assert!(
        codes(&c.assess(reg("+447911123456")).await.unwrap().into_inner())
            .iter()
            .all(|x| *x != "phone.gb_only")
    );

    // Unknown IP (not in the database): no IP-country rule fires, no mismatch.
    let r = ask(&mut c, "+33612345678", "100.64.0.1").await;
    assert!(r.reasons.is_empty(), "{r:?}");
    assert_eq!(r.signals.unwrap().ip_country, "");
    srv.stop().await;
}

#[tokio::test]
async fn number_types_and_validity() {
    let f = fixture();
    let srv = server(&f).await;
    let mut c = srv.client().await;
    for (n, want_code, want_type) in [
        ("+33899123456", "phone.premium_rate", "premium_rate"),
        ("+33912345678", "phone.voip", "voip"),
        ("+33800123456", "phone.toll_free", "toll_free"),
        ("+33000000000", "phone.invalid", "unknown"),
    ] {
        let r = ask(&mut c, n, "").await;
        assert_eq!(codes(&r), vec![want_code], "{n}: {r:?}");
        assert_eq!(r.signals.unwrap().phone_type, want_type);
    }
    assert_eq!(
        decision(&ask(&mut c, "+33899123456", "").await),
        pb::Decision::Block
    );
    assert_eq!(
        decision(&ask(&mut c, "+33912345679", "").await),
        pb::Decision::Allow,
        "VoIP only adds score"
    );
    assert_eq!(
        decision(&ask(&mut c, "+33800123457", "").await),
        pb::Decision::StepUp
    );
    srv.stop().await;
}

#[tokio::test]
async fn anonymity_from_tor_vpn_and_hosting_asn_lists_and_named_lists() {
    let f = fixture();
    let srv = server(&f).await;
    let mut c = srv.client().await;
    let r = ask(&mut c, "+33612345678", "192.0.2.66").await;
    assert_eq!(codes(&r), vec!["ip.tor"]);
    assert!(r.signals.unwrap().ip_tor);

    let r = ask(&mut c, "+33612345679", "192.0.2.200").await;
    assert_eq!(codes(&r), vec!["ip.vpn"]);
    assert_eq!(r.step_up, vec![pb::StepUpMethod::Captcha as i32]);
    assert!(r.signals.unwrap().ip_vpn);
    // IPv6 VPN network.
    assert_eq!(
        codes(&ask(&mut c, "+33612345670", "2001:db8:1:ff::5").await),
        vec!["ip.country_mismatch", "ip.vpn"]
    );

    // Hosting by ASN (through the database's ASN), plus the mismatch: 60 -> step-up.
    let r = ask(&mut c, "+33612345671", "203.0.113.9").await;
    assert_eq!(codes(&r), vec!["ip.country_mismatch", "ip.hosting"]);
    assert_eq!((decision(&r), r.score), (pb::Decision::StepUp, 60));
    assert!(r.signals.unwrap().ip_hosting);

    // A custom named list.
    assert_eq!(
        codes(&ask(&mut c, "+33612345672", "192.0.2.10").await),
        vec!["ip.partner"]
    );
    srv.stop().await;
}

/// The value of the series whose name and labels contain all of `parts`.
fn series(scrape: &str, name: &str, parts: &[&str]) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_good_file_changes_decisions_without_restart_and_a_bad_one_keeps_the_old() {
    let f = fixture();
    let srv = server(&f).await;
    let mut c = srv.client().await;
    assert!(ask(&mut c, "+33612345678", "192.0.2.50")
        .await
        .reasons
        .is_empty());

    // The VPN list grows: the next decision sees it, no restart.
    std::fs::write(&f.vpn, "192.0.2.0/26\n192.0.2.128/25\n").unwrap();
    let outcome = srv.reloader.reload();
    assert!(outcome.problems.is_empty(), "{outcome:?}");
    assert_eq!(
        codes(&ask(&mut c, "+33612345678", "192.0.2.50").await),
        vec!["ip.vpn"]
    );

    // A half-written list (bad last line) is refused with its line; the old
    // list keeps deciding; the error is counted.
    let errors = |s: &str| {
        series(
            s,
            "tollgate_data_reloads_total",
            &["dataset=\"vpn\"", "result=\"error\""],
        )
    };
    let before = errors(&srv.scrape().await);
    std::fs::write(&f.vpn, "192.0.2.128/25\n192.0.2.\n").unwrap();
    let outcome = srv.reloader.reload();
    assert_eq!(outcome.problems.len(), 1, "{outcome:?}");
    assert!(
        outcome.problems[0].starts_with(&format!("{}:2:", f.vpn.display())),
        "{outcome:?}"
    );
    assert_eq!(
        codes(&ask(&mut c, "+33612345678", "192.0.2.50").await),
        vec!["ip.vpn"]
    );
    assert_eq!(errors(&srv.scrape().await), before + 1.0);

    // A corrupt database (truncated mid-write) is refused; the old one serves.
    let good = std::fs::read(&f.geo).unwrap();
    std::fs::write(&f.geo, &good[..good.len() / 2]).unwrap();
    let outcome = srv.reloader.reload();
    assert!(
        outcome.problems.iter().any(|p| p.contains("geo.mmdb")),
        "{outcome:?}"
    );
    let r = ask(&mut c, "+33612345678", "198.51.100.7").await;
    assert!(
        codes(&r).contains(&"ip.country_denied"),
        "the old database still says NG: {r:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_changed_file_is_picked_up_by_the_watcher() {
    let f = fixture();
    let srv = server(&f).await;
    let mut c = srv.client().await;
    let _watcher = tollgate::reload::watch(srv.reloader.clone(), vec![f.vpn.clone()]).unwrap();
    assert!(ask(&mut c, "+33612345678", "192.0.2.50")
        .await
        .reasons
        .is_empty());
    // Replace the file the way deploy tools do: write aside, rename over.
    let tmp = f.vpn.with_extension("tmp");
    std::fs::write(&tmp, "192.0.2.0/26\n").unwrap();
    std::fs::rename(&tmp, &f.vpn).unwrap();
    // Wait (bounded) for the watcher's reload to land.
    let mut seen = false;
    for _ in 0..100 {
        if codes(&ask(&mut c, "+33612345678", "192.0.2.50").await) == vec!["ip.vpn"] {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the watcher reloaded the changed list");
    srv.stop().await;
}

#[tokio::test]
async fn not_ready_until_every_data_file_has_loaded() {
    let f = fixture();
    let missing = f.vpn.with_file_name("late.txt");
    let mut sources = f.sources.clone();
    sources
        .files
        .push((Feeds::DatacenterNetworks, missing.clone()));
    let srv = TestServer::start_full(POLICY, ServerLimits::default(), None, sources).await;
    let mut c = srv.client().await;
    let mut h = HealthClient::new(srv.channel().await);
    let status = |h: &mut HealthClient<tonic::transport::Channel>| {
        let mut h = h.clone();
        async move {
            h.check(HealthCheckRequest {
                service: "tollgate.v1.RiskService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
        }
    };
    assert_eq!(status(&mut h).await, ServingStatus::NotServing as i32);
    let err = c.assess(otp_send("+33612345678", "")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);

    std::fs::write(&missing, "203.0.113.0/24\n").unwrap();
    let outcome = srv.reloader.reload();
    assert!(outcome.problems.is_empty(), "{outcome:?}");
    // Health follows readiness (bounded wait for the watch to propagate).
    let mut serving = false;
    for _ in 0..100 {
        if status(&mut h).await == ServingStatus::Serving as i32 {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(serving);
    assert!(c.assess(otp_send("+33612345678", "")).await.is_ok());
    srv.stop().await;
}
