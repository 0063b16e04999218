//! Prompt use cases. Before a prompt is stored, every label it names must belong to the project and
//! every shape must fit the frame it annotates; the repository re-checks existence atomically.

use crate::entity::{Prompt, PromptContent, PromptKind};
use crate::error::{DomainError, Entity};
use crate::id::{ProjectId, PromptId};
use crate::page::{Page, Paged};
use crate::service::{Service, now};

impl Service {
    pub async fn create_prompt(
        &self,
        project_id: ProjectId,
        content: PromptContent,
    ) -> Result<Prompt, DomainError> {
        self.check_prompt(project_id, &content).await?;
        let at = now();
        let prompt = Prompt {
            id: PromptId::new(),
            project_id,
            content,
            created_at: at,
            updated_at: at,
        };
        self.repo.insert_prompt(&prompt).await?;
        Ok(prompt)
    }

    pub async fn get_prompt(
        &self,
        project_id: ProjectId,
        id: PromptId,
    ) -> Result<Prompt, DomainError> {
        self.get_project(project_id).await?;
        self.repo
            .get_prompt(project_id, id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Prompt, id))
    }

    pub async fn list_prompts(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Prompt>, DomainError> {
        self.get_project(project_id).await?;
        self.repo.list_prompts(project_id, page).await
    }

    /// Replaces the prompt's content; its kind (visual or text) cannot change.
    pub async fn update_prompt(
        &self,
        project_id: ProjectId,
        id: PromptId,
        content: PromptContent,
    ) -> Result<Prompt, DomainError> {
        let mut prompt = self.get_prompt(project_id, id).await?;
        if prompt.content.kind() != content.kind() {
            let (from, to) = match prompt.content.kind() {
                PromptKind::Visual => ("visual", "text"),
                PromptKind::Text => ("text", "visual"),
            };
            return Err(DomainError::invalid(
                "type",
                format!("a {from} prompt cannot become a {to} prompt; create a new prompt instead"),
            ));
        }
        self.check_prompt(project_id, &content).await?;
        prompt.content = content;
        prompt.updated_at = now();
        self.repo.update_prompt(&prompt).await?;
        Ok(prompt)
    }

    pub async fn delete_prompt(
        &self,
        project_id: ProjectId,
        id: PromptId,
    ) -> Result<(), DomainError> {
        self.get_project(project_id).await?;
        if self.repo.delete_prompt(project_id, id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(Entity::Prompt, id))
        }
    }

    async fn check_prompt(
        &self,
        project_id: ProjectId,
        content: &PromptContent,
    ) -> Result<(), DomainError> {
        self.get_project(project_id).await?;
        content.check_counts()?;
        for label_id in content.label_ids() {
            if self.repo.get_label(project_id, label_id).await?.is_none() {
                return Err(DomainError::not_found(Entity::Label, label_id));
            }
        }
        if let PromptContent::Visual {
            frame_id,
            annotations,
        } = content
        {
            let frame = self
                .repo
                .get_frame(project_id, *frame_id)
                .await?
                .ok_or_else(|| DomainError::not_found(Entity::Frame, frame_id))?;
            for (i, annotation) in annotations.iter().enumerate() {
                annotation
                    .shape
                    .check(&format!("annotations[{i}].shape"), frame.size)?;
            }
        }
        Ok(())
    }
}
