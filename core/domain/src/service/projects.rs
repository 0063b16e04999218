//! Project use cases: create (with one model configuration per algorithm), rename, activate,
//! delete, export and import.

use std::collections::HashMap;

use crate::entity::{Algorithm, ModelConfig, Project, Prompt, PromptContent};
use crate::error::{DomainError, Entity};
use crate::id::{FrameId, LabelId, ModelConfigId, ProjectId, PromptId, SinkId, SourceId};
use crate::page::{Page, Paged};
use crate::repository::{ProjectBundle, StoredFrame};
use crate::service::{Service, now};
use crate::value::{Device, DisplayName, ProjectName};

/// A partial update: fields left `None` keep their value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProjectUpdate {
    pub name: Option<ProjectName>,
    pub active: Option<bool>,
}

/// The algorithm whose configuration is active in a new project: it needs no model download, so
/// a new project runs on any machine at once.
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::Classical;

impl Service {
    /// Creates a project with one model configuration per algorithm (the classical one active).
    /// A project created `active` becomes the one active project.
    pub async fn create_project(
        &self,
        name: ProjectName,
        active: bool,
    ) -> Result<Project, DomainError> {
        let at = now();
        let project = Project {
            id: ProjectId::new(),
            name,
            active,
            created_at: at,
            updated_at: at,
        };
        let models = Algorithm::ALL
            .iter()
            .map(|&algorithm| ModelConfig {
                id: ModelConfigId::new(),
                project_id: project.id,
                name: DisplayName::parse(algorithm.display_name())
                    .expect("display names are valid"),
                active: algorithm == DEFAULT_ALGORITHM,
                device: Device::Auto,
                params: algorithm.default_params(),
                created_at: at,
                updated_at: at,
            })
            .collect();
        let bundle = ProjectBundle {
            project: project.clone(),
            labels: vec![],
            frames: vec![],
            prompts: vec![],
            sources: vec![],
            sinks: vec![],
            models,
        };
        self.repo.insert_bundle(&bundle).await?;
        Ok(project)
    }

