//! `/api/v1/projects/{project_id}/sources/{source_id}/frames`: positions of the active source when
//! it has them (image folders, datasets, video files): list with thumbnails, current index, seek.
//! A seek on a manual source makes the pipeline read and process that frame.

use std::sync::Arc;

use base64::Engine as _;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use visprompt_domain::{ProjectId, Service, SourceId};
use visprompt_runtime::{FrameCodec, NavigationInfo, PipelineHandle};

use crate::api::ApiTags;
use crate::api::common::Pagination;
use crate::api::error::ApiError;

#[derive(Debug, Clone, Object)]
pub struct SourceFrame {
    pub index: u64,
    /// A JPEG `data:` URI, longest side at most 160 pixels.
    pub thumbnail: String,
}

#[derive(Debug, Clone, Object)]
pub struct SourceFrameList {
    pub frames: Vec<SourceFrame>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Object)]
pub struct SourceFrameIndex {
    pub index: u64,
    /// Number of positions of the source.
    pub count: u64,
}

impl From<NavigationInfo> for SourceFrameIndex {
    fn from(n: NavigationInfo) -> Self {
        Self {
            index: n.position as u64,
            count: n.len as u64,
        }
    }
}

const THUMBNAIL_SIDE: u32 = 160;

pub struct NavigationApi {
    pub service: Service,
    pub pipeline: PipelineHandle,
    pub codec: Arc<dyn FrameCodec>,
}

impl NavigationApi {
    /// Checks that the source exists (404) before asking the pipeline (409 when not active).
    async fn ids(
        &self,
        project_id: Uuid,
        source_id: Uuid,
    ) -> Result<(ProjectId, SourceId), ApiError> {
        let (pid, sid) = (
            ProjectId::from_uuid(project_id),
            SourceId::from_uuid(source_id),
        );
        self.service.get_source(pid, sid).await?;
        Ok((pid, sid))
    }
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Sources")]
impl NavigationApi {
    /// Frames of the active source with thumbnails (409 for a live stream or an inactive source).
    #[oai(
        path = "/:project_id/sources/:source_id/frames",
        method = "get",
        operation_id = "list_source_frames"
    )]
    async fn list(
        &self,
        project_id: Path<Uuid>,
        source_id: Path<Uuid>,
        /// Items to skip.
        #[oai(validator(maximum(value = "1000000000")))]
        offset: Query<Option<u64>>,
        /// Items to return, 1 to 100 (default 30).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<SourceFrameList>, ApiError> {
        let (pid, sid) = self.ids(project_id.0, source_id.0).await?;
        let offset = offset.0.unwrap_or(0);
        let limit = limit.0.unwrap_or(30);
        let (info, thumbnails) = self
            .pipeline
            .thumbnails(pid, sid, offset as usize, limit as usize, THUMBNAIL_SIDE)
            .await?;
        let codec = self.codec.clone();
        let frames = tokio::task::spawn_blocking(move || {
            thumbnails
                .into_iter()
                .map(|t| {
                    let jpeg = codec.encode_jpeg(&t.image, 80)?;
                    Ok(SourceFrame {
                        index: t.index as u64,
                        thumbnail: format!(
                            "data:image/jpeg;base64,{}",
                            base64::engine::general_purpose::STANDARD.encode(jpeg)
                        ),
                    })
                })
                .collect::<Result<Vec<_>, visprompt_runtime::CodecError>>()
        })
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(message = "Thumbnail encoding failed.", error = %e);
            ApiError::internal()
        })?;
        Ok(Json(SourceFrameList {
            pagination: Pagination {
                count: frames.len() as u64,
                total: info.len as u64,
                offset,
                limit,
            },
            frames,
        }))
    }

    /// The position of the active source.
    #[oai(
        path = "/:project_id/sources/:source_id/frames/index",
        method = "get",
        operation_id = "get_source_frame_index"
    )]
    async fn index(
        &self,
        project_id: Path<Uuid>,
        source_id: Path<Uuid>,
    ) -> Result<Json<SourceFrameIndex>, ApiError> {
        let (pid, sid) = self.ids(project_id.0, source_id.0).await?;
        Ok(Json(self.pipeline.position(pid, sid).await?.into()))
    }

    /// Moves the active source to `index` (422 when out of range); a manual source then reads and
    /// processes that frame.
    #[oai(
        path = "/:project_id/sources/:source_id/frames/:index",
        method = "post",
        operation_id = "seek_source_frame"
    )]
    async fn seek(
        &self,
        project_id: Path<Uuid>,
        source_id: Path<Uuid>,
        #[oai(validator(maximum(value = "1000000000")))] index: Path<u64>,
    ) -> Result<Json<SourceFrameIndex>, ApiError> {
        let (pid, sid) = self.ids(project_id.0, source_id.0).await?;
        Ok(Json(
            self.pipeline.seek(pid, sid, index.0 as usize).await?.into(),
        ))
    }
}
