//! `/health` and `/api/v1/system/...`: liveness and what this server can run.

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use visprompt_domain::{Algorithm, Page};

use crate::api::ApiTags;
use crate::api::common::{Pagination, page};
use crate::api::error::ApiError;
use crate::api::models::ModelConfigBody;

#[derive(Debug, Clone, Object)]
pub struct Health {
    /// `ok` once the server serves requests.
    pub status: String,
    pub version: String,
}

#[derive(Debug, Clone, Object)]
pub struct SupportedModel {
    /// The `model_type` of a model configuration.
    pub model_type: String,
    pub display_name: String,
    /// Prompt kinds the algorithm accepts.
    pub supported_prompt_types: Vec<String>,
    /// Whether pretrained weights must be present (or downloaded) to run it.
    pub needs_weights: bool,
    pub default_config: ModelConfigBody,
}

/// Pretrained weights a neural algorithm can use (its `encoder_model` / `sam_model`).
#[derive(Debug, Clone, Object)]
pub struct ModelWeights {
    /// The folder name under `MODELS_DIR` and the id in download progress.
    pub id: String,
    /// `encoder` or `segmenter`.
    pub kind: String,
    pub name: String,
    /// The Hugging Face repository it downloads from.
    pub repository: String,
    pub size_bytes: u64,
    pub licence: String,
    /// Whether the repository asks users to accept its licence first (set `HF_TOKEN`).
    pub gated: bool,
    /// Whether the files are on this machine (in `MODELS_DIR` or the download cache).
    pub present_locally: bool,
}

#[derive(Debug, Clone, Object)]
pub struct SupportedModelList {
    pub models: Vec<SupportedModel>,
    pub pagination: Pagination,
    /// Every set of weights this build can run, whatever the page.
    pub weights: Vec<ModelWeights>,
}

pub struct SystemApi {
    pub models: std::sync::Arc<visprompt_vision::store::ModelStore>,
}

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// Liveness: answers once the server is up. Never requires a token.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// The algorithms a model configuration can use, with their default parameters.
    #[oai(
        path = "/api/v1/system/supported-models",
        method = "get",
        operation_id = "list_supported_models"
    )]
    async fn supported_models(
        &self,
        /// Items to skip.
        #[oai(validator(maximum(value = "1000000000")))]
        offset: Query<Option<u64>>,
        /// Items to return, 1 to 1000 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<SupportedModelList>, ApiError> {
        let page: Page = page(offset.0, limit.0)?;
        let all: Vec<SupportedModel> = Algorithm::ALL
            .iter()
            .map(|a| SupportedModel {
                model_type: a.as_str().into(),
                display_name: a.display_name().into(),
                supported_prompt_types: vec!["visual".into()],
                needs_weights: a.needs_weights(),
                default_config: a.default_params().into(),
            })
            .collect();
        let total = all.len() as u64;
        let models: Vec<SupportedModel> = all
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.limit() as usize)
            .collect();
        let pagination = Pagination {
            count: models.len() as u64,
            total,
            offset: page.offset(),
            limit: page.limit(),
        };
        let store = self.models.clone();
        // Presence checks touch the disk: off the async threads.
        let weights = tokio::task::spawn_blocking(move || {
            visprompt_vision::weights::catalogue()
                .iter()
                .map(|spec| ModelWeights {
                    id: spec.id.into(),
                    kind: match spec.kind {
                        visprompt_vision::weights::ModelKind::Encoder => "encoder",
                        visprompt_vision::weights::ModelKind::Segmenter => "segmenter",
                    }
                    .into(),
                    name: spec.name.into(),
                    repository: spec.repo.into(),
                    size_bytes: spec.size_bytes,
                    licence: spec.licence.into(),
                    gated: spec.gated,
                    present_locally: store.present_locally(spec),
                })
                .collect()
        })
        .await
        .unwrap_or_default();
        Ok(Json(SupportedModelList {
            models,
            pagination,
            weights,
        }))
    }
}
