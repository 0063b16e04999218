//! Sinks: independent consumers of a project's predictions. Any number may be active, so each
//! carries its own `active` flag and there is no slot to keep.

use surrealdb::types::{RecordId, Value};
use visprompt_domain::{DomainError, Page, Paged, ProjectId, Sink, SinkId};

use crate::SurrealRepository;
use crate::exec::Script;
use crate::record::{PageDoc, SinkDoc, rid, table, window};

const INSERT_SINK: &str = r#"
IF !record::exists($sink.project) {
    THROW 'vp|not_found|project|' + <string> record::id($sink.project);
};
UPDATE $sink.project SET revision += 1 RETURN NONE;
CREATE $sink.id CONTENT $sink RETURN NONE;
"#;

const GET_SINK: &str = r#"
SELECT * FROM ONLY $sink WHERE project = $project;
"#;

const LIST_SINKS: &str = r#"
RETURN {
    items: (SELECT * FROM sink WHERE project = $project
        ORDER BY created_at, id START $start LIMIT $limit),
    total: (SELECT count() FROM sink WHERE project = $project GROUP ALL)[0].count ?? 0,
};
"#;

const UPDATE_SINK: &str = r#"
IF (SELECT VALUE project FROM ONLY $sink.id) != $sink.project {
    THROW 'vp|not_found|sink|' + <string> record::id($sink.id);
};
UPDATE $sink.id SET name = $sink.name, active = $sink.active, config = $sink.config,
    updated_at = $sink.updated_at RETURN NONE;
"#;

const DELETE_SINK: &str = r#"
LET $found = (SELECT VALUE project FROM ONLY $sink) = $project;
IF $found { DELETE $sink RETURN NONE; };
RETURN $found;
"#;

fn sink_rid(id: SinkId) -> RecordId {
    rid(table::SINK, id.as_uuid())
}

fn project_rid(id: ProjectId) -> RecordId {
    rid(table::PROJECT, id.as_uuid())
}

impl SurrealRepository {
    pub(crate) async fn insert_sink(&self, sink: &Sink) -> Result<(), DomainError> {
        let script =
            Script::new("insert_sink", INSERT_SINK).bind("sink", SinkDoc::from_domain(sink));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn get_sink(
        &self,
        project: ProjectId,
        id: SinkId,
    ) -> Result<Option<Sink>, DomainError> {
        let script = Script::new("get_sink", GET_SINK)
            .bind("sink", sink_rid(id))
            .bind("project", project_rid(project));
        let doc: Option<SinkDoc> = self.run(script).await?;
        doc.map(SinkDoc::into_domain).transpose()
    }

    pub(crate) async fn list_sinks(
        &self,
        project: ProjectId,
        page: Page,
    ) -> Result<Paged<Sink>, DomainError> {
        let (start, limit) = window(page);
        let script = Script::new("list_sinks", LIST_SINKS)
            .bind("project", project_rid(project))
            .bind("start", start)
            .bind("limit", limit);
        let doc: PageDoc<SinkDoc> = self.run(script).await?;
        Ok(Paged {
            items: doc
                .items
                .into_iter()
                .map(SinkDoc::into_domain)
                .collect::<Result<_, _>>()?,
            total: doc.total.max(0) as u64,
            page,
        })
    }

    pub(crate) async fn update_sink(&self, sink: &Sink) -> Result<(), DomainError> {
        let script =
            Script::new("update_sink", UPDATE_SINK).bind("sink", SinkDoc::from_domain(sink));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn delete_sink(
        &self,
        project: ProjectId,
        id: SinkId,
    ) -> Result<bool, DomainError> {
        let script = Script::new("delete_sink", DELETE_SINK)
            .bind("sink", sink_rid(id))
            .bind("project", project_rid(project));
        self.run(script).await
    }
}
