//! Projects: bundles written and read whole, the active-project slot, and the cascade that
//! deletes a project with everything it owns in one transaction.

use std::collections::HashMap;

use surrealdb::types::{Bytes, RecordId, SurrealValue, Value};
use uuid::Uuid;
use visprompt_domain::{DomainError, Page, Paged, Project, ProjectBundle, ProjectId, StoredFrame};

use crate::SurrealRepository;
use crate::exec::Script;
use crate::record::{
    FrameDoc, FrameImageDoc, LabelDoc, ModelDoc, ModelRow, PageDoc, ProjectDoc, ProjectRow,
    PromptDoc, SinkDoc, SourceDoc, SourceRow, corrupt, key, rid, table, window,
};

/// Writes the project and its children, checking what the schema cannot: that every prompt's
/// labels and frame belong to this very project. The project is new, so nothing else can refer
/// to it yet and no revision needs bumping.
const INSERT_BUNDLE: &str = r#"
CREATE $project.id CONTENT $project RETURN NONE;
INSERT INTO label $labels RETURN NONE;
INSERT INTO frame $frames RETURN NONE;
INSERT INTO frame_image $images RETURN NONE;
FOR $prompt IN $prompts {
    LET $wanted = $prompt.labels;
    LET $known = SELECT VALUE id FROM $wanted WHERE project = $project.id;
    IF array::len($known) != array::len($wanted) {
        THROW 'vp|not_found|label|' + <string> record::id(array::complement($wanted, $known)[0]);
    };
    IF $prompt.frame != NONE AND (SELECT VALUE project FROM ONLY $prompt.frame) != $project.id {
        THROW 'vp|not_found|frame|' + <string> record::id($prompt.frame);
    };
};
INSERT INTO prompt $prompts RETURN NONE;
INSERT INTO source $sources RETURN NONE;
INSERT INTO sink $sinks RETURN NONE;
INSERT INTO model $models RETURN NONE;
UPDATE $project.id SET active_source = $active_source, active_model = $active_model RETURN NONE;
IF $active { UPSERT active_project:slot SET project = $project.id RETURN NONE; };
"#;

const LOAD_BUNDLE: &str = r#"
LET $active = active_project:slot.project;
LET $slots = SELECT active_source, active_model FROM ONLY $project;
RETURN {
    project: (SELECT *, (id = $active) AS active FROM ONLY $project),
    labels: (SELECT * FROM label WHERE project = $project ORDER BY created_at, id),
    frames: (SELECT * FROM frame WHERE project = $project ORDER BY created_at, id),
    images: (SELECT id, bytes FROM frame_image WHERE project = $project),
    prompts: (SELECT * FROM prompt WHERE project = $project ORDER BY created_at, id),
    sources: (SELECT *, (id = $slots.active_source) AS active FROM source
        WHERE project = $project ORDER BY created_at, id),
    sinks: (SELECT * FROM sink WHERE project = $project ORDER BY created_at, id),
    models: (SELECT *, (id = $slots.active_model) AS active FROM model
        WHERE project = $project ORDER BY created_at, id),
};
"#;

const GET_PROJECT: &str = r#"
SELECT *, (id = active_project:slot.project) AS active FROM ONLY $project;
"#;

const LIST_PROJECTS: &str = r#"
LET $active = active_project:slot.project;
RETURN {
    items: (SELECT *, (id = $active) AS active FROM project
        ORDER BY created_at, id START $start LIMIT $limit),
    total: (SELECT count() FROM project GROUP ALL)[0].count ?? 0,
};
"#;

const ACTIVE_PROJECT: &str = r#"
LET $active = active_project:slot.project;
IF $active = NONE { NONE } ELSE { SELECT *, true AS active FROM ONLY $active };
"#;

const UPDATE_PROJECT: &str = r#"
IF !record::exists($project) { THROW 'vp|not_found|project|' + <string> record::id($project); };
UPDATE $project SET name = $name, updated_at = $updated_at RETURN NONE;
"#;

