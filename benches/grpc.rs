//! gRPC load: `Assess` throughput as a fraction of an empty unary RPC served by
//! the same tonic server setup, driven by the same load generator, in the same
//! run (target: at least 80 %), and `Assess` latency at half its saturating
//! load.
//!
//! Three servers on 127.0.0.1, in one runtime (`server` threads):
//! - **empty**: [`RiskRouter`] (the listener stack `server::serve` uses: same
//!   timeout, concurrent-stream and message-size limits, health, reflection)
//!   around `EmptyRisk`, whose `Assess` returns `AssessResponse::default()` at
//!   once;
//! - **stub**: the same stack around `StubRisk`, which does all an `Assess`
//!   does but the engine's work: checks and converts the request as the
//!   service does, and answers with a real assessment of an allowed send
//!   (taken from the engine once, before the runs) converted to its message.
//!   Between empty and assess, it splits the gap in two: the messages
//!   (validation, a larger answer to build, encode and decode) and the
//!   engine (with the verification reports below);
//! - **assess**: `server::serve` itself, with the engine: the default policy,
//!   every signal loaded (as `benches/decision.rs`: a 50k-network VPN list, a
//!   2k Tor list, a country+ASN MMDB of 5k networks), the Prometheus recorder
//!   installed as `main` does, and a million tracked keys before the first RPC
//!   (see `fill`).
//!
//! The load generator (another runtime, `client` threads) holds real HTTP/2
//! gRPC connections (tonic channels) and sends every server the same requests:
//! OTP sends to scattered valid French mobile numbers from scattered IPs, each
//! with its own device, account and session. The engine's clock is a fake one
//! that the generator advances by 100 ms per request, as `benches/decision.rs`
//! does: 10 sends a simulated second, which the default per-range limits let
//! through. Four codes in five that are allowed are reported verified
//! (in-process, `Engine::report`: the ratio compares one RPC with one RPC, and
//! the report's CPU is still charged to the `Assess` runs), so conversion stays
//! healthy. The summary says what fraction was allowed.
//!
//! 1. Saturation, closed loop: every connection keeps a fixed number of calls
//!    in flight; each run warms up for 1 s and counts completions over the next
//!    5 s. Runs alternate (empty, stub, assess, empty, ...) and the medians
//!    are reported. The stub is measured here only: the latency phases below
//!    and the CPU-per-call ratio compare `Assess` with the empty RPC.
//! 2. Latency, open loop: `Assess` at half its median saturation rate, calls
//!    started on a fixed schedule whatever the answers do (a pacer thread
//!    wakes every 100 µs and starts the calls due by then), latency timed per
//!    call from its start; the empty RPC at the same rate for reference.
//! 3. Two calls at once on an otherwise idle connection, every 5 ms (a
//!    frontend assessing two events in parallel): the slower of each pair.
//!
//! Client and server share the machine's cores: the throughput figures are the
//! machine's, the ratio is the figure. CPU per call is read from
//! `/proc/self/task/*/stat` for the server and client threads separately.
//!
//! `cargo bench --bench grpc`

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tollgate::clock::FakeClock;
use tollgate::engine::{Engine, EngineOptions};
use tollgate::keys::KeyHasher;
use tollgate::limits::{MemoryStore, StateStore};
use tollgate::policy::{compile_with, ListNames, DEFAULT_POLICY, DEFAULT_POLICY_NAME};
use tollgate::proto::v1 as pb;
use tollgate::request::{AssessInput, ReportInput};
use tollgate::server::{serve, Listeners, RiskRouter, ServerLimits};
use tollgate::signals::data::{DataSet, DataSources, Feeds};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use pb::risk_service_client::RiskServiceClient;

/// Simulated time between two requests: 10 requests a second of scattered
/// French traffic, which the default per-range limits let through.
const STEP: Duration = Duration::from_millis(100);
/// HTTP/2 connections from the load generator to the server under test.
const CONNECTIONS: usize = 4;
/// Calls each connection keeps in flight in the closed-loop runs.
const IN_FLIGHT: usize = 32;
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
/// Closed-loop runs per service (alternating).
const ROUNDS: usize = 3;
/// Distinct requests; a subject comes back after ~7 simulated hours, past its
/// backoff and limits.
const POOL: usize = 1 << 18;
/// Open loop: how often the pacer starts the calls that are due.
const PACE: Duration = Duration::from_micros(100);
/// Pairs of concurrent calls on an idle connection.
const PAIRS: usize = 200;

