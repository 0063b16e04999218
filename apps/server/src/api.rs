//! The REST API: one module per resource, each an `OpenApi` impl whose handlers parse the request
//! into domain values, call the [`Service`], and map the result. [`open_api`] assembles them into
//! the one document served at `/api/openapi.json` and checked in at `openapi/openapi.json`.

pub mod common;
pub mod discovery;
pub mod error;
pub mod frames;
pub mod labels;
pub mod models;
pub mod navigation;
pub mod pipeline;
pub mod projects;
pub mod prompts;
pub mod segment;
pub mod sinks;
pub mod sources;
pub mod system;
pub mod text;
pub mod webrtc;

use std::sync::Arc;

use poem_openapi::{ApiResponse, OpenApiService, Tags};
use tokio::sync::broadcast;
use visprompt_archive::ArchiveLimits;
use visprompt_domain::Service;
use visprompt_runtime::{Change, FrameCodec, PipelineHandle};

#[derive(Tags)]
pub enum ApiTags {
    /// Projects: the unit a user works in; one is active at a time.
    Projects,
    /// Labels: named, coloured object categories.
    Labels,
    /// Reference frames: stored images that visual prompts annotate.
    Frames,
    /// Prompts: annotated reference frames or text phrases.
    Prompts,
    /// Sources: where live frames come from.
    Sources,
    /// Sinks: where predictions are published.
    Sinks,
    /// Model configurations: algorithm, parameters and device.
    Models,
    /// The live pipeline: status, model status and the event stream.
    Pipeline,
    /// Health and system information.
    System,
    /// The WebRTC live view: signalling and ICE servers.
    #[oai(rename = "WebRTC")]
    WebRtc,
}

/// The answer of every successful delete.
#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

/// What the handlers share: the domain service, the live pipeline and the codec for captures.
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub pipeline: PipelineHandle,
    pub codec: Arc<dyn FrameCodec>,
    /// Every stored change, for the event stream.
    pub changes: broadcast::Sender<Change>,
    /// The WebRTC live view.
    pub live: Arc<visprompt_webrtc::LiveView>,
    /// The neural models' weights, loaded once and shared.
    pub models: Arc<visprompt_vision::store::ModelStore>,
}

pub type Api = (
    (
        pipeline::PipelineApi,
        navigation::NavigationApi,
        discovery::DiscoveryApi,
        webrtc::WebRtcApi,
        segment::SegmentApi,
    ),
    system::SystemApi,
    projects::ProjectsApi,
    labels::LabelsApi,
    frames::FramesApi,
    prompts::PromptsApi,
    sources::SourcesApi,
    sinks::SinksApi,
    models::ModelsApi,
);

/// The whole API over `state`.
pub fn open_api(state: AppState, archive_limits: ArchiveLimits) -> OpenApiService<Api, ()> {
    let service = state.service.clone();
    let api = (
        (
            pipeline::PipelineApi {
                service: service.clone(),
                models: state.models.clone(),
                pipeline: state.pipeline.clone(),
                changes: state.changes.clone(),
            },
            navigation::NavigationApi {
                service: service.clone(),
                pipeline: state.pipeline.clone(),
                codec: state.codec.clone(),
            },
            discovery::DiscoveryApi,
            webrtc::WebRtcApi {
                service: service.clone(),
                live: state.live.clone(),
            },
            segment::SegmentApi {
                service: service.clone(),
                codec: state.codec.clone(),
                models: state.models.clone(),
                cache: Default::default(),
            },
        ),
        system::SystemApi {
            models: state.models.clone(),
        },
        projects::ProjectsApi {
            service: service.clone(),
            archive_limits,
        },
        labels::LabelsApi {
            service: service.clone(),
        },
        frames::FramesApi {
            service: service.clone(),
            pipeline: state.pipeline.clone(),
            codec: state.codec.clone(),
        },
        prompts::PromptsApi {
            service: service.clone(),
        },
        sources::SourcesApi {
            service: service.clone(),
        },
        sinks::SinksApi {
            service: service.clone(),
        },
        models::ModelsApi { service },
    );
    OpenApiService::new(api, "visprompt", env!("CARGO_PKG_VERSION"))
        .description(
            "Zero-shot and few-shot visual prompting on live video: projects, labels, reference \
             frames, prompts, sources, sinks and model configurations. Errors carry a JSON body \
             `{code, message, field?}`.",
        )
        .url_prefix("")
}
