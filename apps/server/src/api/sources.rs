//! `/api/v1/projects/{project_id}/sources`: where live frames come from. At most one source of a
//! project is active; activating one deactivates the others.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use uuid::Uuid;
use visprompt_domain::{
    DisplayName, NewSource, ProjectId, Service, Source, SourceConfig, SourceId,
};

use crate::api::common::{Pagination, location, page};
use crate::api::error::ApiError;
use crate::api::text::Text;
use crate::api::{ApiTags, Deleted};

/// A V4L2 camera, `/dev/video{device_id}`.
#[derive(Debug, Clone, Object)]
pub struct UsbCameraSource {
    #[oai(validator(maximum(value = "255")))]
    pub device_id: u32,
}

/// A video file on the server, inside the media roots (setting `MEDIA_ROOTS`).
#[derive(Debug, Clone, Object)]
pub struct VideoFileSource {
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub video_path: Text,
    /// Start again at the end (default); `false` keeps the last frame.
    #[oai(rename = "loop", default = "looping_by_default")]
    pub looping: bool,
}

fn looping_by_default() -> bool {
    true
}

/// A folder of images on the server, inside the media roots.
#[derive(Debug, Clone, Object)]
pub struct ImagesFolderSource {
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub images_folder_path: Text,
}

/// An RTSP or RTSPS camera stream.
#[derive(Debug, Clone, Object)]
pub struct RtspSource {
    #[oai(validator(
        min_length = 1,
        max_length = 2048,
        pattern = "^[rR][tT][sS][pP][sS]?://"
    ))]
    pub url: Text,
}

/// A bundled sample dataset; the first one when `dataset_id` is left out.
#[derive(Debug, Clone, Object)]
pub struct SampleDatasetSource {
    #[oai(skip_serializing_if_is_none)]
    pub dataset_id: Option<Uuid>,
}

/// Moving textured shapes at known positions: the built-in demo source.
#[derive(Debug, Clone, Object)]
pub struct SyntheticSource {}

#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "source_type")]
pub enum SourceConfigBody {
    #[oai(mapping = "usb_camera")]
    UsbCamera(UsbCameraSource),
    #[oai(mapping = "video_file")]
    VideoFile(VideoFileSource),
    #[oai(mapping = "images_folder")]
    ImagesFolder(ImagesFolderSource),
    #[oai(mapping = "rtsp")]
    Rtsp(RtspSource),
    #[oai(mapping = "sample_dataset")]
    SampleDataset(SampleDatasetSource),
    #[oai(mapping = "synthetic")]
    Synthetic(SyntheticSource),
}

impl From<SourceConfigBody> for SourceConfig {
    fn from(b: SourceConfigBody) -> Self {
        match b {
            SourceConfigBody::UsbCamera(c) => SourceConfig::UsbCamera {
                device_id: c.device_id,
            },
            SourceConfigBody::VideoFile(c) => SourceConfig::VideoFile {
                video_path: c.video_path.into(),
                looping: c.looping,
            },
            SourceConfigBody::ImagesFolder(c) => SourceConfig::ImagesFolder {
                images_folder_path: c.images_folder_path.into(),
            },
            SourceConfigBody::Rtsp(c) => SourceConfig::Rtsp { url: c.url.into() },
            SourceConfigBody::SampleDataset(c) => SourceConfig::SampleDataset {
                dataset_id: c.dataset_id,
            },
            SourceConfigBody::Synthetic(_) => SourceConfig::Synthetic,
        }
    }
}

impl From<SourceConfig> for SourceConfigBody {
    fn from(c: SourceConfig) -> Self {
        match c {
            SourceConfig::UsbCamera { device_id } => Self::UsbCamera(UsbCameraSource { device_id }),
            SourceConfig::VideoFile {
                video_path,
                looping,
            } => Self::VideoFile(VideoFileSource {
                video_path: video_path.into(),
                looping,
            }),
            SourceConfig::ImagesFolder { images_folder_path } => {
                Self::ImagesFolder(ImagesFolderSource {
                    images_folder_path: images_folder_path.into(),
                })
            }
            SourceConfig::Rtsp { url } => Self::Rtsp(RtspSource { url: url.into() }),
            SourceConfig::SampleDataset { dataset_id } => {
                Self::SampleDataset(SampleDatasetSource { dataset_id })
            }
            SourceConfig::Synthetic => Self::Synthetic(SyntheticSource {}),
        }
    }
}