/// Overwrites the one slot; a concurrent delete of the project also writes the slot, so the two
/// conflict and the retry sees the other's outcome.
const SET_ACTIVE_PROJECT: &str = r#"
IF $project != NONE AND !record::exists($project) {
    THROW 'vp|not_found|project|' + <string> record::id($project);
};
UPSERT active_project:slot SET project = $project RETURN NONE;
"#;

/// Deletes everything the project owns, then the project, and clears the slot if it pointed here.
/// The slot is written even when it points elsewhere, so that an activation of this project
/// running concurrently conflicts with the delete instead of leaving the slot dangling.
const DELETE_PROJECT: &str = r#"
LET $found = record::exists($project);
DELETE prompt WHERE project = $project RETURN NONE;
DELETE label WHERE project = $project RETURN NONE;
DELETE frame WHERE project = $project RETURN NONE;
DELETE frame_image WHERE project = $project RETURN NONE;
DELETE source WHERE project = $project RETURN NONE;
DELETE sink WHERE project = $project RETURN NONE;
DELETE model WHERE project = $project RETURN NONE;
DELETE $project RETURN NONE;
UPSERT active_project:slot SET project = IF project = $project { NONE } ELSE { project } RETURN NONE;
RETURN $found;
"#;

fn project_rid(id: ProjectId) -> RecordId {
    rid(table::PROJECT, id.as_uuid())
}

fn name_taken(name: &str) -> String {
    format!("a project named \"{name}\" already exists")
}

#[derive(Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
struct ImageRow {
    id: RecordId,
    bytes: Bytes,
}

#[derive(Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
struct BundleDoc {
    project: Option<ProjectRow>,
    labels: Vec<LabelDoc>,
    frames: Vec<FrameDoc>,
    images: Vec<ImageRow>,
    prompts: Vec<PromptDoc>,
    sources: Vec<SourceRow>,
    sinks: Vec<SinkDoc>,
    models: Vec<ModelRow>,
}

