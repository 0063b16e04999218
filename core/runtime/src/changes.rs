//! Change notification without touching the domain: [`ObservedRepository`] wraps the real
//! repository and, after every write that succeeded, sends a [`Change`]. The pipeline manager
//! reconciles on them and the event stream forwards them to clients. Writes made by another server
//! sharing a remote database are not seen here; the manager's periodic resync covers those.
//!
//! When it is the only way into the store (the embedded database), it can also keep a
//! [`ReadCache`] of project reads, emptied by every write.

use std::sync::Arc;

use async_trait::async_trait;

use crate::read_cache::ReadCache;
use tokio::sync::broadcast;
use visprompt_domain::{
    DomainError, Entity, Frame, FrameId, Label, LabelId, ModelConfig, ModelConfigId, Page, Paged,
    Project, ProjectBundle, ProjectId, Prompt, PromptId, Repository, Sink, SinkId, Source,
    SourceId, StoredFrame,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl ChangeKind {
    pub const fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// Something stored changed. `entity` is `ActiveProject` when the active project was switched
/// (then `project_id` is the new one, or `None` for none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub entity: Entity,
    pub kind: ChangeKind,
    pub project_id: Option<ProjectId>,
    pub id: Option<String>,
}

type Result<T> = std::result::Result<T, DomainError>;

pub struct ObservedRepository {
    inner: Arc<dyn Repository>,
    /// Lossy by design: a receiver that lags only misses notifications, and every receiver
    /// re-reads the store rather than trusting their content.
    changes: broadcast::Sender<Change>,
    cache: Option<ReadCache>,
}

impl ObservedRepository {
    pub fn new(inner: Arc<dyn Repository>) -> Self {
        Self {
            inner,
            changes: broadcast::Sender::new(256),
            cache: None,
        }
    }

    /// Caches project reads. Only for a store that no one else writes to: writes made around
    /// this wrapper would leave the cache stale.
    pub fn with_read_cache(mut self) -> Self {
        self.cache = Some(ReadCache::default());
        self
    }

    fn write_guard(&self) -> Option<crate::read_cache::WriteGuard<'_>> {
        self.cache.as_ref().map(ReadCache::write)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn sender(&self) -> broadcast::Sender<Change> {
        self.changes.clone()
    }

    fn send(&self, change: Change) {
        // No receiver is not an error: nothing listens in some tools and tests.
        let _ = self.changes.send(change);
    }

    /// Announces a create or update once it succeeded.
    fn written(
        &self,
        result: Result<()>,
        entity: Entity,
        kind: ChangeKind,
        project: ProjectId,
        id: impl ToString,
    ) -> Result<()> {
        if result.is_ok() {
            self.send(change(entity, kind, project, id));
        }
        result
    }

    /// Announces a delete that removed something.
    fn deleted(
        &self,
        result: Result<bool>,
        entity: Entity,
        project: ProjectId,
        id: impl ToString,
    ) -> Result<bool> {
        if let Ok(true) = result {
            self.send(change(entity, ChangeKind::Deleted, project, id));
        }
        result
    }
}

fn change(entity: Entity, kind: ChangeKind, project: ProjectId, id: impl ToString) -> Change {
    Change {
        entity,
        kind,
        project_id: Some(project),
        id: Some(id.to_string()),
    }
}

#[async_trait]
impl Repository for ObservedRepository {
    async fn insert_bundle(&self, bundle: &ProjectBundle) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.insert_bundle(bundle).await;
        if result.is_ok() {
            let id = bundle.project.id;
            self.send(change(Entity::Project, ChangeKind::Created, id, id));
            if bundle.project.active {
                self.send(Change {
                    entity: Entity::ActiveProject,
                    kind: ChangeKind::Updated,
                    project_id: Some(id),
                    id: None,
                });
            }
        }
        result
    }
    async fn load_bundle(&self, id: ProjectId) -> Result<Option<ProjectBundle>> {
        self.inner.load_bundle(id).await
    }
    async fn get_project(&self, id: ProjectId) -> Result<Option<Project>> {
        let Some(cache) = &self.cache else {
            return self.inner.get_project(id).await;
        };
        if let Some(hit) = cache.project(id) {
            return Ok(hit);
        }
        let ticket = cache.ticket();
        let project = self.inner.get_project(id).await?;
        cache.store_project(ticket, id, &project);
        Ok(project)
    }
    async fn list_projects(&self, page: Page) -> Result<Paged<Project>> {
        let Some(cache) = &self.cache else {
            return self.inner.list_projects(page).await;
        };
        if let Some(hit) = cache.list(page) {
            return Ok(hit);
        }
        let ticket = cache.ticket();
        let list = self.inner.list_projects(page).await?;
        cache.store_list(ticket, page, &list);
        Ok(list)
    }
    async fn active_project(&self) -> Result<Option<Project>> {
        let Some(cache) = &self.cache else {
            return self.inner.active_project().await;
        };
        if let Some(hit) = cache.active() {
            return Ok(hit);
        }
        let ticket = cache.ticket();
        let project = self.inner.active_project().await?;
        cache.store_active(ticket, &project);
        Ok(project)
    }
    async fn update_project(&self, project: &Project) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.update_project(project).await;
        self.written(
            result,
            Entity::Project,
            ChangeKind::Updated,
            project.id,
            project.id,
        )
    }
    async fn set_active_project(&self, id: Option<ProjectId>) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.set_active_project(id).await;
        if result.is_ok() {
            self.send(Change {
                entity: Entity::ActiveProject,
                kind: ChangeKind::Updated,
                project_id: id,
                id: None,
            });
        }
        result
    }
    async fn delete_project(&self, id: ProjectId) -> Result<bool> {
        let _write = self.write_guard();
        let result = self.inner.delete_project(id).await;
        self.deleted(result, Entity::Project, id, id)
    }

    async fn insert_label(&self, label: &Label) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.insert_label(label).await;
        self.written(
            result,
            Entity::Label,
            ChangeKind::Created,
            label.project_id,
            label.id,
        )
    }
    async fn get_label(&self, project: ProjectId, id: LabelId) -> Result<Option<Label>> {
        self.inner.get_label(project, id).await
    }
    async fn list_labels(&self, project: ProjectId, page: Page) -> Result<Paged<Label>> {
        self.inner.list_labels(project, page).await
    }
    async fn update_label(&self, label: &Label) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.update_label(label).await;
        self.written(
            result,
            Entity::Label,
            ChangeKind::Updated,
            label.project_id,
            label.id,
        )
    }
    async fn delete_label(&self, project: ProjectId, id: LabelId) -> Result<bool> {
        let _write = self.write_guard();
        let result = self.inner.delete_label(project, id).await;
        self.deleted(result, Entity::Label, project, id)
    }

    async fn insert_frame(&self, frame: &StoredFrame) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.insert_frame(frame).await;
        let f = &frame.frame;
        self.written(
            result,
            Entity::Frame,
            ChangeKind::Created,
            f.project_id,
            f.id,
        )
    }
    async fn get_frame(&self, project: ProjectId, id: FrameId) -> Result<Option<Frame>> {
        self.inner.get_frame(project, id).await
    }
    async fn get_frame_bytes(&self, project: ProjectId, id: FrameId) -> Result<Option<Vec<u8>>> {
        self.inner.get_frame_bytes(project, id).await
    }
    async fn list_frames(&self, project: ProjectId, page: Page) -> Result<Paged<Frame>> {
        self.inner.list_frames(project, page).await
    }
    async fn delete_frame(&self, project: ProjectId, id: FrameId) -> Result<bool> {
        let _write = self.write_guard();
        let result = self.inner.delete_frame(project, id).await;
        self.deleted(result, Entity::Frame, project, id)
    }

    async fn insert_prompt(&self, prompt: &Prompt) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.insert_prompt(prompt).await;
        self.written(
            result,
            Entity::Prompt,
            ChangeKind::Created,
            prompt.project_id,
            prompt.id,
        )
    }
    async fn get_prompt(&self, project: ProjectId, id: PromptId) -> Result<Option<Prompt>> {
        self.inner.get_prompt(project, id).await
    }
    async fn list_prompts(&self, project: ProjectId, page: Page) -> Result<Paged<Prompt>> {
        self.inner.list_prompts(project, page).await
    }
    async fn update_prompt(&self, prompt: &Prompt) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.update_prompt(prompt).await;
        self.written(
            result,
            Entity::Prompt,
            ChangeKind::Updated,
            prompt.project_id,
            prompt.id,
        )
    }
    async fn delete_prompt(&self, project: ProjectId, id: PromptId) -> Result<bool> {
        let _write = self.write_guard();
        let result = self.inner.delete_prompt(project, id).await;
        self.deleted(result, Entity::Prompt, project, id)
    }

    async fn insert_source(&self, source: &Source) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.insert_source(source).await;
        self.written(
            result,
            Entity::Source,
            ChangeKind::Created,
            source.project_id,
            source.id,
        )
    }
    async fn get_source(&self, project: ProjectId, id: SourceId) -> Result<Option<Source>> {
        self.inner.get_source(project, id).await
    }
    async fn list_sources(&self, project: ProjectId, page: Page) -> Result<Paged<Source>> {
        self.inner.list_sources(project, page).await
    }
    async fn update_source(&self, source: &Source) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.update_source(source).await;
        self.written(
            result,
            Entity::Source,
            ChangeKind::Updated,
            source.project_id,
            source.id,
        )
    }
    async fn delete_source(&self, project: ProjectId, id: SourceId) -> Result<bool> {
        let _write = self.write_guard();
        let result = self.inner.delete_source(project, id).await;
        self.deleted(result, Entity::Source, project, id)
    }

    async fn insert_sink(&self, sink: &Sink) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.insert_sink(sink).await;
        self.written(
            result,
            Entity::Sink,
            ChangeKind::Created,
            sink.project_id,
            sink.id,
        )
    }
    async fn get_sink(&self, project: ProjectId, id: SinkId) -> Result<Option<Sink>> {
        self.inner.get_sink(project, id).await
    }
    async fn list_sinks(&self, project: ProjectId, page: Page) -> Result<Paged<Sink>> {
        self.inner.list_sinks(project, page).await
    }
    async fn update_sink(&self, sink: &Sink) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.update_sink(sink).await;
        self.written(
            result,
            Entity::Sink,
            ChangeKind::Updated,
            sink.project_id,
            sink.id,
        )
    }
    async fn delete_sink(&self, project: ProjectId, id: SinkId) -> Result<bool> {
        let _write = self.write_guard();
        let result = self.inner.delete_sink(project, id).await;
        self.deleted(result, Entity::Sink, project, id)
    }

    async fn insert_model(&self, model: &ModelConfig) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.insert_model(model).await;
        self.written(
            result,
            Entity::ModelConfig,
            ChangeKind::Created,
            model.project_id,
            model.id,
        )
    }
    async fn get_model(
        &self,
        project: ProjectId,
        id: ModelConfigId,
    ) -> Result<Option<ModelConfig>> {
        self.inner.get_model(project, id).await
    }
    async fn list_models(&self, project: ProjectId, page: Page) -> Result<Paged<ModelConfig>> {
        self.inner.list_models(project, page).await
    }
    async fn active_model(&self, project: ProjectId) -> Result<Option<ModelConfig>> {
        self.inner.active_model(project).await
    }
    async fn update_model(&self, model: &ModelConfig) -> Result<()> {
        let _write = self.write_guard();
        let result = self.inner.update_model(model).await;
        self.written(
            result,
            Entity::ModelConfig,
            ChangeKind::Updated,
            model.project_id,
            model.id,
        )
    }
    async fn delete_model(&self, project: ProjectId, id: ModelConfigId) -> Result<bool> {
        let _write = self.write_guard();
        let result = self.inner.delete_model(project, id).await;
        self.deleted(result, Entity::ModelConfig, project, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visprompt_domain::repository::MockRepository;

    fn observed(repo: MockRepository) -> (ObservedRepository, broadcast::Receiver<Change>) {
        let observed = ObservedRepository::new(Arc::new(repo));
        let rx = observed.subscribe();
        (observed, rx)
    }

    #[tokio::test]
    async fn a_successful_write_is_announced_with_its_entity_and_project() {
        let mut repo = MockRepository::new();
        repo.expect_delete_sink().returning(|_, _| Ok(true));
        let (observed, mut rx) = observed(repo);
        let (project, sink) = (ProjectId::new(), SinkId::new());
        assert!(observed.delete_sink(project, sink).await.unwrap());
        let change = rx.try_recv().unwrap();
        assert_eq!(
            change,
            Change {
                entity: Entity::Sink,
                kind: ChangeKind::Deleted,
                project_id: Some(project),
                id: Some(sink.to_string()),
            }
        );
    }

    #[tokio::test]
    async fn failed_writes_and_deletes_of_nothing_are_not_announced() {
        let mut repo = MockRepository::new();
        repo.expect_delete_label().returning(|_, _| Ok(false));
        repo.expect_set_active_project()
            .returning(|_| Err(DomainError::conflict(None, "no")));
        let (observed, mut rx) = observed(repo);
        assert!(
            !observed
                .delete_label(ProjectId::new(), LabelId::new())
                .await
                .unwrap()
        );
        assert!(observed.set_active_project(None).await.is_err());
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn reads_pass_through_without_announcements() {
        let mut repo = MockRepository::new();
        repo.expect_active_project().times(1).returning(|| Ok(None));
        let (observed, mut rx) = observed(repo);
        assert_eq!(observed.active_project().await.unwrap(), None);
        assert!(rx.try_recv().is_err());
    }
}