/// xorshift: deterministic inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The data files of `benches/decision.rs`.
fn write_data(dir: &Path) -> DataSources {
    let mut rng = Rng(0x5eed);
    let mut cidrs = String::new();
    for _ in 0..50_000 {
        let a = Ipv4Addr::from((rng.next() as u32) & 0xffff_ff00);
        cidrs.push_str(&format!("{a}/{}\n", 20 + rng.next() % 9));
    }
    std::fs::write(dir.join("vpn.txt"), cidrs).unwrap();
    let mut tor = String::new();
    for _ in 0..2_000 {
        tor.push_str(&format!("{}\n", Ipv4Addr::from(rng.next() as u32)));
    }
    std::fs::write(dir.join("tor.txt"), tor).unwrap();
    let mut w = Writer::builder("Bench-Country-ASN")
        .ip_version(IpVersion::V6)
        .build();
    // French addresses, as French customers have (no country mismatch).
    for i in 0..5_000u32 {
        let net: IpNet = format!("{}/20", Ipv4Addr::from(i << 12)).parse().unwrap();
        let rec = Value::map([
            ("country", Value::map([("iso_code", Value::from("FR"))])),
            ("autonomous_system_number", Value::from(64_512 + i % 500)),
            (
                "autonomous_system_organization",
                Value::from(format!("AS org {}", i % 500)),
            ),
        ]);
        w.insert_value(net, rec).unwrap();
    }
    std::fs::write(dir.join("geo.mmdb"), w.to_bytes().unwrap()).unwrap();
    DataSources {
        files: vec![
            (Feeds::Mmdb, dir.join("geo.mmdb")),
            (Feeds::TorExits, dir.join("tor.txt")),
            (Feeds::VpnNetworks, dir.join("vpn.txt")),
        ],
    }
}

/// An OTP send for subject `n`, as a client sends it: its own number, IP
/// (inside the MMDB's space, so every lookup finds a record), device, account
/// and session. Subjects are scattered (a bijective mix of `n`), as real ones
/// are: numbers over all French mobile ranges, IPs over the database's networks.
fn request(n: u64) -> pb::AssessRequest {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    pb::AssessRequest {
        event: pb::Event::OtpSend as i32,
        channel: pb::Channel::Sms as i32,
        phone_number: format!("+336{:08}", z % 100_000_000),
        ip: Ipv4Addr::from(((z >> 32) as u32 % (5_000 << 12)) | 1).to_string(),
        device_id: format!("device-{n}"),
        account_id: format!("account-{n}"),
        session_id: format!("session-{n}"),
        ..Default::default()
    }
}

fn input(r: &pb::AssessRequest) -> AssessInput {
    AssessInput::try_from(r.clone()).expect("a valid request")
}

/// `count` requests from `from` on whose number is valid (the allow path is
/// about real customers; random digits also hit unallocated ranges).
fn valid_requests(from: u64, count: usize) -> Vec<pb::AssessRequest> {
    (from..)
        .map(request)
        .filter(|r| tollgate::signals::phone::facts(input(r).phone.as_ref().unwrap()).valid)
        .take(count)
        .collect()
}

fn verified(assessment_id: String) -> ReportInput {
    ReportInput::try_from(pb::ReportRequest {
        assessment_id,
        outcome: pb::Outcome::OtpVerified as i32,
        ..Default::default()
    })
    .expect("a valid report")
}

