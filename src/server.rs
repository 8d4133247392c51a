//! Listeners: gRPC (RiskService, health, reflection) and HTTP `/metrics`, the
//! idle-state eviction schedule, policy reload, and graceful shutdown.
//!
//! [`serve`] takes bound listeners and a shutdown future, so tests run a real
//! server on `127.0.0.1:0` and stop it when they are done.

use crate::engine::Engine;
use crate::limits::StateStore;
use crate::metrics;
use crate::proto::v1::risk_service_server::RiskService;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::reload::Reload;
use crate::service::admin::{authenticate, AdminApi, AdminServiceServer, Tokens};
use crate::service::{RiskApi, RiskServiceServer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::{Health, HealthServer};

/// Explicit server limits (tonic's defaults are far too generous for a hot path
/// that takes small messages).
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Largest decoded request; an `AssessRequest` at its field limits is ~8 KiB.
    pub max_message_bytes: usize,
    pub max_concurrent_streams: u32,
    /// Calls still running after this fail with DEADLINE_EXCEEDED (CANCELLED).
    pub request_timeout: Duration,
    /// How often idle state is evicted.
    pub evict_interval: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_message_bytes: 64 * 1024,
            max_concurrent_streams: 1024,
            request_timeout: Duration::from_secs(2),
            evict_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The AdminService listener and what it needs.
pub struct AdminListener {
    pub listener: TcpListener,
    pub tokens: Tokens,
    /// What `ReloadPolicy` runs.
    pub reloader: Arc<dyn Reload>,
}

/// Everything tollgate listens on.
pub struct Listeners {
    pub grpc: TcpListener,
    pub metrics: Option<TcpListener>,
    /// Off unless admin tokens are configured.
    pub admin: Option<AdminListener>,
}

/// The RiskService listener's gRPC stack: tonic's server with `limits`
/// (request timeout, concurrent streams, largest decoded request), health,
/// reflection and a RiskService implementation.
///
/// [`serve`] builds it with the engine's [`RiskApi`]; the gRPC benchmark also
/// builds it with an implementation that answers at once and with one that
/// does all but the engine's work, so the RPCs it compares `Assess` with are
/// served exactly the same way.
pub struct RiskRouter(tonic::transport::server::Router);

impl RiskRouter {
    pub fn new<T: RiskService>(
        api: T,
        health: HealthServer<impl Health>,
        limits: &ServerLimits,
    ) -> Result<Self, ServeError> {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let risk = RiskServiceServer::new(api).max_decoding_message_size(limits.max_message_bytes);
        Ok(RiskRouter(
            tonic::transport::Server::builder()
                .timeout(limits.request_timeout)
                .max_concurrent_streams(limits.max_concurrent_streams)
                .add_service(health)
                .add_service(reflection)
                .add_service(risk),
        ))
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight
    /// calls.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        self.0
            .serve_with_incoming_shutdown(incoming(listener), shutdown)
            .await
    }
}

/// Accepted connections with `TCP_NODELAY`, as tonic's own `serve(addr)` sets
/// them: `serve_with_incoming` ignores the builder's `tcp_nodelay`, and with
/// Nagle on, a response written while an earlier one is unacknowledged waits
/// for the client's delayed ACK (40 ms) whenever the client has nothing else to
/// send.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves until `shutdown` completes, then stops accepting, lets in-flight
/// calls finish, and returns.
pub async fn serve<S: StateStore>(
    engine: Arc<Engine<S>>,
    listeners: Listeners,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Listeners {
        grpc,
        metrics: metrics_listener,
        admin,
    } = listeners;
    // SERVING once every data file has loaded, NOT_SERVING before and while
    // shutting down.
    let (health, health_service) = tonic_health::server::health_reporter();
    let mut ready = engine.subscribe_ready();
    let follow = {
        let health = health.clone();
        tokio::spawn(async move {
            loop {
                if *ready.borrow_and_update() {
                    health.set_serving::<RiskServiceServer<RiskApi<S>>>().await;
                } else {
                    health
                        .set_not_serving::<RiskServiceServer<RiskApi<S>>>()
                        .await;
                }
                if ready.changed().await.is_err() {
                    break;
                }
            }
        })
    };
    let router = RiskRouter::new(RiskApi::new(engine.clone()), health_service, &limits)?;

    let (stopping_tx, stopping) = watch::channel(false);
    if let Some(listener) = metrics_listener {
        let handle = metrics::install();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move {
                    handle.run_upkeep();
                    handle.render()
                }
            }),
        );
        let mut stop = stopping.clone();
        tokio::spawn(async move {
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(done)
                .await
            {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }

    let evictor = {
        let engine = engine.clone();
        let every = limits.evict_interval;
        tokio::spawn(async move {
            // Idle state goes every `every`; the store's limits are checked
            // every second, so a flood is shed long before memory runs out.
            let mut idle = tokio::time::interval(every);
            let mut pressure = tokio::time::interval(Duration::from_secs(1));
            idle.tick().await;
            loop {
                tokio::select! {
                    _ = idle.tick() => { engine.maintain().await; }
                    _ = pressure.tick() => { engine.relieve(); }
                }
            }
        })
    };

    let admin_task = admin.map(|a| {
        let api = tonic::service::interceptor::InterceptedService::new(
            AdminServiceServer::new(AdminApi::new(engine.clone(), a.reloader))
                .max_decoding_message_size(limits.max_message_bytes),
            authenticate(a.tokens),
        );
        let mut stop = stopping.clone();
        let server = tonic::transport::Server::builder()
            .timeout(limits.request_timeout)
            .add_service(api)
            .serve_with_incoming_shutdown(incoming(a.listener), async move {
                let _ = stop.wait_for(|s| *s).await;
            });
        tokio::spawn(server)
    });

    let grpc_shutdown = async move {
        shutdown.await;
        follow.abort();
        tracing::info!("shutting down: draining in-flight calls");
        health
            .set_not_serving::<RiskServiceServer<RiskApi<S>>>()
            .await;
        let _ = stopping_tx.send(true);
    };
    let result = router.serve(grpc, grpc_shutdown).await;
    evictor.abort();
    if let Some(t) = admin_task {
        if let Ok(Err(e)) = t.await {
            tracing::error!(error = %e, "admin listener failed");
        }
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// With Nagle on, the second of two answers written back to back waited
    /// for the client's delayed ACK: two concurrent calls on an otherwise idle
    /// connection took ~42 ms instead of ~0.5 ms (`cargo bench --bench grpc`).
    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