    pub async fn get_project(&self, id: ProjectId) -> Result<Project, DomainError> {
        self.repo
            .get_project(id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Project, id))
    }

    pub async fn list_projects(&self, page: Page) -> Result<Paged<Project>, DomainError> {
        self.repo.list_projects(page).await
    }

    pub async fn active_project(&self) -> Result<Project, DomainError> {
        self.repo
            .active_project()
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::ActiveProject, "(none is active)"))
    }

    pub async fn update_project(
        &self,
        id: ProjectId,
        update: ProjectUpdate,
    ) -> Result<Project, DomainError> {
        let mut project = self.get_project(id).await?;
        if let Some(name) = update.name
            && name != project.name
        {
            project.name = name;
            project.updated_at = now();
            self.repo.update_project(&project).await?;
        }
        match update.active {
            Some(true) if !project.active => self.repo.set_active_project(Some(id)).await?,
            Some(false) if project.active => self.repo.set_active_project(None).await?,
            _ => {}
        }
        self.get_project(id).await
    }

    pub async fn activate_project(&self, id: ProjectId) -> Result<Project, DomainError> {
        self.update_project(
            id,
            ProjectUpdate {
                active: Some(true),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn deactivate_project(&self, id: ProjectId) -> Result<Project, DomainError> {
        self.update_project(
            id,
            ProjectUpdate {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn delete_project(&self, id: ProjectId) -> Result<(), DomainError> {
        if self.repo.delete_project(id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(Entity::Project, id))
        }
    }

    /// Everything the project owns, for an export archive.
    pub async fn export_project(&self, id: ProjectId) -> Result<ProjectBundle, DomainError> {
        self.repo
            .load_bundle(id)
            .await?
            .ok_or_else(|| DomainError::not_found(Entity::Project, id))
    }

    /// Stores an exported bundle as a new, inactive project: every id is replaced by a fresh one
    /// (so a project can be imported next to its original), references are rewired, and every
    /// value is checked as if it had been created through the API. `name` overrides the bundle's.
    pub async fn import_project(
        &self,
        mut bundle: ProjectBundle,
        name: Option<ProjectName>,
    ) -> Result<Project, DomainError> {
        self.check_bundle(&bundle)?;
        let at = now();
        let project_id = ProjectId::new();
        let project = Project {
            id: project_id,
            name: name.unwrap_or(bundle.project.name.clone()),
            active: false,
            created_at: at,
            updated_at: at,
        };
        let labels: HashMap<LabelId, LabelId> = bundle
            .labels
            .iter()
            .map(|l| (l.id, LabelId::new()))
            .collect();
        let frames: HashMap<FrameId, FrameId> = bundle
            .frames
            .iter()
            .map(|f| (f.frame.id, FrameId::new()))
            .collect();
        for label in &mut bundle.labels {
            label.id = labels[&label.id];
            label.project_id = project_id;
        }
        for StoredFrame { frame, .. } in &mut bundle.frames {
            frame.id = frames[&frame.id];
            frame.project_id = project_id;
        }
        for prompt in &mut bundle.prompts {
            prompt.id = PromptId::new();
            prompt.project_id = project_id;
            rewire(prompt, &labels, &frames)?;
        }
        for source in &mut bundle.sources {
            source.id = SourceId::new();
            source.project_id = project_id;
        }
        for sink in &mut bundle.sinks {
            sink.id = SinkId::new();
            sink.project_id = project_id;
        }
        for model in &mut bundle.models {
            model.id = ModelConfigId::new();
            model.project_id = project_id;
        }
        bundle.project = project.clone();
        self.repo.insert_bundle(&bundle).await?;
        Ok(project)
    }

    /// The checks the API would have made on each entity, for data that arrives in a bundle.
    fn check_bundle(&self, bundle: &ProjectBundle) -> Result<(), DomainError> {
        let mut label_names = std::collections::HashSet::new();
        for (i, label) in bundle.labels.iter().enumerate() {
            if !label_names.insert(label.name.as_str()) {
                return Err(DomainError::conflict(
                    Some(&format!("labels[{i}].name")),
                    format!(
                        "the archive holds two labels named {:?}",
                        label.name.as_str()
                    ),
                ));
            }
        }
        let mut model_names = std::collections::HashSet::new();
        for (i, model) in bundle.models.iter().enumerate() {
            model
                .params
                .check()
                .map_err(|e| e.in_field(&format!("models[{i}].config")))?;
            if !model_names.insert(model.name.as_str()) {
                return Err(DomainError::conflict(
                    Some(&format!("models[{i}].name")),
                    format!(
                        "the archive holds two models named {:?}",
                        model.name.as_str()
                    ),
                ));
            }
        }
        if bundle.sources.iter().filter(|s| s.active).count() > 1 {
            return Err(DomainError::invalid(
                "sources",
                "at most one source may be active",
            ));
        }
        if bundle.models.iter().filter(|m| m.active).count() > 1 {
            return Err(DomainError::invalid(
                "models",
                "at most one model may be active",
            ));
        }
        for (i, source) in bundle.sources.iter().enumerate() {
            let field = format!("sources[{i}].config");
            source.config.check().map_err(|e| e.in_field(&field))?;
            if let Some((name, path)) = source.config.media_path() {
                self.media_roots.confine(&format!("{field}.{name}"), path)?;
            }
        }
        for (i, sink) in bundle.sinks.iter().enumerate() {
            let field = format!("sinks[{i}].config");
            sink.config.check().map_err(|e| e.in_field(&field))?;
            if let Some((name, path)) = sink.config.media_path() {
                self.media_roots.confine(&format!("{field}.{name}"), path)?;
            }
        }
        let mut used_frames = std::collections::HashSet::new();
        for (i, prompt) in bundle.prompts.iter().enumerate() {
            let field = format!("prompts[{i}]");
            prompt
                .content
                .check_counts()
                .map_err(|e| e.in_field(&field))?;
            if let PromptContent::Visual {
                frame_id,
                annotations,
            } = &prompt.content
            {
                let frame = bundle
                    .frames
                    .iter()
                    .find(|f| f.frame.id == *frame_id)
                    .ok_or_else(|| DomainError::not_found(Entity::Frame, frame_id))?;
                if !used_frames.insert(*frame_id) {
                    return Err(DomainError::conflict(
                        Some(&format!("{field}.frame_id")),
                        format!("frame {frame_id} is used by two prompts"),
                    ));
                }
                for (j, a) in annotations.iter().enumerate() {
                    a.shape
                        .check(&format!("{field}.annotations[{j}].shape"), frame.frame.size)?;
                }
            }
        }
        Ok(())
    }
}

fn rewire(
    prompt: &mut Prompt,
    labels: &HashMap<LabelId, LabelId>,
    frames: &HashMap<FrameId, FrameId>,
) -> Result<(), DomainError> {
    let label = |id: &mut LabelId| -> Result<(), DomainError> {
        *id = *labels
            .get(id)
            .ok_or_else(|| DomainError::not_found(Entity::Label, *id))?;
        Ok(())
    };
    match &mut prompt.content {
        PromptContent::Visual {
            frame_id,
            annotations,
        } => {
            *frame_id = *frames
                .get(frame_id)
                .ok_or_else(|| DomainError::not_found(Entity::Frame, *frame_id))?;
            for a in annotations {
                label(&mut a.label_id)?;
            }
        }
        PromptContent::Text { phrases } => {
            for p in phrases {
                label(&mut p.label_id)?;
            }
        }
    }
    Ok(())
}
