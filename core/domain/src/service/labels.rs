//! Label use cases. A label created without a colour gets the first palette colour that no other
//! label of the project has.

use crate::entity::Label;
use crate::error::{DomainError, Entity};
use crate::id::{LabelId, ProjectId};
use crate::page::{Page, Paged};
use crate::service::{Service, now};
use crate::value::{Color, LabelName};

impl Service {
    pub async fn create_label(
        &self,
        project_id: ProjectId,
        name: LabelName,
        color: Option<Color>,
    ) -> Result<Label, DomainError> {
        let color = match color {
            Some(color) => color,
            None => {
                self.get_project(project_id).await?;
                let taken: Vec<Color> = self
                    .repo
                    .list_labels(project_id, Page::all())
                    .await?
                    .items
                    .iter()
                    .map(|l| l.color)
                    .collect();
                Color::next_from_palette(&taken)
            }
        };
        let at = now();
        let label = Label {
            id: LabelId::new(),
            project_id,
            name,
            color,
            created_at: at,
            updated_at: at,
        };
        self.repo.insert_label(&label).await?;
        Ok(label)
    }

    pub async fn get_label(
        &self,
        project_id: ProjectId,
        id: LabelId,
    ) -> Result<Label, DomainError> {
        self.get_project(project_id).await?;
        self.repo
            .get_label(project_id, id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Label, id))
    }

    pub async fn list_labels(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Label>, DomainError> {
        self.get_project(project_id).await?;
        self.repo.list_labels(project_id, page).await
    }

    pub async fn update_label(
        &self,
        project_id: ProjectId,
        id: LabelId,
        name: Option<LabelName>,
        color: Option<Color>,
    ) -> Result<Label, DomainError> {
        let mut label = self.get_label(project_id, id).await?;
        if name.is_none() && color.is_none() {
            return Ok(label);
        }
        label.name = name.unwrap_or(label.name);
        label.color = color.unwrap_or(label.color);
        label.updated_at = now();
        self.repo.update_label(&label).await?;
        Ok(label)
    }

    pub async fn delete_label(
        &self,
        project_id: ProjectId,
        id: LabelId,
    ) -> Result<(), DomainError> {
        self.get_project(project_id).await?;
        if self.repo.delete_label(project_id, id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(Entity::Label, id))
        }
    }
}
