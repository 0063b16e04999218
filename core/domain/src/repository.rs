//! The persistence port. One trait for every aggregate keeps the adapter and its fakes in one place;
//! the methods group by entity. Rules that concurrent requests could break (unique names, one
//! active project / source / model configuration, labels in use, frames used once) MUST be
//! enforced by the implementation inside the store, not by callers checking first.

use async_trait::async_trait;

use crate::entity::{Frame, Label, ModelConfig, Project, Prompt, Sink, Source};
use crate::error::DomainError;
use crate::id::{FrameId, LabelId, ModelConfigId, ProjectId, PromptId, SinkId, SourceId};
use crate::page::{Page, Paged};

/// A frame's description together with its encoded image.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFrame {
    pub frame: Frame,
    pub bytes: Vec<u8>,
}

/// A project with everything it owns: what export writes and import reads, and what creating a
/// project stores in one transaction (with its seeded model configurations).
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectBundle {
    pub project: Project,
    pub labels: Vec<Label>,
    pub frames: Vec<StoredFrame>,
    pub prompts: Vec<Prompt>,
    pub sources: Vec<Source>,
    pub sinks: Vec<Sink>,
    pub models: Vec<ModelConfig>,
}

type Result<T> = std::result::Result<T, DomainError>;

/// Errors, for every method: `DomainError::Storage` when the store itself fails. Methods that
/// address an entity inside a project MUST treat an entity of another project as absent.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Repository: Send + Sync + 'static {
    // --- projects ---

    /// Stores the bundle's project and everything in it atomically. If the project is `active`
    /// it becomes the active project; a source or model configuration marked `active` becomes the
    /// project's active one. MUST return `Conflict` (field `name`) when the project name is taken,
    /// and store nothing at all on any error.
    async fn insert_bundle(&self, bundle: &ProjectBundle) -> Result<()>;
    /// Reads a project and everything it owns in one consistent snapshot.
    async fn load_bundle(&self, id: ProjectId) -> Result<Option<ProjectBundle>>;
    async fn get_project(&self, id: ProjectId) -> Result<Option<Project>>;
    /// Projects in creation order.
    async fn list_projects(&self, page: Page) -> Result<Paged<Project>>;
    async fn active_project(&self) -> Result<Option<Project>>;
    /// Saves name and `updated_at`. MUST return `NotFound` for an unknown project and `Conflict`
    /// (field `name`) for a taken name.
    async fn update_project(&self, project: &Project) -> Result<()>;
    /// Makes `id` the one active project (deactivating any other), or none with `None`. MUST
    /// return `NotFound` for an unknown project.
    async fn set_active_project(&self, id: Option<ProjectId>) -> Result<()>;
    /// Deletes the project and everything it owns atomically; `false` when it did not exist.
    async fn delete_project(&self, id: ProjectId) -> Result<bool>;

    // --- labels ---

    /// MUST return `NotFound` for an unknown project, `Conflict` (field `name`) for a name taken
    /// in the project.
    async fn insert_label(&self, label: &Label) -> Result<()>;
    async fn get_label(&self, project: ProjectId, id: LabelId) -> Result<Option<Label>>;
    async fn list_labels(&self, project: ProjectId, page: Page) -> Result<Paged<Label>>;
    /// MUST return `NotFound` / `Conflict` as `insert_label` does.
    async fn update_label(&self, label: &Label) -> Result<()>;
    /// MUST return `Conflict` while a prompt refers to the label; `false` when it did not exist.
    async fn delete_label(&self, project: ProjectId, id: LabelId) -> Result<bool>;

    // --- frames ---

    /// MUST return `NotFound` for an unknown project.
    async fn insert_frame(&self, frame: &StoredFrame) -> Result<()>;
    async fn get_frame(&self, project: ProjectId, id: FrameId) -> Result<Option<Frame>>;
    async fn get_frame_bytes(&self, project: ProjectId, id: FrameId) -> Result<Option<Vec<u8>>>;
    async fn list_frames(&self, project: ProjectId, page: Page) -> Result<Paged<Frame>>;
    /// MUST return `Conflict` while a prompt uses the frame; `false` when it did not exist.
    async fn delete_frame(&self, project: ProjectId, id: FrameId) -> Result<bool>;

    // --- prompts ---

    /// MUST return `NotFound` when the project, a label or the frame is not in the project, and
    /// `Conflict` (field `frame_id`) when another prompt already uses the frame.
    async fn insert_prompt(&self, prompt: &Prompt) -> Result<()>;
    async fn get_prompt(&self, project: ProjectId, id: PromptId) -> Result<Option<Prompt>>;
    /// Prompts in creation order.
    async fn list_prompts(&self, project: ProjectId, page: Page) -> Result<Paged<Prompt>>;
    /// Same rules as `insert_prompt`. A frame the prompt no longer uses is deleted with it.
    async fn update_prompt(&self, prompt: &Prompt) -> Result<()>;
    /// Deletes the prompt and the frame it used; `false` when it did not exist.
    async fn delete_prompt(&self, project: ProjectId, id: PromptId) -> Result<bool>;

    // --- sources ---

    /// MUST return `NotFound` for an unknown project. An `active` source becomes the project's
    /// one active source.
    async fn insert_source(&self, source: &Source) -> Result<()>;
    async fn get_source(&self, project: ProjectId, id: SourceId) -> Result<Option<Source>>;
    async fn list_sources(&self, project: ProjectId, page: Page) -> Result<Paged<Source>>;
    /// Saves everything including `active` (becoming, or ceasing to be, the active source).
    /// MUST return `NotFound` for an unknown source.
    async fn update_source(&self, source: &Source) -> Result<()>;
    async fn delete_source(&self, project: ProjectId, id: SourceId) -> Result<bool>;

    // --- sinks ---

    async fn insert_sink(&self, sink: &Sink) -> Result<()>;
    async fn get_sink(&self, project: ProjectId, id: SinkId) -> Result<Option<Sink>>;
    async fn list_sinks(&self, project: ProjectId, page: Page) -> Result<Paged<Sink>>;
    async fn update_sink(&self, sink: &Sink) -> Result<()>;
    async fn delete_sink(&self, project: ProjectId, id: SinkId) -> Result<bool>;

    // --- model configurations ---

    /// MUST return `Conflict` (field `name`) for a name taken in the project. An `active`
    /// configuration becomes the project's one active configuration.
    async fn insert_model(&self, model: &ModelConfig) -> Result<()>;
    async fn get_model(&self, project: ProjectId, id: ModelConfigId)
    -> Result<Option<ModelConfig>>;
    async fn list_models(&self, project: ProjectId, page: Page) -> Result<Paged<ModelConfig>>;
    async fn active_model(&self, project: ProjectId) -> Result<Option<ModelConfig>>;
    async fn update_model(&self, model: &ModelConfig) -> Result<()>;
    async fn delete_model(&self, project: ProjectId, id: ModelConfigId) -> Result<bool>;
}
