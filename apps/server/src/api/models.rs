//! `/api/v1/projects/{project_id}/models`: named model configurations (algorithm, parameters,
//! device). One per project is active; the pipeline runs that one.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Union};
use uuid::Uuid;
use visprompt_domain::{
    AlgorithmParams, ClassicalParams, Device, DisplayName, EncoderModel, MatcherParams,
    ModelConfig, ModelConfigId, NewModelConfig, PerDinoParams, Precision, ProjectId, SamModel,
    Service, SoftMatcherParams,
};

use crate::api::common::{Pagination, location, page};
use crate::api::error::ApiError;
use crate::api::text::Text;
use crate::api::{ApiTags, Deleted};

/// The promptable segmenter.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
pub enum SamModelName {
    #[oai(rename = "SAM-HQ-tiny")]
    SamHqTiny,
    #[oai(rename = "SAM-HQ")]
    SamHq,
    #[oai(rename = "SAM-HQ-base")]
    SamHqBase,
    #[oai(rename = "SAM-HQ-large")]
    SamHqLarge,
    #[oai(rename = "SAM-base")]
    SamBase,
    #[oai(rename = "MobileSAM")]
    MobileSam,
}

/// The image encoder.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum EncoderModelName {
    Dinov3Small,
    Dinov3SmallPlus,
    Dinov3Base,
    Dinov3Large,
    Dinov3Huge,
    Dinov2Small,
    Dinov2Base,
    Dinov2SmallReg,
    Dinov2BaseReg,
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum PrecisionName {
    Fp32,
    Fp16,
    Bf16,
}

macro_rules! name_map {
    ($wire:ident, $domain:ident, [$($v:ident),*]) => {
        impl From<$wire> for $domain {
            fn from(w: $wire) -> Self {
                match w { $($wire::$v => $domain::$v,)* }
            }
        }
        impl From<$domain> for $wire {
            fn from(d: $domain) -> Self {
                match d { $($domain::$v => $wire::$v,)* }
            }
        }
    };
}
name_map!(
    SamModelName,
    SamModel,
    [SamHqTiny, SamHq, SamHqBase, SamHqLarge, SamBase, MobileSam]
);
name_map!(
    EncoderModelName,
    EncoderModel,
    [
        Dinov3Small,
        Dinov3SmallPlus,
        Dinov3Base,
        Dinov3Large,
        Dinov3Huge,
        Dinov2Small,
        Dinov2Base,
        Dinov2SmallReg,
        Dinov2BaseReg
    ]
);
name_map!(PrecisionName, Precision, [Fp32, Fp16, Bf16]);

fn d_sam() -> SamModelName {
    SamModel::default().into()
}
fn d_encoder() -> EncoderModelName {
    EncoderModel::default().into()
}
fn d_bf16() -> PrecisionName {
    PrecisionName::Bf16
}

/// Matcher: prototype matching of encoder features, then point prompts for the segmenter.
#[derive(Debug, Clone, Object)]
pub struct MatcherConfig {
    #[oai(default = "d_sam")]
    pub sam_model: SamModelName,
    #[oai(default = "d_encoder")]
    pub encoder_model: EncoderModelName,
    #[oai(default = "d_bf16")]
    pub precision: PrecisionName,
    #[oai(
        default = "m_fg",
        validator(minimum(value = "1"), maximum(value = "300"))
    )]
    pub num_foreground_points: u32,
    #[oai(default = "m_bg", validator(maximum(value = "10")))]
    pub num_background_points: u32,
    #[oai(
        default = "m_conf",
        validator(minimum(value = "0", exclusive), maximum(value = "1", exclusive))
    )]
    pub confidence_threshold: f64,
    #[oai(default)]
    pub use_mask_refinement: bool,
    #[oai(
        skip_serializing_if_is_none,
        validator(minimum(value = "0", exclusive), maximum(value = "1", exclusive))
    )]
    pub similarity_threshold: Option<f64>,
    #[oai(default = "m_grid", validator(maximum(value = "100")))]
    pub num_grid_cells: u32,
}

fn m_fg() -> u32 {
    MatcherParams::default().num_foreground_points
}
fn m_bg() -> u32 {
    MatcherParams::default().num_background_points
}
fn m_conf() -> f64 {
    MatcherParams::default().confidence_threshold
}
fn m_grid() -> u32 {
    MatcherParams::default().num_grid_cells
}