/// What a client sends to create or replace a source.
#[derive(Debug, Clone, Object)]
pub struct SourceBody {
    /// Defaults to a name for the source's type.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<Text>,
    /// Whether this becomes the project's active source.
    #[oai(default)]
    pub active: bool,
    pub config: SourceConfigBody,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "Source")]
pub struct SourceResponse {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub config: SourceConfigBody,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Source> for SourceResponse {
    fn from(s: Source) -> Self {
        Self {
            id: s.id.as_uuid(),
            name: s.name.to_string(),
            active: s.active,
            config: s.config.into(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct SourceList {
    pub sources: Vec<SourceResponse>,
    pub pagination: Pagination,
}

#[derive(ApiResponse)]
pub enum SourceCreated {
    #[oai(status = 201)]
    Created(Json<SourceResponse>, #[oai(header = "Location")] String),
}

fn new_source(body: SourceBody) -> Result<NewSource, ApiError> {
    Ok(NewSource {
        name: body.name.as_deref().map(DisplayName::parse).transpose()?,
        active: body.active,
        config: body.config.into(),
    })
}

pub struct SourcesApi {
    pub service: Service,
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Sources")]
impl SourcesApi {
    #[oai(
        path = "/:project_id/sources",
        method = "post",
        operation_id = "create_source"
    )]
    async fn create(
        &self,
        project_id: Path<Uuid>,
        body: Json<SourceBody>,
    ) -> Result<SourceCreated, ApiError> {
        let pid = ProjectId::from_uuid(project_id.0);
        let source = self.service.create_source(pid, new_source(body.0)?).await?;
        let loc = location(&[&"projects", &pid, &"sources", &source.id]);
        Ok(SourceCreated::Created(Json(source.into()), loc))
    }

    /// Sources in creation order.
    #[oai(
        path = "/:project_id/sources",
        method = "get",
        operation_id = "list_sources"
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
    ) -> Result<Json<SourceList>, ApiError> {
        let paged = self
            .service
            .list_sources(ProjectId::from_uuid(project_id.0), page(offset.0, limit.0)?)
            .await?;
        let pagination = Pagination::of(&paged);
        Ok(Json(SourceList {
            sources: paged.items.into_iter().map(Into::into).collect(),
            pagination,
        }))
    }

    #[oai(
        path = "/:project_id/sources/:source_id",
        method = "get",
        operation_id = "get_source"
    )]
    async fn get(
        &self,
        project_id: Path<Uuid>,
        source_id: Path<Uuid>,
    ) -> Result<Json<SourceResponse>, ApiError> {
        let source = self
            .service
            .get_source(
                ProjectId::from_uuid(project_id.0),
                SourceId::from_uuid(source_id.0),
            )
            .await?;
        Ok(Json(source.into()))
    }

    /// Replace a source's name, active flag and configuration; its type cannot change.
    #[oai(
        path = "/:project_id/sources/:source_id",
        method = "put",
        operation_id = "update_source"
    )]
    async fn update(
        &self,
        project_id: Path<Uuid>,
        source_id: Path<Uuid>,
        body: Json<SourceBody>,
    ) -> Result<Json<SourceResponse>, ApiError> {
        let source = self
            .service
            .replace_source(
                ProjectId::from_uuid(project_id.0),
                SourceId::from_uuid(source_id.0),
                new_source(body.0)?,
            )
            .await?;
        Ok(Json(source.into()))
    }

    #[oai(
        path = "/:project_id/sources/:source_id",
        method = "delete",
        operation_id = "delete_source"
    )]
    async fn delete(
        &self,
        project_id: Path<Uuid>,
        source_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        self.service
            .delete_source(
                ProjectId::from_uuid(project_id.0),
                SourceId::from_uuid(source_id.0),
            )
            .await?;
        Ok(Deleted::NoContent)
    }
}
