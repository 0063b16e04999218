//! Sink use cases. A sink's kind is fixed once created; a file sink's path must lie inside the
//! media roots.

use crate::entity::{Sink, SinkConfig};
use crate::error::{DomainError, Entity};
use crate::id::{ProjectId, SinkId};
use crate::page::{Page, Paged};
use crate::service::sources::default_name;
use crate::service::{Service, now};
use crate::value::DisplayName;

#[derive(Clone, Debug, PartialEq)]
pub struct NewSink {
    pub name: Option<DisplayName>,
    pub active: bool,
    pub config: SinkConfig,
}

impl Service {
    fn check_sink_config(&self, config: &SinkConfig) -> Result<(), DomainError> {
        config.check().map_err(|e| e.in_field("config"))?;
        if let Some((field, path)) = config.media_path() {
            self.media_roots.confine(&format!("config.{field}"), path)?;
        }
        Ok(())
    }

    pub async fn create_sink(
        &self,
        project_id: ProjectId,
        new: NewSink,
    ) -> Result<Sink, DomainError> {
        self.check_sink_config(&new.config)?;
        let at = now();
        let sink = Sink {
            id: SinkId::new(),
            project_id,
            name: new
                .name
                .unwrap_or_else(|| default_name(new.config.kind().default_name())),
            active: new.active,
            config: new.config,
            created_at: at,
            updated_at: at,
        };
        self.repo.insert_sink(&sink).await?;
        Ok(sink)
    }

    pub async fn get_sink(&self, project_id: ProjectId, id: SinkId) -> Result<Sink, DomainError> {
        self.get_project(project_id).await?;
        self.repo
            .get_sink(project_id, id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Sink, id))
    }

    pub async fn list_sinks(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Sink>, DomainError> {
        self.get_project(project_id).await?;
        self.repo.list_sinks(project_id, page).await
    }

    /// Replaces name, active flag and configuration; the kind must stay the same. An MQTT
    /// password left out keeps the stored one, so clients never need to read it back.
    pub async fn replace_sink(
        &self,
        project_id: ProjectId,
        id: SinkId,
        mut new: NewSink,
    ) -> Result<Sink, DomainError> {
        let mut sink = self.get_sink(project_id, id).await?;
        if sink.config.kind() != new.config.kind() {
            return Err(DomainError::invalid(
                "config.sink_type",
                format!(
                    "a {} sink cannot become a {} sink; create a new sink instead",
                    sink.config.kind().as_str(),
                    new.config.kind().as_str()
                ),
            ));
        }
        if let (SinkConfig::Mqtt(old), SinkConfig::Mqtt(new)) = (&sink.config, &mut new.config)
            && new.password.is_none()
        {
            new.password.clone_from(&old.password);
        }
        self.check_sink_config(&new.config)?;
        sink.name = new.name.unwrap_or(sink.name);
        sink.active = new.active;
        sink.config = new.config;
        sink.updated_at = now();
        self.repo.update_sink(&sink).await?;
        Ok(sink)
    }

    pub async fn delete_sink(&self, project_id: ProjectId, id: SinkId) -> Result<(), DomainError> {
        self.get_project(project_id).await?;
        if self.repo.delete_sink(project_id, id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(Entity::Sink, id))
        }
    }
}