/// PerDINO: per-object DINO similarity maps turned into point prompts.
#[derive(Debug, Clone, Object)]
pub struct PerDinoConfig {
    #[oai(default = "d_sam")]
    pub sam_model: SamModelName,
    #[oai(default = "d_encoder")]
    pub encoder_model: EncoderModelName,
    #[oai(default = "d_bf16")]
    pub precision: PrecisionName,
    #[oai(
        default = "p_fg",
        validator(minimum(value = "1"), maximum(value = "300"))
    )]
    pub num_foreground_points: u32,
    #[oai(default = "p_bg", validator(maximum(value = "10")))]
    pub num_background_points: u32,
    #[oai(
        default = "p_grid",
        validator(minimum(value = "1"), maximum(value = "100"))
    )]
    pub num_grid_cells: u32,
    #[oai(
        default = "p_sel",
        validator(minimum(value = "0", exclusive), maximum(value = "1", exclusive))
    )]
    pub point_selection_threshold: f64,
    #[oai(
        default = "p_conf",
        validator(minimum(value = "0", exclusive), maximum(value = "1", exclusive))
    )]
    pub confidence_threshold: f64,
}

fn p_fg() -> u32 {
    PerDinoParams::default().num_foreground_points
}
fn p_bg() -> u32 {
    PerDinoParams::default().num_background_points
}
fn p_grid() -> u32 {
    PerDinoParams::default().num_grid_cells
}
fn p_sel() -> f64 {
    PerDinoParams::default().point_selection_threshold
}
fn p_conf() -> f64 {
    PerDinoParams::default().confidence_threshold
}

/// SoftMatcher: soft (optimal-transport style) matching of encoder features.
#[derive(Debug, Clone, Object)]
pub struct SoftMatcherConfig {
    #[oai(default = "d_sam")]
    pub sam_model: SamModelName,
    #[oai(default = "d_encoder")]
    pub encoder_model: EncoderModelName,
    #[oai(default = "d_bf16")]
    pub precision: PrecisionName,
    #[oai(
        default = "s_fg",
        validator(minimum(value = "1"), maximum(value = "300"))
    )]
    pub num_foreground_points: u32,
    #[oai(default = "s_bg", validator(maximum(value = "10")))]
    pub num_background_points: u32,
    #[oai(
        default = "s_conf",
        validator(minimum(value = "0", exclusive), maximum(value = "1", exclusive))
    )]
    pub confidence_threshold: f64,
    #[oai(default)]
    pub use_sampling: bool,
    #[oai(default)]
    pub use_spatial_sampling: bool,
    #[oai(default)]
    pub approximate_matching: bool,
    #[oai(
        default = "s_score",
        validator(minimum(value = "0", exclusive), maximum(value = "1", exclusive))
    )]
    pub softmatching_score_threshold: f64,
    #[oai(default)]
    pub softmatching_bidirectional: bool,
}

fn s_fg() -> u32 {
    SoftMatcherParams::default().num_foreground_points
}
fn s_bg() -> u32 {
    SoftMatcherParams::default().num_background_points
}
fn s_conf() -> f64 {
    SoftMatcherParams::default().confidence_threshold
}
fn s_score() -> f64 {
    SoftMatcherParams::default().softmatching_score_threshold
}

/// Classical: weights-free colour and texture matching; needs no download.
#[derive(Debug, Clone, Object)]
pub struct ClassicalConfig {
    #[oai(
        default = "c_conf",
        validator(minimum(value = "0", exclusive), maximum(value = "1", exclusive))
    )]
    pub confidence_threshold: f64,
    #[oai(
        default = "c_max",
        validator(minimum(value = "1"), maximum(value = "1000"))
    )]
    pub max_detections: u32,
    /// The smallest instance reported, as a fraction of the area of the smallest annotated
    /// reference object, 0.01 to 1 (default 0.2). Smaller blobs are dropped as noise.
    #[oai(
        default = "c_min_area",
        validator(minimum(value = "0.01"), maximum(value = "1"))
    )]
    pub min_area: f64,
}

fn c_conf() -> f64 {
    ClassicalParams::default().confidence_threshold
}
fn c_max() -> u32 {
    ClassicalParams::default().max_detections
}
fn c_min_area() -> f64 {
    ClassicalParams::default().min_area
}

#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "model_type")]
pub enum ModelConfigBody {
    #[oai(mapping = "matcher")]
    Matcher(MatcherConfig),
    #[oai(mapping = "perdino")]
    PerDino(PerDinoConfig),
    #[oai(mapping = "soft_matcher")]
    SoftMatcher(SoftMatcherConfig),
    #[oai(mapping = "classical")]
    Classical(ClassicalConfig),
}

