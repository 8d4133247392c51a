//! A real tollgate server on 127.0.0.1:0 with a fake clock, and real clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::clock::FakeClock;
use tollgate::engine::{Engine, EngineOptions};
use tollgate::keys::KeyHasher;
use tollgate::limits::MemoryStore;
use tollgate::policy::{compile_with, ListNames, DEFAULT_POLICY, DEFAULT_POLICY_NAME};
use tollgate::proto::v1 as pb;
use tollgate::reload::Reloader;
use tollgate::server::{serve, ServerLimits};
use tollgate::signals::data::{DataSet, DataSources};
use tonic::transport::Channel;

pub use pb::risk_service_client::RiskServiceClient;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub type BoxedInterceptor =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>;
pub type AdminClient = pb::admin_service_client::AdminServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, BoxedInterceptor>,
>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub clock: FakeClock,
    pub engine: Arc<Engine<MemoryStore>>,
    pub reloader: Arc<Reloader<MemoryStore>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves the built-in default policy.
    pub async fn default_policy() -> Self {
        Self::start(DEFAULT_POLICY).await
    }

    pub async fn start(policy: &str) -> Self {
        Self::start_with(policy, ServerLimits::default()).await
    }

    pub async fn start_with(policy: &str, limits: ServerLimits) -> Self {
        Self::start_full(policy, limits, None, DataSources::default()).await
    }

    /// With `policy_path`, AdminService ReloadPolicy reloads that file. The data
    /// files of `sources` are loaded before serving (a file that fails leaves
    /// the server not ready).
    pub async fn start_full(
        policy: &str,
        limits: ServerLimits,
        policy_path: Option<std::path::PathBuf>,
        sources: DataSources,
    ) -> Self {
        let name = if policy == DEFAULT_POLICY {
            DEFAULT_POLICY_NAME
        } else {
            "test.toml"
        };
        let sources = Arc::new(sources);
        let names = ListNames {
            ip: sources.ip_list_names(),
            asn: sources.asn_list_names(),
            checked: true,
        };
        let snapshot =
            compile_with(name, policy, &names).unwrap_or_else(|e| panic!("test policy: {e}"));
        let clock = FakeClock::new();
        let engine = Arc::new(Engine::new(
            snapshot,
            MemoryStore::new(limits_for_tests()),
            KeyHasher::from_secret(b"test secret"),
            Arc::new(clock.clone()),
            EngineOptions {
                list_names: names,
                ..EngineOptions::default()
            },
        ));
        engine.set_data(DataSet::unloaded(sources.clone()));
        let reloader = Arc::new(Reloader::new(engine.clone(), policy_path, sources));
        reloader.reload_data();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin_listener.local_addr().unwrap();
        let admin = Some(tollgate::server::AdminListener {
            listener: admin_listener,
            tokens: tollgate::service::admin::Tokens::parse(
                "tokens",
                &format!("helpdesk {ADMIN_TOKEN}\n"),
            )
            .unwrap(),
            reloader: reloader.clone(),
        });
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let e = engine.clone();
        let task = tokio::spawn(async move {
            let listeners = tollgate::server::Listeners {
                grpc,
                metrics: Some(metrics),
                admin,
            };
            serve(e, listeners, limits, async move {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            reloader,
            addr,
            metrics_addr,
            admin_addr,
            clock,
            engine,
            stop: Some(stop),
            task,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects to the test server")
    }

    pub async fn client(&self) -> RiskServiceClient<Channel> {
        RiskServiceClient::new(self.channel().await)
    }

    /// An AdminService client presenting `token` (None: no authorization).
    pub async fn admin(&self, token: Option<&str>) -> AdminClient {
        let channel = Channel::from_shared(format!("http://{}", self.admin_addr))
            .unwrap()
            .connect()
            .await
            .expect("connects to the admin listener");
        let header: Option<tonic::metadata::MetadataValue<_>> =
            token.map(|t| format!("Bearer {t}").parse().unwrap());
        pb::admin_service_client::AdminServiceClient::with_interceptor(
            channel,
            Box::new(move |mut req: tonic::Request<()>| {
                if let Some(h) = &header {
                    req.metadata_mut().insert("authorization", h.clone());
                }
                Ok(req)
            }) as BoxedInterceptor,
        )
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// GET /metrics over plain HTTP/1.1.
    pub async fn scrape(&self) -> String {
        let mut s = TcpStream::connect(self.metrics_addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops")
            .expect("server task ends cleanly");
    }
}

/// An SMS OTP send to `phone` from `ip`.
pub fn otp_send(phone: &str, ip: &str) -> pb::AssessRequest {
    pb::AssessRequest {
        event: pb::Event::OtpSend as i32,
        channel: pb::Channel::Sms as i32,
        phone_number: phone.into(),
        ip: ip.into(),
        ..Default::default()
    }
}

pub fn decision(r: &pb::AssessResponse) -> pb::Decision {
    pb::Decision::try_from(r.decision).unwrap()
}

pub fn codes(r: &pb::AssessResponse) -> Vec<&str> {
    r.reasons.iter().map(|r| r.code.as_str()).collect()
}

pub fn retry_secs(r: &pb::AssessResponse) -> Option<f64> {
    r.retry_after
        .as_ref()
        .map(|d| d.seconds as f64 + f64::from(d.nanos) / 1e9)
}

/// The store limits test servers run with (small enough to exercise relief).
pub fn limits_for_tests() -> tollgate::limits::StoreLimits {
    tollgate::limits::StoreLimits {
        max_assessments: 100_000,
        ..tollgate::limits::StoreLimits::default()
    }
}
