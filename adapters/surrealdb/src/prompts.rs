//! Prompts: every label and the frame must belong to the prompt's project, a frame serves one
//! prompt at most (a unique index), and a prompt's frame goes when the prompt no longer uses it.

use surrealdb::types::{RecordId, Value};
use visprompt_domain::{DomainError, Page, Paged, ProjectId, Prompt, PromptId};

use crate::SurrealRepository;
use crate::exec::Script;
use crate::record::{PageDoc, PromptDoc, rid, table, window};

/// Checks the labels and the frame of `$prompt`, and bumps their revisions: a concurrent delete of
/// one of them then writes the same record and conflicts with this transaction, whichever commits
/// first, so a prompt never refers to a label or frame that is gone.
macro_rules! check_references {
    () => {
        r#"
LET $wanted = $prompt.labels;
LET $known = UPDATE $wanted SET revision += 1 WHERE project = $prompt.project RETURN VALUE id;
IF array::len($known) != array::len($wanted) {
    THROW 'vp|not_found|label|' + <string> record::id(array::complement($wanted, $known)[0]);
};
IF $prompt.frame != NONE {
    IF (SELECT VALUE project FROM ONLY $prompt.frame) != $prompt.project {
        THROW 'vp|not_found|frame|' + <string> record::id($prompt.frame);
    };
    LET $user = (SELECT VALUE id FROM prompt WHERE frame = $prompt.frame AND id != $prompt.id)[0];
    IF $user != NONE {
        THROW 'vp|frame_in_use|' + <string> record::id($prompt.frame) + '|'
            + <string> record::id($user);
    };
    UPDATE $prompt.frame SET revision += 1 RETURN NONE;
};
"#
    };
}

const INSERT_PROMPT: &str = concat!(
    r#"
IF !record::exists($prompt.project) {
    THROW 'vp|not_found|project|' + <string> record::id($prompt.project);
};
UPDATE $prompt.project SET revision += 1 RETURN NONE;
"#,
    check_references!(),
    r#"
CREATE $prompt.id CONTENT $prompt RETURN NONE;
"#
);

const GET_PROMPT: &str = r#"
SELECT * FROM ONLY $prompt WHERE project = $project;
"#;

const LIST_PROMPTS: &str = r#"
RETURN {
    items: (SELECT * FROM prompt WHERE project = $project
        ORDER BY created_at, id START $start LIMIT $limit),
    total: (SELECT count() FROM prompt WHERE project = $project GROUP ALL)[0].count ?? 0,
};
"#;

const UPDATE_PROMPT: &str = concat!(
    r#"
LET $old = SELECT * FROM ONLY $prompt.id WHERE project = $prompt.project;
IF $old = NONE { THROW 'vp|not_found|prompt|' + <string> record::id($prompt.id); };
"#,
    check_references!(),
    r#"
IF $old.frame != NONE AND $old.frame != $prompt.frame {
    DELETE $old.frame, type::record('frame_image', record::id($old.frame)) RETURN NONE;
};
UPDATE $prompt.id SET frame = $prompt.frame, labels = $prompt.labels, content = $prompt.content,
    updated_at = $prompt.updated_at RETURN NONE;
"#
);

const DELETE_PROMPT: &str = r#"
LET $old = SELECT * FROM ONLY $prompt WHERE project = $project;
IF $old != NONE {
    DELETE $prompt RETURN NONE;
    IF $old.frame != NONE {
        DELETE $old.frame, type::record('frame_image', record::id($old.frame)) RETURN NONE;
    };
};
RETURN $old != NONE;
"#;

fn prompt_rid(id: PromptId) -> RecordId {
    rid(table::PROMPT, id.as_uuid())
}

fn project_rid(id: ProjectId) -> RecordId {
    rid(table::PROJECT, id.as_uuid())
}

fn frame_taken(prompt: &Prompt) -> String {
    match prompt.content.frame_id() {
        Some(frame) => format!("frame {frame} is already used by another prompt"),
        None => "the frame is already used by another prompt".to_owned(),
    }
}

impl SurrealRepository {
    pub(crate) async fn insert_prompt(&self, prompt: &Prompt) -> Result<(), DomainError> {
        let script = Script::new("insert_prompt", INSERT_PROMPT)
            .bind("prompt", PromptDoc::from_domain(prompt))
            .unique("prompt_frame", "frame_id", frame_taken(prompt));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn get_prompt(
        &self,
        project: ProjectId,
        id: PromptId,
    ) -> Result<Option<Prompt>, DomainError> {
        let script = Script::new("get_prompt", GET_PROMPT)
            .bind("prompt", prompt_rid(id))
            .bind("project", project_rid(project));
        let doc: Option<PromptDoc> = self.run(script).await?;
        doc.map(PromptDoc::into_domain).transpose()
    }

    pub(crate) async fn list_prompts(
        &self,
        project: ProjectId,
        page: Page,
    ) -> Result<Paged<Prompt>, DomainError> {
        let (start, limit) = window(page);
        let script = Script::new("list_prompts", LIST_PROMPTS)
            .bind("project", project_rid(project))
            .bind("start", start)
            .bind("limit", limit);
        let doc: PageDoc<PromptDoc> = self.run(script).await?;
        Ok(Paged {
            items: doc
                .items
                .into_iter()
                .map(PromptDoc::into_domain)
                .collect::<Result<_, _>>()?,
            total: doc.total.max(0) as u64,
            page,
        })
    }

    pub(crate) async fn update_prompt(&self, prompt: &Prompt) -> Result<(), DomainError> {
        let script = Script::new("update_prompt", UPDATE_PROMPT)
            .bind("prompt", PromptDoc::from_domain(prompt))
            .unique("prompt_frame", "frame_id", frame_taken(prompt));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn delete_prompt(
        &self,
        project: ProjectId,
        id: PromptId,
    ) -> Result<bool, DomainError> {
        let script = Script::new("delete_prompt", DELETE_PROMPT)
            .bind("prompt", prompt_rid(id))
            .bind("project", project_rid(project));
        self.run(script).await
    }
}
