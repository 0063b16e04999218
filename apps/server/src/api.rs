//! The REST API: one module per resource, each an `OpenApi` impl whose handlers parse the request
//! into domain values, call the [`Service`], and map the result. [`open_api`] assembles them into
//! the one document served at `/api/openapi.json` and checked in at `openapi/openapi.json`.

pub mod common;
pub mod error;
pub mod frames;
pub mod labels;
pub mod models;
pub mod projects;
pub mod prompts;
pub mod sinks;
pub mod sources;
pub mod system;
pub mod text;

use poem_openapi::{ApiResponse, OpenApiService, Tags};
use visprompt_archive::ArchiveLimits;
use visprompt_domain::Service;

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
    /// Health and system information.
    System,
}

/// The answer of every successful delete.
#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

pub type Api = (
    system::SystemApi,
    projects::ProjectsApi,
    labels::LabelsApi,
    frames::FramesApi,
    prompts::PromptsApi,
    sources::SourcesApi,
    sinks::SinksApi,
    models::ModelsApi,
);

/// The whole API over `service`.
pub fn open_api(service: Service, archive_limits: ArchiveLimits) -> OpenApiService<Api, ()> {
    let api = (
        system::SystemApi,
        projects::ProjectsApi {
            service: service.clone(),
            archive_limits,
        },
        labels::LabelsApi {
            service: service.clone(),
        },
        frames::FramesApi {
            service: service.clone(),
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