impl From<ModelConfigBody> for AlgorithmParams {
    fn from(b: ModelConfigBody) -> Self {
        match b {
            ModelConfigBody::Matcher(c) => AlgorithmParams::Matcher(MatcherParams {
                sam_model: c.sam_model.into(),
                encoder_model: c.encoder_model.into(),
                precision: c.precision.into(),
                num_foreground_points: c.num_foreground_points,
                num_background_points: c.num_background_points,
                confidence_threshold: c.confidence_threshold,
                use_mask_refinement: c.use_mask_refinement,
                similarity_threshold: c.similarity_threshold,
                num_grid_cells: c.num_grid_cells,
            }),
            ModelConfigBody::PerDino(c) => AlgorithmParams::PerDino(PerDinoParams {
                sam_model: c.sam_model.into(),
                encoder_model: c.encoder_model.into(),
                precision: c.precision.into(),
                num_foreground_points: c.num_foreground_points,
                num_background_points: c.num_background_points,
                num_grid_cells: c.num_grid_cells,
                point_selection_threshold: c.point_selection_threshold,
                confidence_threshold: c.confidence_threshold,
            }),
            ModelConfigBody::SoftMatcher(c) => AlgorithmParams::SoftMatcher(SoftMatcherParams {
                sam_model: c.sam_model.into(),
                encoder_model: c.encoder_model.into(),
                precision: c.precision.into(),
                num_foreground_points: c.num_foreground_points,
                num_background_points: c.num_background_points,
                confidence_threshold: c.confidence_threshold,
                use_sampling: c.use_sampling,
                use_spatial_sampling: c.use_spatial_sampling,
                approximate_matching: c.approximate_matching,
                softmatching_score_threshold: c.softmatching_score_threshold,
                softmatching_bidirectional: c.softmatching_bidirectional,
            }),
            ModelConfigBody::Classical(c) => AlgorithmParams::Classical(ClassicalParams {
                confidence_threshold: c.confidence_threshold,
                max_detections: c.max_detections,
                min_area: c.min_area,
            }),
        }
    }
}

impl From<AlgorithmParams> for ModelConfigBody {
    fn from(p: AlgorithmParams) -> Self {
        match p {
            AlgorithmParams::Matcher(p) => Self::Matcher(MatcherConfig {
                sam_model: p.sam_model.into(),
                encoder_model: p.encoder_model.into(),
                precision: p.precision.into(),
                num_foreground_points: p.num_foreground_points,
                num_background_points: p.num_background_points,
                confidence_threshold: p.confidence_threshold,
                use_mask_refinement: p.use_mask_refinement,
                similarity_threshold: p.similarity_threshold,
                num_grid_cells: p.num_grid_cells,
            }),
            AlgorithmParams::PerDino(p) => Self::PerDino(PerDinoConfig {
                sam_model: p.sam_model.into(),
                encoder_model: p.encoder_model.into(),
                precision: p.precision.into(),
                num_foreground_points: p.num_foreground_points,
                num_background_points: p.num_background_points,
                num_grid_cells: p.num_grid_cells,
                point_selection_threshold: p.point_selection_threshold,
                confidence_threshold: p.confidence_threshold,
            }),
            AlgorithmParams::SoftMatcher(p) => Self::SoftMatcher(SoftMatcherConfig {
                sam_model: p.sam_model.into(),
                encoder_model: p.encoder_model.into(),
                precision: p.precision.into(),
                num_foreground_points: p.num_foreground_points,
                num_background_points: p.num_background_points,
                confidence_threshold: p.confidence_threshold,
                use_sampling: p.use_sampling,
                use_spatial_sampling: p.use_spatial_sampling,
                approximate_matching: p.approximate_matching,
                softmatching_score_threshold: p.softmatching_score_threshold,
                softmatching_bidirectional: p.softmatching_bidirectional,
            }),
            AlgorithmParams::Classical(p) => Self::Classical(ClassicalConfig {
                confidence_threshold: p.confidence_threshold,
                max_detections: p.max_detections,
                min_area: p.min_area,
            }),
        }
    }
}

fn d_device() -> Text {
    Text("auto".into())
}

/// What a client sends to create or replace a model configuration.
#[derive(Debug, Clone, Object)]
pub struct ModelBody {
    /// Unique within the project.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Text,
    /// Whether this becomes the project's active configuration.
    #[oai(default)]
    pub active: bool,
    /// `auto`, `cpu`, `cuda[-N]` or `xpu[-N]`.
    #[oai(
        default = "d_device",
        validator(pattern = "^(auto|cpu|(cuda|xpu)([-:](0|[1-9][0-9]{0,3}))?)$")
    )]
    pub device: Text,
    pub config: ModelConfigBody,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "Model")]
