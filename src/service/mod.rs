//! The gRPC surface: the only module that knows tonic.
//!
//! Requests become domain types through `TryFrom` ([`convert`]); the engine
//! decides; the decision goes back as a proto message. A block or a step-up is a
//! decision. `Status` is for malformed input and faults, mapped in [`to_status`].

pub mod admin;
pub mod convert;

use crate::engine::{Engine, EngineError};
use crate::limits::StateStore;
use crate::metrics;
use crate::proto::v1 as pb;
use crate::request::{AssessInput, ReportInput, RequestError};
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use pb::risk_service_server::RiskServiceServer;

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] RequestError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The one place errors become `Status`.
pub fn to_status(e: ServiceError) -> Status {
    match e {
        ServiceError::Invalid(RequestError(violations)) => {
            let mut details = ErrorDetails::new();
            for v in &violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            let message = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ");
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        ServiceError::Engine(e @ EngineError::UnknownAssessment(_)) => {
            Status::not_found(e.to_string())
        }
        ServiceError::Engine(e @ EngineError::NotReady) => Status::unavailable(e.to_string()),
        ServiceError::Engine(EngineError::Store(e)) => {
            tracing::warn!(error = %e, "state store call failed");
            Status::unavailable("state store unavailable")
        }
    }
}

/// `tollgate.v1.RiskService`.
pub struct RiskApi<S> {
    engine: Arc<Engine<S>>,
}

impl<S> RiskApi<S> {
    pub fn new(engine: Arc<Engine<S>>) -> Self {
        RiskApi { engine }
    }
}

#[tonic::async_trait]
impl<S: StateStore> pb::risk_service_server::RiskService for RiskApi<S> {
    async fn assess(
        &self,
        request: Request<pb::AssessRequest>,
    ) -> Result<Response<pb::AssessResponse>, Status> {
        let input = AssessInput::try_from(request.into_inner()).map_err(|e| {
            metrics::invalid_request("assess");
            to_status(e.into())
        })?;
        let assessment = self
            .engine
            .assess(&input)
            .await
            .map_err(|e| to_status(e.into()))?;
        Ok(Response::new(assessment.into()))
    }

    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        let input = ReportInput::try_from(request.into_inner()).map_err(|e| {
            metrics::invalid_request("report");
            to_status(e.into())
        })?;
        self.engine
            .report(&input)
            .await
            .map_err(|e| to_status(e.into()))?;
        Ok(Response::new(pb::ReportResponse {}))
    }
}
