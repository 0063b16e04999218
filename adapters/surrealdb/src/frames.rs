//! Reference frames: the description in `frame`, the encoded image in `frame_image` under the same
//! key, written and deleted together. A frame used by a prompt cannot be deleted on its own.

use surrealdb::types::{Bytes, RecordId, Value};
use visprompt_domain::{DomainError, Frame, FrameId, Page, Paged, ProjectId, StoredFrame};

use crate::SurrealRepository;
use crate::exec::Script;
use crate::record::{FrameDoc, FrameImageDoc, PageDoc, rid, table, window};

const INSERT_FRAME: &str = r#"
IF !record::exists($frame.project) {
    THROW 'vp|not_found|project|' + <string> record::id($frame.project);
};
UPDATE $frame.project SET revision += 1 RETURN NONE;
CREATE $frame.id CONTENT $frame RETURN NONE;
CREATE $image.id CONTENT $image RETURN NONE;
"#;

const GET_FRAME: &str = r#"
SELECT * FROM ONLY $frame WHERE project = $project;
"#;

const GET_FRAME_BYTES: &str = r#"
SELECT VALUE bytes FROM ONLY $image WHERE project = $project;
"#;

const LIST_FRAMES: &str = r#"
RETURN {
    items: (SELECT * FROM frame WHERE project = $project
        ORDER BY created_at, id START $start LIMIT $limit),
    total: (SELECT count() FROM frame WHERE project = $project GROUP ALL)[0].count ?? 0,
};
"#;

/// A prompt that starts using the frame bumps its revision; deleting writes the same record, so
/// the two conflict instead of leaving a prompt without its frame.
const DELETE_FRAME: &str = r#"
LET $found = (SELECT VALUE project FROM ONLY $frame) = $project;
LET $user = IF $found { (SELECT VALUE id FROM prompt WHERE frame = $frame)[0] } ELSE { NONE };
IF $user != NONE {
    THROW 'vp|frame_in_use|' + <string> record::id($frame) + '|' + <string> record::id($user);
};
IF $found { DELETE $frame, $image RETURN NONE; };
RETURN $found;
"#;

fn project_rid(id: ProjectId) -> RecordId {
    rid(table::PROJECT, id.as_uuid())
}

impl SurrealRepository {
    pub(crate) async fn insert_frame(&self, frame: &StoredFrame) -> Result<(), DomainError> {
        let script = Script::new("insert_frame", INSERT_FRAME)
            .bind("frame", FrameDoc::from_domain(&frame.frame))
            .bind("image", FrameImageDoc::from_domain(frame));
        self.run::<Value>(script).await.map(drop)
    }

    pub(crate) async fn get_frame(
        &self,
        project: ProjectId,
        id: FrameId,
    ) -> Result<Option<Frame>, DomainError> {
        let script = Script::new("get_frame", GET_FRAME)
            .bind("frame", rid(table::FRAME, id.as_uuid()))
            .bind("project", project_rid(project));
        let doc: Option<FrameDoc> = self.run(script).await?;
        doc.map(FrameDoc::into_domain).transpose()
    }

    pub(crate) async fn get_frame_bytes(
        &self,
        project: ProjectId,
        id: FrameId,
    ) -> Result<Option<Vec<u8>>, DomainError> {
        let script = Script::new("get_frame_bytes", GET_FRAME_BYTES)
            .bind("image", rid(table::FRAME_IMAGE, id.as_uuid()))
            .bind("project", project_rid(project));
        let bytes: Option<Bytes> = self.run(script).await?;
        Ok(bytes.map(|b| b.into_inner().to_vec()))
    }

    pub(crate) async fn list_frames(
        &self,
        project: ProjectId,
        page: Page,
    ) -> Result<Paged<Frame>, DomainError> {
        let (start, limit) = window(page);
        let script = Script::new("list_frames", LIST_FRAMES)
            .bind("project", project_rid(project))
            .bind("start", start)
            .bind("limit", limit);
        let doc: PageDoc<FrameDoc> = self.run(script).await?;
        Ok(Paged {
            items: doc
                .items
                .into_iter()
                .map(FrameDoc::into_domain)
                .collect::<Result<_, _>>()?,
            total: doc.total.max(0) as u64,
            page,
        })
    }

    pub(crate) async fn delete_frame(
        &self,
        project: ProjectId,
        id: FrameId,
    ) -> Result<bool, DomainError> {
        let script = Script::new("delete_frame", DELETE_FRAME)
            .bind("frame", rid(table::FRAME, id.as_uuid()))
            .bind("image", rid(table::FRAME_IMAGE, id.as_uuid()))
            .bind("project", project_rid(project));
        self.run(script).await
    }
}
