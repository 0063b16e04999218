//! Model configuration use cases: named parameter sets per project, one of them active.

use crate::entity::{AlgorithmParams, ModelConfig};
use crate::error::{DomainError, Entity};
use crate::id::{ModelConfigId, ProjectId};
use crate::page::{Page, Paged};
use crate::service::{Service, now};
use crate::value::{Device, DisplayName};

#[derive(Clone, Debug, PartialEq)]
pub struct NewModelConfig {
    pub name: DisplayName,
    pub active: bool,
    pub device: Device,
    pub params: AlgorithmParams,
}

impl Service {
    pub async fn create_model(
        &self,
        project_id: ProjectId,
        new: NewModelConfig,
    ) -> Result<ModelConfig, DomainError> {
        new.params.check().map_err(|e| e.in_field("config"))?;
        let at = now();
        let model = ModelConfig {
            id: ModelConfigId::new(),
            project_id,
            name: new.name,
            active: new.active,
            device: new.device,
            params: new.params,
            created_at: at,
            updated_at: at,
        };
        self.repo.insert_model(&model).await?;
        Ok(model)
    }

    pub async fn get_model(
        &self,
        project_id: ProjectId,
        id: ModelConfigId,
    ) -> Result<ModelConfig, DomainError> {
        self.get_project(project_id).await?;
        self.repo
            .get_model(project_id, id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::ModelConfig, id))
    }

    pub async fn active_model(&self, project_id: ProjectId) -> Result<ModelConfig, DomainError> {
        self.get_project(project_id).await?;
        self.repo
            .active_model(project_id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::ActiveModelConfig, project_id))
    }

    pub async fn list_models(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<ModelConfig>, DomainError> {
        self.get_project(project_id).await?;
        self.repo.list_models(project_id, page).await
    }

    /// Replaces everything but the id; the algorithm may change.
    pub async fn replace_model(
        &self,
        project_id: ProjectId,
        id: ModelConfigId,
        new: NewModelConfig,
    ) -> Result<ModelConfig, DomainError> {
        new.params.check().map_err(|e| e.in_field("config"))?;
        let mut model = self.get_model(project_id, id).await?;
        model.name = new.name;
        model.active = new.active;
        model.device = new.device;
        model.params = new.params;
        model.updated_at = now();
        self.repo.update_model(&model).await?;
        Ok(model)
    }

    pub async fn delete_model(
        &self,
        project_id: ProjectId,
        id: ModelConfigId,
    ) -> Result<(), DomainError> {
        self.get_project(project_id).await?;
        if self.repo.delete_model(project_id, id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(Entity::ModelConfig, id))
        }
    }
}
