//! Source use cases. A source's kind is fixed once created; its media path must lie inside the
//! media roots.

use crate::entity::{Source, SourceConfig};
use crate::error::{DomainError, Entity};
use crate::id::{ProjectId, SourceId};
use crate::page::{Page, Paged};
use crate::service::{Service, now};
use crate::value::DisplayName;

/// What a client sends to create or replace a source.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSource {
    /// `None` names the source after its kind.
    pub name: Option<DisplayName>,
    pub active: bool,
    pub config: SourceConfig,
}

impl Service {
    fn check_source_config(&self, config: &SourceConfig) -> Result<(), DomainError> {
        config.check().map_err(|e| e.in_field("config"))?;
        if let Some((field, path)) = config.media_path() {
            self.media_roots.confine(&format!("config.{field}"), path)?;
        }
        Ok(())
    }

    pub async fn create_source(
        &self,
        project_id: ProjectId,
        new: NewSource,
    ) -> Result<Source, DomainError> {
        self.check_source_config(&new.config)?;
        let at = now();
        let source = Source {
            id: SourceId::new(),
            project_id,
            name: new
                .name
                .unwrap_or_else(|| default_name(new.config.kind().default_name())),
            active: new.active,
            config: new.config,
            created_at: at,
            updated_at: at,
        };
        self.repo.insert_source(&source).await?;
        Ok(source)
    }

    pub async fn get_source(
        &self,
        project_id: ProjectId,
        id: SourceId,
    ) -> Result<Source, DomainError> {
        self.get_project(project_id).await?;
        self.repo
            .get_source(project_id, id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Source, id))
    }

    pub async fn list_sources(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Source>, DomainError> {
        self.get_project(project_id).await?;
        self.repo.list_sources(project_id, page).await
    }

    /// Replaces name, active flag and configuration; the kind must stay the same.
    pub async fn replace_source(
        &self,
        project_id: ProjectId,
        id: SourceId,
        new: NewSource,
    ) -> Result<Source, DomainError> {
        let mut source = self.get_source(project_id, id).await?;
        if source.config.kind() != new.config.kind() {
            return Err(DomainError::invalid(
                "config.source_type",
                format!(
                    "a {} source cannot become a {} source; create a new source instead",
                    source.config.kind().as_str(),
                    new.config.kind().as_str()
                ),
            ));
        }
        self.check_source_config(&new.config)?;
        source.name = new.name.unwrap_or(source.name);
        source.active = new.active;
        source.config = new.config;
        source.updated_at = now();
        self.repo.update_source(&source).await?;
        Ok(source)
    }

    pub async fn delete_source(
        &self,
        project_id: ProjectId,
        id: SourceId,
    ) -> Result<(), DomainError> {
        self.get_project(project_id).await?;
        if self.repo.delete_source(project_id, id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(Entity::Source, id))
        }
    }
}

pub(super) fn default_name(name: &str) -> DisplayName {
    DisplayName::parse(name).expect("default names are valid")
}
