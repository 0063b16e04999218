//! `/api/v1/pipeline`, `/api/v1/projects/{id}/model-status` and `/api/v1/events`: what the live
//! pipeline is doing, as a snapshot or pushed as Server-Sent Events, so clients need not poll.

use std::time::Duration;

use futures_util::stream::BoxStream;
use poem::web::sse::Event;
use poem_openapi::param::Path;
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{Object, OpenApi};
use tokio::sync::broadcast;
use uuid::Uuid;
use visprompt_domain::{ProjectId, Service};
use visprompt_runtime::{
    Change, ComponentState, PipelineHandle, PipelineState, PipelineStatus, RuntimeEvent, SinkHealth,
};

use crate::api::ApiTags;
use crate::api::error::ApiError;

#[derive(Debug, Clone, Object)]
pub struct SourceStatusBody {
    pub source_id: Option<Uuid>,
    /// `source_type` of the active source.
    pub kind: Option<String>,
    /// `none`, `starting`, `running`, `ended` or `error`.
    pub state: String,
    pub message: Option<String>,
    /// Frames produced since the pipeline started.
    pub frames: u64,
    pub fps: f64,
}

#[derive(Debug, Clone, Object)]
pub struct DetectorStatusBody {
    pub model_id: Option<Uuid>,
    pub algorithm: Option<String>,
    /// `none` (no model or no prompt: frames pass through), `starting` (fitting), `running` or
    /// `error`.
    pub state: String,
    pub message: Option<String>,
    pub processed: u64,
    pub passed_through: u64,
    /// Frames skipped because a newer frame arrived while the detector was busy.
    pub dropped: u64,
    pub fps: f64,
    /// Capture to published result, over the last 256 frames.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Time in the detector alone.
    pub inference_p50_ms: Option<f64>,
    pub inference_p95_ms: Option<f64>,
    pub last_detections: u64,
}

#[derive(Debug, Clone, Object)]
pub struct SinkStatusBody {
    pub sink_id: Uuid,
    pub sink_type: String,
    /// `connecting`, `connected`, `retrying` or `stopped`.
    pub state: String,
    pub message: Option<String>,
    pub published: u64,
    pub skipped: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "PipelineStatus")]
pub struct PipelineStatusBody {
    /// The project whose pipeline runs; absent when none is active.
    pub project_id: Option<Uuid>,
    /// `idle`, `starting`, `running` or `error`.
    pub state: String,
    /// What failed, when `state` is `error`.
    pub message: Option<String>,
    pub source: SourceStatusBody,
    pub detector: DetectorStatusBody,
    pub sinks: Vec<SinkStatusBody>,
}

fn component(state: &ComponentState) -> (String, Option<String>) {
    (state.as_str().into(), state.message().map(Into::into))
}