/// The engine `main` would build, with the default policy and its send budgets
/// raised and every signal loaded.
fn engine(sources: DataSources, clock: &FakeClock) -> Engine<MemoryStore> {
    let names = ListNames {
        ip: vec![],
        asn: vec![],
        checked: true,
    };
    // The default policy with its send budgets raised: no daily budget survives
    // hundreds of thousands of sends in a few simulated seconds, and the allow
    // path must stay allowed to be measured.
    let text = DEFAULT_POLICY
        .replace("rate = \"100000/1d\"", "rate = \"1000000000/1d\"")
        .replace("rate = \"2000/1h\"", "rate = \"1000000000/1h\"")
        .replace("rate = \"1000000/1d\"", "rate = \"1000000000/1d\"");
    assert_eq!(
        text.matches("1000000000/").count(),
        3,
        "the three budgets were raised"
    );
    let policy = compile_with(DEFAULT_POLICY_NAME, &text, &names).unwrap();
    let engine = Engine::new(
        policy,
        MemoryStore::new(tollgate::limits::StoreLimits {
            max_rate_keys: 20_000_000,
            max_subjects: 4_000_000,
            max_assessments: 4_000_000,
            ..Default::default()
        }),
        KeyHasher::from_secret(b"bench"),
        Arc::new(clock.clone()),
        EngineOptions {
            list_names: names,
            ..EngineOptions::default()
        },
    );
    let (data, report) = DataSet::load(Arc::new(sources), None);
    assert!(report.iter().all(|r| r.result.is_ok()), "{report:?}");
    engine.set_data(data);
    engine
}

/// Sends every request of the pool once, in-process, then more subjects
/// until at least a million keys are tracked (every send touches about ten
/// limiters), as `benches/decision.rs` does. The RPCs then come back to
/// subjects the store already holds, hours of simulated time later (past
/// their backoff and limits): the store is measured at its size, not while it
/// grows (a growing shard's table is rehashed under its lock, which stalls
/// every decision that touches the shard; a server at steady state rarely
/// pays it).
async fn fill(engine: &Engine<MemoryStore>, clock: &FakeClock, pool: &[pb::AssessRequest]) {
    let started = Instant::now();
    let send = |r: AssessInput, n: u64| async move {
        let a = engine.assess(&r).await.unwrap();
        if n % 5 != 0 {
            engine.report(&verified(a.id.to_string())).await.unwrap();
        }
        clock.advance(STEP);
    };
    for (n, r) in pool.iter().enumerate() {
        send(input(r), n as u64).await;
    }
    let mut n = 1_000_000;
    while engine.store().stats().rate_keys < 1_000_000 {
        send(input(&request(n)), n).await;
        n += 1;
    }
    eprintln!(
        "setup: {} in-process sends in {:.1?}: {} rate keys tracked",
        pool.len() as u64 + n - 1_000_000,
        started.elapsed(),
        engine.store().stats().rate_keys
    );
}

/// The RPC `Assess` is compared with: answers at once.
struct EmptyRisk;

/// `Assess` without the engine: the request checked and converted as
/// `RiskApi` does it, the answer an allowed send got, converted as `RiskApi`
/// converts it.
struct StubRisk(tollgate::engine::Assessment);

#[tonic::async_trait]
impl pb::risk_service_server::RiskService for StubRisk {
    async fn assess(
        &self,
        request: Request<pb::AssessRequest>,
    ) -> Result<Response<pb::AssessResponse>, Status> {
        let input = AssessInput::try_from(request.into_inner())
            .map_err(|e| tollgate::service::to_status(e.into()))?;
        std::hint::black_box(&input);
        Ok(Response::new(self.0.clone().into()))
    }

    async fn report(
        &self,
        _: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        Ok(Response::new(pb::ReportResponse {}))
    }
}

#[tonic::async_trait]
impl pb::risk_service_server::RiskService for EmptyRisk {
    async fn assess(
        &self,
        _: Request<pb::AssessRequest>,
    ) -> Result<Response<pb::AssessResponse>, Status> {
        Ok(Response::new(pb::AssessResponse::default()))
    }

    async fn report(
        &self,
        _: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        Ok(Response::new(pb::ReportResponse {}))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Empty,
    Stub,
    Assess,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Empty => "empty",
            Kind::Stub => "stub",
            Kind::Assess => "assess",
        }
    }
}

