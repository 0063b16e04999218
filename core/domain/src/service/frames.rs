//! Reference frame use cases: store an uploaded (already inspected) image, read it back, delete
//! it when no prompt uses it.

use crate::entity::{Frame, FrameSize, ImageFormat};
use crate::error::{DomainError, Entity};
use crate::id::{FrameId, ProjectId};
use crate::page::{Page, Paged};
use crate::repository::StoredFrame;
use crate::service::{Service, now};

impl Service {
    /// Stores an image whose format and size the caller has established by decoding it.
    pub async fn add_frame(
        &self,
        project_id: ProjectId,
        format: ImageFormat,
        size: FrameSize,
        bytes: Vec<u8>,
    ) -> Result<Frame, DomainError> {
        let frame = Frame {
            id: FrameId::new(),
            project_id,
            format,
            size,
            byte_len: bytes.len() as u64,
            created_at: now(),
        };
        self.repo
            .insert_frame(&StoredFrame {
                frame: frame.clone(),
                bytes,
            })
            .await?;
        Ok(frame)
    }

    pub async fn get_frame(
        &self,
        project_id: ProjectId,
        id: FrameId,
    ) -> Result<Frame, DomainError> {
        self.get_project(project_id).await?;
        self.repo
            .get_frame(project_id, id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Frame, id))
    }

    pub async fn frame_image(
        &self,
        project_id: ProjectId,
        id: FrameId,
    ) -> Result<(Frame, Vec<u8>), DomainError> {
        let frame = self.get_frame(project_id, id).await?;
        let bytes = self
            .repo
            .get_frame_bytes(project_id, id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Frame, id))?;
        Ok((frame, bytes))
    }

    pub async fn list_frames(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Frame>, DomainError> {
        self.get_project(project_id).await?;
        self.repo.list_frames(project_id, page).await
    }

    pub async fn delete_frame(
        &self,
        project_id: ProjectId,
        id: FrameId,
    ) -> Result<(), DomainError> {
        self.get_project(project_id).await?;
        if self.repo.delete_frame(project_id, id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(Entity::Frame, id))
        }
    }
}
