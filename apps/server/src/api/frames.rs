//! `/api/v1/projects/{project_id}/frames`: reference images. An upload is decoded completely
//! before it is stored; the stored image is served back byte for byte with its media type.

use std::sync::Arc;

use poem::{IntoResponse, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use uuid::Uuid;
use visprompt_domain::{Frame, FrameId, FrameSize, ImageFormat, ProjectId, Service};
use visprompt_image::{ImageError, inspect};
use visprompt_runtime::{FrameCodec, PipelineHandle};

use crate::api::common::{Pagination, location, page};
use crate::api::error::ApiError;
use crate::api::{ApiTags, Deleted};

#[derive(Debug, Clone, Object)]
#[oai(rename = "Frame")]
pub struct FrameResponse {
    pub id: Uuid,
    /// `image/jpeg` or `image/png`.
    pub media_type: String,
    pub width: u32,
    pub height: u32,
    /// Size of the encoded image.
    pub byte_len: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Frame> for FrameResponse {
    fn from(f: Frame) -> Self {
        Self {
            id: f.id.as_uuid(),
            media_type: f.format.media_type().into(),
            width: f.size.width(),
            height: f.size.height(),
            byte_len: f.byte_len,
            created_at: f.created_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct FrameList {
    pub frames: Vec<FrameResponse>,
    pub pagination: Pagination,
}

#[derive(ApiResponse)]
pub enum FrameCreated {
    #[oai(status = 201)]
    Created(Json<FrameResponse>, #[oai(header = "Location")] String),
}

/// The image body of an upload; its format is read from the data, not from the header.
#[derive(ApiRequest)]
pub enum ImageUpload {
    #[oai(content_type = "image/jpeg")]
    Jpeg(Binary<Vec<u8>>),
    #[oai(content_type = "image/png")]
    Png(Binary<Vec<u8>>),
    #[oai(content_type = "application/octet-stream")]
    Bytes(Binary<Vec<u8>>),
}

/// A stored image with the media type it was stored with. Written by hand because one status
/// with two media types cannot be derived.
pub struct FrameImage {
    media_type: &'static str,
    bytes: Vec<u8>,
}

impl IntoResponse for FrameImage {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(self.media_type)
            .header("Cache-Control", "private, max-age=31536000, immutable")
            .body(self.bytes)
    }
}

impl poem_openapi::ApiResponse for FrameImage {
    fn meta() -> MetaResponses {
        let schema = Binary::<Vec<u8>>::schema_ref;
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The stored image",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "image/jpeg",
                        schema: schema(),
                    },
                    MetaMediaType {
                        content_type: "image/png",
                        schema: schema(),
                    },
                ],
                headers: vec![],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

pub struct FramesApi {
    pub service: Service,
    pub pipeline: PipelineHandle,
    pub codec: Arc<dyn FrameCodec>,
}

/// Captured frames are stored as JPEG at this quality: visually lossless, a tenth of a PNG.
const CAPTURE_QUALITY: u8 = 95;

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Frames")]
impl FramesApi {
    /// Upload a reference image (JPEG or PNG). It is decoded completely before it is stored.
    #[oai(
        path = "/:project_id/frames/upload",
        method = "post",
        operation_id = "upload_frame"
    )]
    async fn upload(
        &self,
        project_id: Path<Uuid>,
        body: ImageUpload,
    ) -> Result<FrameCreated, ApiError> {
        let (ImageUpload::Jpeg(Binary(bytes))
        | ImageUpload::Png(Binary(bytes))
        | ImageUpload::Bytes(Binary(bytes))) = body;
        let pid = ProjectId::from_uuid(project_id.0);
        // Refuse an unknown project before spending time decoding.
        self.service.get_project(pid).await?;
        let (info, bytes) = tokio::task::spawn_blocking(move || (inspect(&bytes), bytes))
            .await
            .map_err(|_| ApiError::internal())?;
        let info = info.map_err(|e| match e {
            ImageError::UnsupportedFormat
            | ImageError::Corrupt(_)
            | ImageError::TooLarge { .. } => ApiError::invalid("body", e.to_string()),
        })?;
        let frame = self
            .service
            .add_frame(pid, info.format, info.size, bytes)
            .await?;
        let loc = location(&[&"projects", &pid, &"frames", &frame.id]);
        Ok(FrameCreated::Created(Json(frame.into()), loc))
    }

    /// Capture the newest frame of the project's active source as a reference frame (JPEG). 409
    /// when the project's pipeline is not running, has no frame yet, or its source is in error.
    #[oai(
        path = "/:project_id/frames",
        method = "post",
        operation_id = "capture_frame"
    )]
    async fn capture(&self, project_id: Path<Uuid>) -> Result<FrameCreated, ApiError> {
        let pid = ProjectId::from_uuid(project_id.0);
        self.service.get_project(pid).await?;
        let frame = self.pipeline.latest_frame(pid)?;
        let codec = self.codec.clone();
        let image = frame.image.clone();
        let bytes = tokio::task::spawn_blocking(move || codec.encode_jpeg(&image, CAPTURE_QUALITY))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| {
                tracing::error!(message = "Encoding a captured frame failed.", error = %e);
                ApiError::internal()
            })?;
        let size = FrameSize::new(frame.image.width(), frame.image.height())
            .map_err(|e| ApiError::conflict(format!("the source's frame cannot be stored: {e}")))?;
        let stored = self
            .service
            .add_frame(pid, ImageFormat::Jpeg, size, bytes)
            .await?;
        let loc = location(&[&"projects", &pid, &"frames", &stored.id]);
        Ok(FrameCreated::Created(Json(stored.into()), loc))
    }

    /// Frames of the project in upload order (metadata only).
    #[oai(
        path = "/:project_id/frames",
        method = "get",
        operation_id = "list_frames"
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
    ) -> Result<Json<FrameList>, ApiError> {
        let paged = self
            .service
            .list_frames(ProjectId::from_uuid(project_id.0), page(offset.0, limit.0)?)
            .await?;
        let pagination = Pagination::of(&paged);
        Ok(Json(FrameList {
            frames: paged.items.into_iter().map(Into::into).collect(),
            pagination,
        }))
    }

    /// The stored image, byte for byte.
    #[oai(
        path = "/:project_id/frames/:frame_id",
        method = "get",
        operation_id = "get_frame"
    )]
    async fn get(
        &self,
        project_id: Path<Uuid>,
        frame_id: Path<Uuid>,
    ) -> Result<FrameImage, ApiError> {
        let (frame, bytes) = self
            .service
            .frame_image(
                ProjectId::from_uuid(project_id.0),
                FrameId::from_uuid(frame_id.0),
            )
            .await?;
        Ok(FrameImage {
            media_type: frame.format.media_type(),
            bytes,
        })
    }

    /// Delete a frame that no prompt uses (409 otherwise; deleting the prompt deletes its frame).
    #[oai(
        path = "/:project_id/frames/:frame_id",
        method = "delete",
        operation_id = "delete_frame"
    )]
    async fn delete(
        &self,
        project_id: Path<Uuid>,
        frame_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        self.service
            .delete_frame(
                ProjectId::from_uuid(project_id.0),
                FrameId::from_uuid(frame_id.0),
            )
            .await?;
        Ok(Deleted::NoContent)
    }
}
