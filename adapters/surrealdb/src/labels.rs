//! Labels: names unique per project (a unique index), and never deleted while a prompt uses them.

use surrealdb::types::{RecordId, Value};
use visprompt_domain::{DomainError, Label, LabelId, Page, Paged, ProjectId};

use crate::SurrealRepository;
use crate::exec::Script;
use crate::record::{LabelDoc, PageDoc, rid, table, window};

/// Bumping the project's revision makes this insert and a concurrent delete of the project write
/// the same record, so the label cannot outlive its project.
const INSERT_LABEL: &str = r#"
IF !record::exists($label.project) {
    THROW 'vp|not_found|project|' + <string> record::id($label.project);
};
UPDATE $label.project SET revision += 1 RETURN NONE;
CREATE $label.id CONTENT $label RETURN NONE;
"#;

const GET_LABEL: &str = r#"
SELECT * FROM ONLY $label WHERE project = $project;
"#;

const LIST_LABELS: &str = r#"
RETURN {
    items: (SELECT * FROM label WHERE project = $project
        ORDER BY created_at, id START $start LIMIT $limit),
    total: (SELECT count() FROM label WHERE project = $project GROUP ALL)[0].count ?? 0,
};
"#;

const UPDATE_LABEL: &str = r#"
IF (SELECT VALUE project FROM ONLY $label.id) != $label.project {
    THROW 'vp|not_found|label|' + <string> record::id($label.id);
};
UPDATE $label.id SET name = $label.name, color = $label.color, updated_at = $label.updated_at
    RETURN NONE;
"#;

/// A prompt that starts using the label bumps the label's revision, and this deletes the label:
/// the two conflict, so a label is never deleted from under a prompt created at the same moment.
const DELETE_LABEL: &str = r#"
LET $found = (SELECT VALUE project FROM ONLY $label) = $project;
LET $users = IF $found {
    SELECT VALUE id FROM prompt WHERE project = $project AND labels CONTAINS $label
} ELSE { [] };
IF array::len($users) > 0 {
    THROW 'vp|label_in_use|' + <string> record::id($label) + '|' + <string> array::len($users);
};
IF $found { DELETE $label RETURN NONE; };
RETURN $found;
"#;

fn label_rid(id: LabelId) -> RecordId {
    rid(table::LABEL, id.as_uuid())
}

fn project_rid(id: ProjectId) -> RecordId {
    rid(table::PROJECT, id.as_uuid())
}

fn name_taken(label: &Label) -> String {
    format!(
        "a label named \"{}\" already exists in this project",
        label.name
    )
}

impl SurrealRepository {
    pub(crate) async fn insert_label(&self, label: &Label) -> Result<(), DomainError> {
        let script = Script::new("insert_label", INSERT_LABEL)
            .bind("label", LabelDoc::from_domain(label))
            .unique("label_name", "name", name_taken(label));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn get_label(
        &self,
        project: ProjectId,
        id: LabelId,
    ) -> Result<Option<Label>, DomainError> {
        let script = Script::new("get_label", GET_LABEL)
            .bind("label", label_rid(id))
            .bind("project", project_rid(project));
        let doc: Option<LabelDoc> = self.run(script).await?;
        doc.map(LabelDoc::into_domain).transpose()
    }

    pub(crate) async fn list_labels(
        &self,
        project: ProjectId,
        page: Page,
    ) -> Result<Paged<Label>, DomainError> {
        let (start, limit) = window(page);
        let script = Script::new("list_labels", LIST_LABELS)
            .bind("project", project_rid(project))
            .bind("start", start)
            .bind("limit", limit);
        let doc: PageDoc<LabelDoc> = self.run(script).await?;
        Ok(Paged {
            items: doc
                .items
                .into_iter()
                .map(LabelDoc::into_domain)
                .collect::<Result<_, _>>()?,
            total: doc.total.max(0) as u64,
            page,
        })
    }

    pub(crate) async fn update_label(&self, label: &Label) -> Result<(), DomainError> {
        let script = Script::new("update_label", UPDATE_LABEL)
            .bind("label", LabelDoc::from_domain(label))
            .unique("label_name", "name", name_taken(label));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn delete_label(
        &self,
        project: ProjectId,
        id: LabelId,
    ) -> Result<bool, DomainError> {
        let script = Script::new("delete_label", DELETE_LABEL)
            .bind("label", label_rid(id))
            .bind("project", project_rid(project));
        self.run(script).await
    }
}