/// What the generator shares between its calls.
struct Load {
    empty: Vec<RiskServiceClient<Channel>>,
    stub: Vec<RiskServiceClient<Channel>>,
    assess: Vec<RiskServiceClient<Channel>>,
    pool: Vec<pb::AssessRequest>,
    next: AtomicU64,
    clock: FakeClock,
    engine: Arc<Engine<MemoryStore>>,
    /// Assess answers, and how many were ALLOW.
    answered: AtomicU64,
    allowed: AtomicU64,
    /// Reason codes of the answers that were not ALLOW.
    refused: Mutex<BTreeMap<String, u64>>,
    errors: AtomicU64,
}

impl Load {
    fn clients(&self, kind: Kind) -> &[RiskServiceClient<Channel>] {
        match kind {
            Kind::Empty => &self.empty,
            Kind::Stub => &self.stub,
            Kind::Assess => &self.assess,
        }
    }

    /// One call; the same work for every service except what the engine
    /// needs (the verification reports).
    async fn call(&self, kind: Kind, client: &mut RiskServiceClient<Channel>) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let req = self.pool[i as usize % self.pool.len()].clone();
        self.clock.advance(STEP);
        match client.assess(req).await {
            Ok(r) if kind == Kind::Assess => {
                let r = r.into_inner();
                self.answered.fetch_add(1, Ordering::Relaxed);
                if r.decision == pb::Decision::Allow as i32 {
                    self.allowed.fetch_add(1, Ordering::Relaxed);
                    if i % 5 != 0 {
                        self.engine
                            .report(&verified(r.assessment_id))
                            .await
                            .unwrap();
                    }
                } else {
                    let mut refused = self.refused.lock().unwrap();
                    for reason in r.reasons {
                        *refused.entry(reason.code).or_insert(0) += 1;
                    }
                }
                true
            }
            Ok(_) => true,
            Err(e) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("    {} call failed: {e}", kind.name());
                }
                false
            }
        }
    }
}

