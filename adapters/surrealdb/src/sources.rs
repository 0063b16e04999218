//! Sources: a project's one active source is the `active_source` slot on the project record, so
//! activating one source can never leave another one active too.

use surrealdb::types::{RecordId, Value};
use visprompt_domain::{DomainError, Page, Paged, ProjectId, Source, SourceId};

use crate::SurrealRepository;
use crate::exec::Script;
use crate::record::{PageDoc, SourceDoc, SourceRow, rid, table, window};

const INSERT_SOURCE: &str = r#"
IF !record::exists($source.project) {
    THROW 'vp|not_found|project|' + <string> record::id($source.project);
};
CREATE $source.id CONTENT $source RETURN NONE;
UPDATE $source.project SET revision += 1,
    active_source = IF $active { $source.id } ELSE { active_source } RETURN NONE;
"#;

const GET_SOURCE: &str = r#"
SELECT *, (id = project.active_source) AS active FROM ONLY $source WHERE project = $project;
"#;

const LIST_SOURCES: &str = r#"
LET $active = SELECT VALUE active_source FROM ONLY $project;
RETURN {
    items: (SELECT *, (id = $active) AS active FROM source WHERE project = $project
        ORDER BY created_at, id START $start LIMIT $limit),
    total: (SELECT count() FROM source WHERE project = $project GROUP ALL)[0].count ?? 0,
};
"#;

/// The project's slot is written whether or not it changes, so that every pair of concurrent
/// source updates in one project conflicts and exactly one active source remains.
const UPDATE_SOURCE: &str = r#"
IF (SELECT VALUE project FROM ONLY $source.id) != $source.project {
    THROW 'vp|not_found|source|' + <string> record::id($source.id);
};
UPDATE $source.id SET name = $source.name, config = $source.config,
    updated_at = $source.updated_at RETURN NONE;
UPDATE $source.project SET active_source = IF $active { $source.id }
    ELSE IF active_source = $source.id { NONE } ELSE { active_source } RETURN NONE;
"#;

const DELETE_SOURCE: &str = r#"
LET $found = (SELECT VALUE project FROM ONLY $source) = $project;
IF $found {
    DELETE $source RETURN NONE;
    UPDATE $project SET active_source = IF active_source = $source { NONE } ELSE { active_source }
        RETURN NONE;
};
RETURN $found;
"#;

fn source_rid(id: SourceId) -> RecordId {
    rid(table::SOURCE, id.as_uuid())
}

fn project_rid(id: ProjectId) -> RecordId {
    rid(table::PROJECT, id.as_uuid())
}

impl SurrealRepository {
    pub(crate) async fn insert_source(&self, source: &Source) -> Result<(), DomainError> {
        let script = Script::new("insert_source", INSERT_SOURCE)
            .bind("source", SourceDoc::from_domain(source))
            .bind("active", source.active);
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn get_source(
        &self,
        project: ProjectId,
        id: SourceId,
    ) -> Result<Option<Source>, DomainError> {
        let script = Script::new("get_source", GET_SOURCE)
            .bind("source", source_rid(id))
            .bind("project", project_rid(project));
        let row: Option<SourceRow> = self.run(script).await?;
        row.map(SourceRow::into_domain).transpose()
    }

    pub(crate) async fn list_sources(
        &self,
        project: ProjectId,
        page: Page,
    ) -> Result<Paged<Source>, DomainError> {
        let (start, limit) = window(page);
        let script = Script::new("list_sources", LIST_SOURCES)
            .bind("project", project_rid(project))
            .bind("start", start)
            .bind("limit", limit);
        let doc: PageDoc<SourceRow> = self.run(script).await?;
        Ok(Paged {
            items: doc
                .items
                .into_iter()
                .map(SourceRow::into_domain)
                .collect::<Result<_, _>>()?,
            total: doc.total.max(0) as u64,
            page,
        })
    }

    pub(crate) async fn update_source(&self, source: &Source) -> Result<(), DomainError> {
        let script = Script::new("update_source", UPDATE_SOURCE)
            .bind("source", SourceDoc::from_domain(source))
            .bind("active", source.active);
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn delete_source(
        &self,
        project: ProjectId,
        id: SourceId,
    ) -> Result<bool, DomainError> {
        let script = Script::new("delete_source", DELETE_SOURCE)
            .bind("source", source_rid(id))
            .bind("project", project_rid(project));
        self.run(script).await
    }
}