impl SurrealRepository {
    pub(crate) async fn insert_bundle(&self, bundle: &ProjectBundle) -> Result<(), DomainError> {
        let project = ProjectDoc::from_domain(&bundle.project);
        let first_active = |ids: Vec<RecordId>| ids.into_iter().next();
        let active_source = first_active(
            bundle
                .sources
                .iter()
                .filter(|s| s.active)
                .map(|s| rid(table::SOURCE, s.id.as_uuid()))
                .collect(),
        );
        let active_model = first_active(
            bundle
                .models
                .iter()
                .filter(|m| m.active)
                .map(|m| rid(table::MODEL, m.id.as_uuid()))
                .collect(),
        );
        let script = Script::new("insert_bundle", INSERT_BUNDLE)
            .bind("project", project)
            .bind(
                "labels",
                bundle
                    .labels
                    .iter()
                    .map(LabelDoc::from_domain)
                    .collect::<Vec<_>>(),
            )
            .bind(
                "frames",
                bundle
                    .frames
                    .iter()
                    .map(|f| FrameDoc::from_domain(&f.frame))
                    .collect::<Vec<_>>(),
            )
            .bind(
                "images",
                bundle
                    .frames
                    .iter()
                    .map(FrameImageDoc::from_domain)
                    .collect::<Vec<_>>(),
            )
            .bind(
                "prompts",
                bundle
                    .prompts
                    .iter()
                    .map(PromptDoc::from_domain)
                    .collect::<Vec<_>>(),
            )
            .bind(
                "sources",
                bundle
                    .sources
                    .iter()
                    .map(SourceDoc::from_domain)
                    .collect::<Vec<_>>(),
            )
            .bind(
                "sinks",
                bundle
                    .sinks
                    .iter()
                    .map(SinkDoc::from_domain)
                    .collect::<Vec<_>>(),
            )
            .bind(
                "models",
                bundle
                    .models
                    .iter()
                    .map(ModelDoc::from_domain)
                    .collect::<Vec<_>>(),
            )
            .bind("active_source", active_source)
            .bind("active_model", active_model)
            .bind("active", bundle.project.active)
            .unique(
                "project_name",
                "name",
                name_taken(bundle.project.name.as_str()),
            )
            .unique(
                "label_name",
                "name",
                "label names must be unique within a project",
            )
            .unique(
                "model_name",
                "name",
                "model configuration names must be unique within a project",
            )
            .unique(
                "prompt_frame",
                "frame_id",
                "two prompts of the project use the same frame",
            );
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn load_bundle(
        &self,
        id: ProjectId,
    ) -> Result<Option<ProjectBundle>, DomainError> {
        let script = Script::new("load_bundle", LOAD_BUNDLE).bind("project", project_rid(id));
        let doc: BundleDoc = self.run(script).await?;
        let Some(project) = doc.project else {
            return Ok(None);
        };
        // Images share their frame's key.
        let mut images: HashMap<Uuid, Bytes> = doc
            .images
            .into_iter()
            .map(|image| Ok((key("frame image", &image.id)?, image.bytes)))
            .collect::<Result<_, DomainError>>()?;
        let frames = doc
            .frames
            .into_iter()
            .map(|f| {
                let frame = f.into_domain()?;
                let bytes = images
                    .remove(&frame.id.as_uuid())
                    .ok_or_else(|| corrupt("frame", format!("frame {} has no image", frame.id)))?;
                Ok(StoredFrame {
                    frame,
                    bytes: bytes.into_inner().to_vec(),
                })
            })
            .collect::<Result<_, DomainError>>()?;
        Ok(Some(ProjectBundle {
            project: project.into_domain()?,
            labels: doc
                .labels
                .into_iter()
                .map(LabelDoc::into_domain)
                .collect::<Result<_, _>>()?,
            frames,
            prompts: doc
                .prompts
                .into_iter()
                .map(PromptDoc::into_domain)
                .collect::<Result<_, _>>()?,
            sources: doc
                .sources
                .into_iter()
                .map(SourceRow::into_domain)
                .collect::<Result<_, _>>()?,
            sinks: doc
                .sinks
                .into_iter()
                .map(SinkDoc::into_domain)
                .collect::<Result<_, _>>()?,
            models: doc
                .models
                .into_iter()
                .map(ModelRow::into_domain)
                .collect::<Result<_, _>>()?,
        }))
    }

    pub(crate) async fn get_project(&self, id: ProjectId) -> Result<Option<Project>, DomainError> {
        let script = Script::new("get_project", GET_PROJECT).bind("project", project_rid(id));
        let row: Option<ProjectRow> = self.run(script).await?;
        row.map(ProjectRow::into_domain).transpose()
    }

    pub(crate) async fn list_projects(&self, page: Page) -> Result<Paged<Project>, DomainError> {
        let (start, limit) = window(page);
        let script = Script::new("list_projects", LIST_PROJECTS)
            .bind("start", start)
            .bind("limit", limit);
        let doc: PageDoc<ProjectRow> = self.run(script).await?;
        Ok(Paged {
            items: doc
                .items
                .into_iter()
                .map(ProjectRow::into_domain)
                .collect::<Result<_, _>>()?,
            total: doc.total.max(0) as u64,
            page,
        })
    }

    pub(crate) async fn active_project(&self) -> Result<Option<Project>, DomainError> {
        let row: Option<ProjectRow> = self
            .run(Script::new("active_project", ACTIVE_PROJECT))
            .await?;
        row.map(ProjectRow::into_domain).transpose()
    }

    pub(crate) async fn update_project(&self, project: &Project) -> Result<(), DomainError> {
        let script = Script::new("update_project", UPDATE_PROJECT)
            .bind("project", project_rid(project.id))
            .bind("name", project.name.as_str().to_owned())
            .bind("updated_at", project.updated_at)
            .unique("project_name", "name", name_taken(project.name.as_str()));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn set_active_project(
        &self,
        id: Option<ProjectId>,
    ) -> Result<(), DomainError> {
        let script = Script::new("set_active_project", SET_ACTIVE_PROJECT)
            .bind("project", id.map(project_rid));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn delete_project(&self, id: ProjectId) -> Result<bool, DomainError> {
        let script = Script::new("delete_project", DELETE_PROJECT).bind("project", project_rid(id));
        self.run(script).await
    }
}