impl From<PipelineStatus> for PipelineStatusBody {
    fn from(s: PipelineStatus) -> Self {
        let (source_state, source_message) = component(&s.source.state);
        let (detector_state, detector_message) = component(&s.detector.state);
        let d = s.detector;
        Self {
            project_id: s.project_id.map(|p| p.as_uuid()),
            message: match &s.state {
                PipelineState::Error { message } => Some(message.clone()),
                _ => None,
            },
            state: s.state.as_str().into(),
            source: SourceStatusBody {
                source_id: s.source.source_id.map(|i| i.as_uuid()),
                kind: s.source.kind.map(|k| k.as_str().into()),
                state: source_state,
                message: source_message,
                frames: s.source.frames,
                fps: round2(s.source.fps),
            },
            detector: DetectorStatusBody {
                model_id: d.model_id.map(|i| i.as_uuid()),
                algorithm: d.algorithm.map(|a| a.as_str().into()),
                state: detector_state,
                message: detector_message,
                processed: d.processed,
                passed_through: d.passed_through,
                dropped: d.dropped,
                fps: round2(d.fps),
                latency_p50_ms: d.latency_p50_ms.map(round2),
                latency_p95_ms: d.latency_p95_ms.map(round2),
                inference_p50_ms: d.inference_p50_ms.map(round2),
                inference_p95_ms: d.inference_p95_ms.map(round2),
                last_detections: d.last_detections as u64,
            },
            sinks: s
                .sinks
                .into_iter()
                .map(|k| {
                    let (state, message) = match k.health {
                        SinkHealth::Connecting => ("connecting", None),
                        SinkHealth::Connected => ("connected", None),
                        SinkHealth::Retrying { message } => ("retrying", Some(message)),
                        SinkHealth::Stopped => ("stopped", None),
                    };
                    SinkStatusBody {
                        sink_id: k.sink_id.as_uuid(),
                        sink_type: k.kind.as_str().into(),
                        state: state.into(),
                        message,
                        published: k.published,
                        skipped: k.skipped,
                        errors: k.errors,
                        last_error: k.last_error,
                    }
                })
                .collect(),
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The model status of a project, in the reference system's shape.
#[derive(Debug, Clone, Object)]
pub struct ModelStatus {
    /// `downloading`, `loading`, `ready`, `error`, or absent when the project's pipeline does
    /// not run a model.
    pub status: Option<String>,
    pub error_message: Option<String>,
    /// While `downloading`: the model being fetched (a `weights` id of
    /// `/api/v1/system/supported-models`).
    pub model: Option<String>,
    /// While `downloading`: the fraction received, 0 to 1, once the size is known.
    pub progress: Option<f64>,
}

#[derive(Debug, Clone, Object)]
pub struct EntityChange {
    /// `project`, `active project`, `label`, `frame`, `prompt`, `source`, `sink` or
    /// `model configuration`.
    pub entity: String,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    pub project_id: Option<Uuid>,
    pub id: Option<String>,
}

/// One message of the event stream; the SSE event name is `kind`.
#[derive(Debug, Clone, Object)]
pub struct StreamEvent {
    /// `pipeline` (the state changed), `metrics` (once a second while running) or `entity` (a
    /// stored change).
    pub kind: String,
    pub pipeline: Option<PipelineStatusBody>,
    pub entity: Option<EntityChange>,
}

impl StreamEvent {
    fn pipeline(kind: &str, status: PipelineStatus) -> Self {
        Self {
            kind: kind.into(),
            pipeline: Some(status.into()),
            entity: None,
        }
    }

    fn entity(change: Change) -> Self {
        Self {
            kind: "entity".into(),
            pipeline: None,
            entity: Some(EntityChange {
                entity: change.entity.to_string(),
                action: change.kind.as_str().into(),
                project_id: change.project_id.map(|p| p.as_uuid()),
                id: change.id,
            }),
        }
    }
}

pub struct PipelineApi {
    pub service: Service,
    pub models: std::sync::Arc<visprompt_vision::store::ModelStore>,
    pub pipeline: PipelineHandle,
    pub changes: broadcast::Sender<Change>,
}

#[OpenApi(tag = "ApiTags::Pipeline")]
impl PipelineApi {
    /// State and counters of the live pipeline (the active project's).
    #[oai(
        path = "/api/v1/pipeline",
        method = "get",
        operation_id = "get_pipeline_status"
    )]
    async fn status(&self) -> Json<PipelineStatusBody> {
        Json(self.pipeline.status().into())
    }

    /// Whether the project's model is loading, ready or failed.
    #[oai(
        path = "/api/v1/projects/:project_id/model-status",
        method = "get",
        operation_id = "get_model_status"
    )]
    async fn model_status(&self, project_id: Path<Uuid>) -> Result<Json<ModelStatus>, ApiError> {
        let id = ProjectId::from_uuid(project_id.0);
        self.service.get_project(id).await?;
        let status = self.pipeline.status();
        if status.project_id != Some(id) {
            return Ok(Json(ModelStatus {
                status: None,
                error_message: None,
                model: None,
                progress: None,
            }));
        }
        let download = self.models.download();
        let (status, error_message) = match status.detector.state {
            ComponentState::Starting if download.is_some() => (Some("downloading"), None),
            ComponentState::Starting => (Some("loading"), None),
            ComponentState::Running => (Some("ready"), None),
            ComponentState::Error { message } => (Some("error"), Some(message)),
            ComponentState::None | ComponentState::Ended => (None, None),
        };
        let downloading = status == Some("downloading");
        Ok(Json(ModelStatus {
            status: status.map(Into::into),
            error_message,
            model: download
                .as_ref()
                .filter(|_| downloading)
                .map(|d| d.model_id.clone()),
            progress: download.filter(|_| downloading).and_then(|d| d.fraction()),
        }))
    }

    /// Server-Sent Events: `pipeline` when the pipeline's state changes (sent once on connect),
    /// `metrics` once a second while it runs, `entity` for every stored change.
    #[oai(
        path = "/api/v1/events",
        method = "get",
        operation_id = "stream_events"
    )]
    async fn events(&self) -> EventStream<BoxStream<'static, StreamEvent>> {
        let first = StreamEvent::pipeline("pipeline", self.pipeline.status());
        let state = (
            Some(first),
            self.pipeline.events(),
            self.changes.subscribe(),
        );
        let stream =
            futures_util::stream::unfold(state, |(first, mut runtime, mut changes)| async move {
                if let Some(first) = first {
                    return Some((first, (None, runtime, changes)));
                }
                loop {
                    let event = tokio::select! {
                        e = runtime.recv() => match e {
                            Ok(RuntimeEvent::State(s)) => StreamEvent::pipeline("pipeline", s),
                            Ok(RuntimeEvent::Metrics(s)) => StreamEvent::pipeline("metrics", s),
                            // A slow client misses some events; the next one carries the full state.
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                        c = changes.recv() => match c {
                            Ok(change) => StreamEvent::entity(change),
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                    };
                    return Some((event, (None, runtime, changes)));
                }
            });
        EventStream::new(Box::pin(stream) as BoxStream<'static, StreamEvent>)
            .keep_alive(Duration::from_secs(15))
            .to_event(|e| {
                let name = e.kind.clone();
                let data = e.to_json_string();
                Event::message(data).event_type(name)
            })
    }
}