pub struct ModelResponse {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub device: String,
    pub config: ModelConfigBody,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<ModelConfig> for ModelResponse {
    fn from(m: ModelConfig) -> Self {
        Self {
            id: m.id.as_uuid(),
            name: m.name.to_string(),
            active: m.active,
            device: m.device.to_string(),
            config: m.params.into(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ModelList {
    pub models: Vec<ModelResponse>,
    pub pagination: Pagination,
}

#[derive(ApiResponse)]
pub enum ModelCreated {
    #[oai(status = 201)]
    Created(Json<ModelResponse>, #[oai(header = "Location")] String),
}

fn new_model(body: ModelBody) -> Result<NewModelConfig, ApiError> {
    Ok(NewModelConfig {
        name: DisplayName::parse(&body.name)?,
        active: body.active,
        device: Device::parse(&body.device)?,
        params: body.config.into(),
    })
}

pub struct ModelsApi {
    pub service: Service,
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Models")]
impl ModelsApi {
    #[oai(
        path = "/:project_id/models",
        method = "post",
        operation_id = "create_model"
    )]
    async fn create(
        &self,
        project_id: Path<Uuid>,
        body: Json<ModelBody>,
    ) -> Result<ModelCreated, ApiError> {
        let pid = ProjectId::from_uuid(project_id.0);
        let model = self.service.create_model(pid, new_model(body.0)?).await?;
        let loc = location(&[&"projects", &pid, &"models", &model.id]);
        Ok(ModelCreated::Created(Json(model.into()), loc))
    }

    /// Model configurations in creation order.
    #[oai(
        path = "/:project_id/models",
        method = "get",
        operation_id = "list_models"
    )]
    async fn list(
        &self,
        project_id: Path<Uuid>,
        /// Items to skip.
        #[oai(validator(maximum(value = "1000000000")))]
        offset: Query<Option<u64>>,
        /// Items to return, 1 to 1000 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<ModelList>, ApiError> {
        let paged = self
            .service
            .list_models(ProjectId::from_uuid(project_id.0), page(offset.0, limit.0)?)
            .await?;
        let pagination = Pagination::of(&paged);
        Ok(Json(ModelList {
            models: paged.items.into_iter().map(Into::into).collect(),
            pagination,
        }))
    }

    /// The project's active model configuration (404 when none is active).
    #[oai(
        path = "/:project_id/models/active",
        method = "get",
        operation_id = "get_active_model"
    )]
    async fn active(&self, project_id: Path<Uuid>) -> Result<Json<ModelResponse>, ApiError> {
        Ok(Json(
            self.service
                .active_model(ProjectId::from_uuid(project_id.0))
                .await?
                .into(),
        ))
    }

    #[oai(
        path = "/:project_id/models/:model_id",
        method = "get",
        operation_id = "get_model"
    )]
    async fn get(
        &self,
        project_id: Path<Uuid>,
        model_id: Path<Uuid>,
    ) -> Result<Json<ModelResponse>, ApiError> {
        let model = self
            .service
            .get_model(
                ProjectId::from_uuid(project_id.0),
                ModelConfigId::from_uuid(model_id.0),
            )
            .await?;
        Ok(Json(model.into()))
    }

    /// Replace a model configuration (the algorithm may change).
    #[oai(
        path = "/:project_id/models/:model_id",
        method = "put",
        operation_id = "update_model"
    )]
    async fn update(
        &self,
        project_id: Path<Uuid>,
        model_id: Path<Uuid>,
        body: Json<ModelBody>,
    ) -> Result<Json<ModelResponse>, ApiError> {
        let model = self
            .service
            .replace_model(
                ProjectId::from_uuid(project_id.0),
                ModelConfigId::from_uuid(model_id.0),
                new_model(body.0)?,
            )
            .await?;
        Ok(Json(model.into()))
    }

    #[oai(
        path = "/:project_id/models/:model_id",
        method = "delete",
        operation_id = "delete_model"
    )]
    async fn delete(
        &self,
        project_id: Path<Uuid>,
        model_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        self.service
            .delete_model(
                ProjectId::from_uuid(project_id.0),
                ModelConfigId::from_uuid(model_id.0),
            )
            .await?;
        Ok(Deleted::NoContent)
    }
}
