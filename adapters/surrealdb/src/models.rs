//! Model configurations: names unique per project (a unique index), and one active configuration
//! per project held in the `active_model` slot of the project record.

use surrealdb::types::{RecordId, Value};
use visprompt_domain::{DomainError, ModelConfig, ModelConfigId, Page, Paged, ProjectId};

use crate::SurrealRepository;
use crate::exec::Script;
use crate::record::{ModelDoc, ModelRow, PageDoc, rid, table, window};

const INSERT_MODEL: &str = r#"
IF !record::exists($model.project) {
    THROW 'vp|not_found|project|' + <string> record::id($model.project);
};
CREATE $model.id CONTENT $model RETURN NONE;
UPDATE $model.project SET revision += 1,
    active_model = IF $active { $model.id } ELSE { active_model } RETURN NONE;
"#;

const GET_MODEL: &str = r#"
SELECT *, (id = project.active_model) AS active FROM ONLY $model WHERE project = $project;
"#;

const LIST_MODELS: &str = r#"
LET $active = SELECT VALUE active_model FROM ONLY $project;
RETURN {
    items: (SELECT *, (id = $active) AS active FROM model WHERE project = $project
        ORDER BY created_at, id START $start LIMIT $limit),
    total: (SELECT count() FROM model WHERE project = $project GROUP ALL)[0].count ?? 0,
};
"#;

const ACTIVE_MODEL: &str = r#"
LET $active = SELECT VALUE active_model FROM ONLY $project;
IF $active = NONE { NONE } ELSE { SELECT *, true AS active FROM ONLY $active };
"#;

/// Like sources: the project's slot is always written, so concurrent updates conflict.
const UPDATE_MODEL: &str = r#"
IF (SELECT VALUE project FROM ONLY $model.id) != $model.project {
    THROW 'vp|not_found|model|' + <string> record::id($model.id);
};
UPDATE $model.id SET name = $model.name, device = $model.device, params = $model.params,
    updated_at = $model.updated_at RETURN NONE;
UPDATE $model.project SET active_model = IF $active { $model.id }
    ELSE IF active_model = $model.id { NONE } ELSE { active_model } RETURN NONE;
"#;

const DELETE_MODEL: &str = r#"
LET $found = (SELECT VALUE project FROM ONLY $model) = $project;
IF $found {
    DELETE $model RETURN NONE;
    UPDATE $project SET active_model = IF active_model = $model { NONE } ELSE { active_model }
        RETURN NONE;
};
RETURN $found;
"#;

fn model_rid(id: ModelConfigId) -> RecordId {
    rid(table::MODEL, id.as_uuid())
}

fn project_rid(id: ProjectId) -> RecordId {
    rid(table::PROJECT, id.as_uuid())
}

fn name_taken(model: &ModelConfig) -> String {
    format!(
        "a model configuration named \"{}\" already exists in this project",
        model.name
    )
}

impl SurrealRepository {
    pub(crate) async fn insert_model(&self, model: &ModelConfig) -> Result<(), DomainError> {
        let script = Script::new("insert_model", INSERT_MODEL)
            .bind("model", ModelDoc::from_domain(model))
            .bind("active", model.active)
            .unique("model_name", "name", name_taken(model));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn get_model(
        &self,
        project: ProjectId,
        id: ModelConfigId,
    ) -> Result<Option<ModelConfig>, DomainError> {
        let script = Script::new("get_model", GET_MODEL)
            .bind("model", model_rid(id))
            .bind("project", project_rid(project));
        let row: Option<ModelRow> = self.run(script).await?;
        row.map(ModelRow::into_domain).transpose()
    }

    pub(crate) async fn list_models(
        &self,
        project: ProjectId,
        page: Page,
    ) -> Result<Paged<ModelConfig>, DomainError> {
        let (start, limit) = window(page);
        let script = Script::new("list_models", LIST_MODELS)
            .bind("project", project_rid(project))
            .bind("start", start)
            .bind("limit", limit);
        let doc: PageDoc<ModelRow> = self.run(script).await?;
        Ok(Paged {
            items: doc
                .items
                .into_iter()
                .map(ModelRow::into_domain)
                .collect::<Result<_, _>>()?,
            total: doc.total.max(0) as u64,
            page,
        })
    }

    pub(crate) async fn active_model(
        &self,
        project: ProjectId,
    ) -> Result<Option<ModelConfig>, DomainError> {
        let script =
            Script::new("active_model", ACTIVE_MODEL).bind("project", project_rid(project));
        let row: Option<ModelRow> = self.run(script).await?;
        row.map(ModelRow::into_domain).transpose()
    }

    pub(crate) async fn update_model(&self, model: &ModelConfig) -> Result<(), DomainError> {
        let script = Script::new("update_model", UPDATE_MODEL)
            .bind("model", ModelDoc::from_domain(model))
            .bind("active", model.active)
            .unique("model_name", "name", name_taken(model));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn delete_model(
        &self,
        project: ProjectId,
        id: ModelConfigId,
    ) -> Result<bool, DomainError> {
        let script = Script::new("delete_model", DELETE_MODEL)
            .bind("model", model_rid(id))
            .bind("project", project_rid(project));
        self.run(script).await
    }
}