/// CPU time (user + system) of this process's threads whose name starts with
/// `server` and `client`, from `/proc/self/task/*/stat` (USER_HZ = 100).
fn cpu() -> (Duration, Duration) {
    let (mut server, mut client) = (0u64, 0u64);
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        // After the name: state is field 3; utime and stime are 14 and 15.
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        if comm.starts_with("server") {
            server += ticks;
        } else if comm.starts_with("client") {
            client += ticks;
        }
    }
    (
        Duration::from_millis(server * 10),
        Duration::from_millis(client * 10),
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Saturation {
    rate: f64,
    /// CPU per call, server and client threads.
    server_cpu: Duration,
    client_cpu: Duration,
}

/// Closed loop: every connection keeps `IN_FLIGHT` calls going; completions
/// counted over `MEASURE` after `WARM_UP`.
async fn saturate(load: Arc<Load>, kind: Kind) -> Saturation {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in load.clients(kind) {
        for _ in 0..IN_FLIGHT {
            let (load, stop, done, mut client) =
                (load.clone(), stop.clone(), done.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if load.call(kind, &mut client).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    tokio::time::sleep(WARM_UP).await;
    let (c0, t0, cpu0) = (done.load(Ordering::Relaxed), Instant::now(), cpu());
    tokio::time::sleep(MEASURE).await;
    let (c1, t1, cpu1) = (done.load(Ordering::Relaxed), Instant::now(), cpu());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let n = (c1 - c0).max(1);
    Saturation {
        rate: n as f64 / (t1 - t0).as_secs_f64(),
        server_cpu: (cpu1.0 - cpu0.0) / n as u32,
        client_cpu: (cpu1.1 - cpu0.1) / n as u32,
    }
}

struct Latency {
    achieved: f64,
    calls: usize,
    /// How far the pacer fell behind its schedule at worst.
    lag: Duration,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

/// Open loop: calls started at `rate` a second whatever the answers do, each
/// timed from its start; calls started during `WARM_UP` are not counted.
///
/// The pacer is a plain thread that wakes every `PACE` and starts the calls
/// due by then: tokio's timer ticks every millisecond, which would start them
/// in bursts (tens of calls at once) and measure the queue each burst makes.
fn at_rate(rt: &Runtime, load: &Arc<Load>, kind: Kind, rate: f64) -> Latency {
    let times = Arc::new(Mutex::new(Vec::with_capacity(
        (rate * MEASURE.as_secs_f64() * 1.1) as usize,
    )));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let clients = load.clients(kind).to_vec();
    let mut started = 0u64;
    let mut lag = Duration::ZERO;
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= WARM_UP + MEASURE {
            break;
        }
        let due = (elapsed.as_secs_f64() * rate) as u64;
        if due > started {
            let scheduled = Duration::from_secs_f64(started as f64 / rate);
            lag = lag.max(elapsed.saturating_sub(scheduled));
        }
        let counted = elapsed >= WARM_UP;
        while started < due {
            let mut client = clients[started as usize % clients.len()].clone();
            started += 1;
            let (load, times, in_flight) = (load.clone(), times.clone(), in_flight.clone());
            in_flight.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            rt.spawn(async move {
                let ok = load.call(kind, &mut client).await;
                let took = t.elapsed();
                if ok && counted {
                    times.lock().unwrap().push(took);
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        std::thread::sleep(PACE);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut t = std::mem::take(&mut *times.lock().unwrap());
    t.sort();
    let p = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)];
    Latency {
        achieved: t.len() as f64 / MEASURE.as_secs_f64(),
        calls: t.len(),
        lag,
        p50: p(0.50),
        p99: p(0.99),
        p999: p(0.999),
        max: *t.last().unwrap(),
    }
}

/// Two calls at once on a connection that is otherwise idle, every 5 ms, as a
/// frontend that assesses two events in parallel sends them: the slower of
/// each pair, p50 and p99.
fn pairs(rt: &Runtime, load: &Arc<Load>, kind: Kind) -> (Duration, Duration) {
    let client = load.clients(kind)[0].clone();
    let load = load.clone();
    let mut t = rt.block_on(async move {
        let mut t = Vec::with_capacity(PAIRS);
        for _ in 0..PAIRS {
            let (mut a, mut b) = (client.clone(), client.clone());
            let start = Instant::now();
            let (x, y) = tokio::join!(
                async {
                    load.call(kind, &mut a).await;
                    start.elapsed()
                },
                async {
                    load.call(kind, &mut b).await;
                    start.elapsed()
                }
            );
            t.push(x.max(y));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        t
    });
    t.sort();
    (t[PAIRS / 2], t[PAIRS * 99 / 100])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn runtime(name: &'static str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(addr: SocketAddr) -> Vec<RiskServiceClient<Channel>> {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connects to the bench server");
        clients.push(RiskServiceClient::new(channel));
    }
    clients
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let load_before = loadavg();
    let bench_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new();
    let server_rt = runtime("server");
    let client_rt = runtime("client");

    tollgate::metrics::install();
    let engine = Arc::new(engine(write_data(dir.path()), &clock));
    let pool = valid_requests(10_000_000, POOL);
    server_rt.block_on(fill(&engine, &clock, &pool));
    // The stub's answer: a send of a subject outside the pool, allowed.
    let sample = server_rt
        .block_on(engine.assess(&input(&valid_requests(20_000_000, 1)[0])))
        .unwrap();
    assert_eq!(
        sample.decision.verdict,
        tollgate::decision::Verdict::Allow,
        "the stub answers as an allowed send"
    );

    // The servers. Idle state is evicted on a real-time schedule, but the
    // bench's clock runs thousands of times faster than real time: every 30 s
    // a pass would drop most of the store (a simulated day) in the middle of a
    // run. The store keeps its size instead; tonic's limits are the defaults.
    let limits = ServerLimits {
        evict_interval: Duration::from_secs(3600),
        ..ServerLimits::default()
    };
    let (stop_empty, empty_stopped) = oneshot::channel::<()>();
    let (stop_stub, stub_stopped) = oneshot::channel::<()>();
    let (stop_assess, assess_stopped) = oneshot::channel::<()>();
    let (addrs, empty_server, stub_server, assess_server) = server_rt.block_on(async {
        let empty = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stub = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let assess = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = [&empty, &stub, &assess].map(|l| l.local_addr().unwrap());
        let (_, health) = tonic_health::server::health_reporter();
        let router = RiskRouter::new(EmptyRisk, health.clone(), &limits).unwrap();
        let empty_server = tokio::spawn(router.serve(empty, async move {
            let _ = empty_stopped.await;
        }));
        let router = RiskRouter::new(StubRisk(sample), health, &limits).unwrap();
        let stub_server = tokio::spawn(router.serve(stub, async move {
            let _ = stub_stopped.await;
        }));
        let listeners = Listeners {
            grpc: assess,
            metrics: None,
            admin: None,
        };
        let assess_server = tokio::spawn(serve(engine.clone(), listeners, limits, async move {
            let _ = assess_stopped.await;
        }));
        (addrs, empty_server, stub_server, assess_server)
    });
    let [empty_addr, stub_addr, assess_addr] = addrs;

    let load = Arc::new(client_rt.block_on(async {
        Load {
            empty: connect(empty_addr).await,
            stub: connect(stub_addr).await,
            assess: connect(assess_addr).await,
            pool,
            next: AtomicU64::new(0),
            clock: clock.clone(),
            engine: engine.clone(),
            answered: AtomicU64::new(0),
            allowed: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
            errors: AtomicU64::new(0),
        }
    }));

    eprintln!(
        "saturation: {CONNECTIONS} connections x {IN_FLIGHT} calls in flight, {ROUNDS} runs each of {WARM_UP:?} warm-up + {MEASURE:?}, alternating"
    );
    let mut runs: BTreeMap<&str, Vec<Saturation>> = BTreeMap::new();
    for round in 0..ROUNDS {
        for kind in [Kind::Empty, Kind::Stub, Kind::Assess] {
            let s = client_rt
                .block_on(client_rt.spawn(saturate(load.clone(), kind)))
                .unwrap();
            eprintln!(
                "  run {} {:<6} {:>9.0} calls/s  CPU per call: server {:>5.1?} client {:>5.1?}  (load avg {})",
                round + 1,
                kind.name(),
                s.rate,
                s.server_cpu,
                s.client_cpu,
                loadavg()
            );
            runs.entry(kind.name()).or_default().push(s);
        }
    }
    let med =
        |kind: Kind, f: fn(&Saturation) -> f64| median(runs[kind.name()].iter().map(f).collect());
    let empty_rate = med(Kind::Empty, |s| s.rate);
    let stub_rate = med(Kind::Stub, |s| s.rate);
    let assess_rate = med(Kind::Assess, |s| s.rate);
    let server_us = |kind: Kind| med(kind, |s| s.server_cpu.as_secs_f64() * 1e6);
    let client_us = |kind: Kind| med(kind, |s| s.client_cpu.as_secs_f64() * 1e6);
    let closed_allowed = (
        load.allowed.load(Ordering::Relaxed),
        load.answered.load(Ordering::Relaxed),
    );

    let half = assess_rate / 2.0;
    eprintln!(
        "latency: open loop at {half:.0} calls/s (half the assess saturation), paced every {PACE:?}"
    );
    let assess_lat = at_rate(&client_rt, &load, Kind::Assess, half);
    let empty_lat = at_rate(&client_rt, &load, Kind::Empty, half);
    let assess_pairs = pairs(&client_rt, &load, Kind::Assess);
    let empty_pairs = pairs(&client_rt, &load, Kind::Empty);

    // Stop: clients first, so the servers have nothing to drain.
    let load = Arc::into_inner(load).expect("every call has ended");
    let allowed = load.allowed.load(Ordering::Relaxed);
    let answered = load.answered.load(Ordering::Relaxed);
    let refused = std::mem::take(&mut *load.refused.lock().unwrap());
    let errors = load.errors.load(Ordering::Relaxed);
    drop(load);
    let _ = stop_empty.send(());
    let _ = stop_stub.send(());
    let _ = stop_assess.send(());
    server_rt.block_on(async {
        let wait = Duration::from_secs(10);
        tokio::time::timeout(wait, empty_server)
            .await
            .expect("the empty server stops")
            .unwrap()
            .unwrap();
        tokio::time::timeout(wait, stub_server)
            .await
            .expect("the stub server stops")
            .unwrap()
            .unwrap();
        tokio::time::timeout(wait, assess_server)
            .await
            .expect("the assess server stops")
            .unwrap()
            .unwrap();
    });
    let stats = engine.store().stats();

    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    println!();
    println!("gRPC Assess vs an empty unary RPC (same tonic server setup, same load generator, same run)");
    println!("  reproduce: cargo bench --bench grpc");
    println!(
        "  load: {CONNECTIONS} HTTP/2 connections, 127.0.0.1; closed loop {} calls in flight, {ROUNDS} alternating runs of {MEASURE:?} (+{WARM_UP:?} warm-up) each, medians",
        CONNECTIONS * IN_FLIGHT
    );
    println!("  +--------------------------------------+-------------+");
    println!(
        "  | empty RPC, saturated                 | {:>7.0} /s  |",
        empty_rate
    );
    println!(
        "  | stub (Assess without the engine)     | {:>7.0} /s  |",
        stub_rate
    );
    println!(
        "  | Assess, saturated                    | {:>7.0} /s  |",
        assess_rate
    );
    println!(
        "  | ratio Assess / empty (target >= 80%) | {:>9.1} % |",
        100.0 * assess_rate / empty_rate
    );
    println!(
        "  | same, by CPU per call (empty/assess) | {:>9.1} % |",
        100.0 * (server_us(Kind::Empty) + client_us(Kind::Empty))
            / (server_us(Kind::Assess) + client_us(Kind::Assess))
    );
    println!(
        "  | of which messages: stub / empty      | {:>9.1} % |",
        100.0 * stub_rate / empty_rate
    );
    println!(
        "  | of which the engine: Assess / stub   | {:>9.1} % |",
        100.0 * assess_rate / stub_rate
    );
    println!(
        "  | Assess p50 at {:>6.0}/s (50% load)    | {:>8.0} us |",
        half,
        assess_lat.p50.as_secs_f64() * 1e6
    );
    println!(
        "  | Assess p99 at {:>6.0}/s (50% load)    | {:>8.0} us |",
        half,
        assess_lat.p99.as_secs_f64() * 1e6
    );
    println!(
        "  | Assess allowed (saturation runs)     | {:>9.1} % |",
        pct(closed_allowed.0, closed_allowed.1)
    );
    println!("  +--------------------------------------+-------------+");
    println!(
        "  CPU per call (medians; server threads + client threads): empty {:.1} + {:.1} us, stub {:.1} + {:.1} us, assess {:.1} + {:.1} us",
        server_us(Kind::Empty),
        client_us(Kind::Empty),
        server_us(Kind::Stub),
        client_us(Kind::Stub),
        server_us(Kind::Assess),
        client_us(Kind::Assess)
    );
    for (name, l) in [("assess", &assess_lat), ("empty", &empty_lat)] {
        println!(
            "  open loop {name:<6} at {half:.0}/s: achieved {:.0}/s over {} calls, p50 {:.0?} p99 {:.0?} p99.9 {:.0?} max {:.0?} (pacer lag at worst {:.0?})",
            l.achieved, l.calls, l.p50, l.p99, l.p999, l.max, l.lag
        );
    }
    for (name, (p50, p99)) in [("assess", assess_pairs), ("empty", empty_pairs)] {
        println!(
            "  two calls at once on an idle connection, {name:<6}: slower of the two p50 {p50:.0?} p99 {p99:.0?} ({PAIRS} pairs)"
        );
    }
    println!(
        "  Assess allowed overall: {allowed} of {answered} ({:.1} %); reasons when not: {refused:?}",
        pct(allowed, answered)
    );
    println!(
        "  failed calls: {errors}; tracked at the end: {} rate keys, {} phone, {} session, {} account, {} remembered assessments",
        stats.rate_keys, stats.phone_keys, stats.session_keys, stats.account_keys, stats.assessments
    );
    println!(
        "  load average (1 5 15 min): {load_before} before, {} after; {} CPUs; {:.0?} in all",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bench_started.elapsed()
    );
    assert_eq!(errors, 0, "every call succeeded");
    assert!(
        allowed * 100 >= answered * 95,
        "the allow path was measured"
    );
}
