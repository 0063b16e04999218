//! The [`Repository`] port, implemented by forwarding to the per-aggregate modules; the SurrealQL
//! and its reasoning live there, next to the records it touches.

use async_trait::async_trait;
use visprompt_domain::{
    DomainError, Frame, FrameId, Label, LabelId, ModelConfig, ModelConfigId, Page, Paged, Project,
    ProjectBundle, ProjectId, Prompt, PromptId, Repository, Sink, SinkId, Source, SourceId,
    StoredFrame,
};

use crate::SurrealRepository as Store;

type Result<T> = std::result::Result<T, DomainError>;

#[async_trait]
impl Repository for Store {
    async fn insert_bundle(&self, bundle: &ProjectBundle) -> Result<()> {
        Store::insert_bundle(self, bundle).await
    }
    async fn load_bundle(&self, id: ProjectId) -> Result<Option<ProjectBundle>> {
        Store::load_bundle(self, id).await
    }
    async fn get_project(&self, id: ProjectId) -> Result<Option<Project>> {
        Store::get_project(self, id).await
    }
    async fn list_projects(&self, page: Page) -> Result<Paged<Project>> {
        Store::list_projects(self, page).await
    }
    async fn active_project(&self) -> Result<Option<Project>> {
        Store::active_project(self).await
    }
    async fn update_project(&self, project: &Project) -> Result<()> {
        Store::update_project(self, project).await
    }
    async fn set_active_project(&self, id: Option<ProjectId>) -> Result<()> {
        Store::set_active_project(self, id).await
    }
    async fn delete_project(&self, id: ProjectId) -> Result<bool> {
        Store::delete_project(self, id).await
    }

    async fn insert_label(&self, label: &Label) -> Result<()> {
        Store::insert_label(self, label).await
    }
    async fn get_label(&self, project: ProjectId, id: LabelId) -> Result<Option<Label>> {
        Store::get_label(self, project, id).await
    }
    async fn list_labels(&self, project: ProjectId, page: Page) -> Result<Paged<Label>> {
        Store::list_labels(self, project, page).await
    }
    async fn update_label(&self, label: &Label) -> Result<()> {
        Store::update_label(self, label).await
    }
    async fn delete_label(&self, project: ProjectId, id: LabelId) -> Result<bool> {
        Store::delete_label(self, project, id).await
    }

    async fn insert_frame(&self, frame: &StoredFrame) -> Result<()> {
        Store::insert_frame(self, frame).await
    }
    async fn get_frame(&self, project: ProjectId, id: FrameId) -> Result<Option<Frame>> {
        Store::get_frame(self, project, id).await
    }
    async fn get_frame_bytes(&self, project: ProjectId, id: FrameId) -> Result<Option<Vec<u8>>> {
        Store::get_frame_bytes(self, project, id).await
    }
    async fn list_frames(&self, project: ProjectId, page: Page) -> Result<Paged<Frame>> {
        Store::list_frames(self, project, page).await
    }
    async fn delete_frame(&self, project: ProjectId, id: FrameId) -> Result<bool> {
        Store::delete_frame(self, project, id).await
    }

    async fn insert_prompt(&self, prompt: &Prompt) -> Result<()> {
        Store::insert_prompt(self, prompt).await
    }
    async fn get_prompt(&self, project: ProjectId, id: PromptId) -> Result<Option<Prompt>> {
        Store::get_prompt(self, project, id).await
    }
    async fn list_prompts(&self, project: ProjectId, page: Page) -> Result<Paged<Prompt>> {
        Store::list_prompts(self, project, page).await
    }
    async fn update_prompt(&self, prompt: &Prompt) -> Result<()> {
        Store::update_prompt(self, prompt).await
    }
    async fn delete_prompt(&self, project: ProjectId, id: PromptId) -> Result<bool> {
        Store::delete_prompt(self, project, id).await
    }

    async fn insert_source(&self, source: &Source) -> Result<()> {
        Store::insert_source(self, source).await
    }
    async fn get_source(&self, project: ProjectId, id: SourceId) -> Result<Option<Source>> {
        Store::get_source(self, project, id).await
    }
    async fn list_sources(&self, project: ProjectId, page: Page) -> Result<Paged<Source>> {
        Store::list_sources(self, project, page).await
    }
    async fn update_source(&self, source: &Source) -> Result<()> {
        Store::update_source(self, source).await
    }
    async fn delete_source(&self, project: ProjectId, id: SourceId) -> Result<bool> {
        Store::delete_source(self, project, id).await
    }

    async fn insert_sink(&self, sink: &Sink) -> Result<()> {
        Store::insert_sink(self, sink).await
    }
    async fn get_sink(&self, project: ProjectId, id: SinkId) -> Result<Option<Sink>> {
        Store::get_sink(self, project, id).await
    }
    async fn list_sinks(&self, project: ProjectId, page: Page) -> Result<Paged<Sink>> {
        Store::list_sinks(self, project, page).await
    }
    async fn update_sink(&self, sink: &Sink) -> Result<()> {
        Store::update_sink(self, sink).await
    }
    async fn delete_sink(&self, project: ProjectId, id: SinkId) -> Result<bool> {
        Store::delete_sink(self, project, id).await
    }

    async fn insert_model(&self, model: &ModelConfig) -> Result<()> {
        Store::insert_model(self, model).await
    }
    async fn get_model(
        &self,
        project: ProjectId,
        id: ModelConfigId,
    ) -> Result<Option<ModelConfig>> {
        Store::get_model(self, project, id).await
    }
    async fn list_models(&self, project: ProjectId, page: Page) -> Result<Paged<ModelConfig>> {
        Store::list_models(self, project, page).await
    }
    async fn active_model(&self, project: ProjectId) -> Result<Option<ModelConfig>> {
        Store::active_model(self, project).await
    }
    async fn update_model(&self, model: &ModelConfig) -> Result<()> {
        Store::update_model(self, model).await
    }
    async fn delete_model(&self, project: ProjectId, id: ModelConfigId) -> Result<bool> {
        Store::delete_model(self, project, id).await
    }
}
