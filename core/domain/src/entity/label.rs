//! A label: a named, coloured category of objects within a project.

use crate::entity::Timestamp;
use crate::id::{LabelId, ProjectId};
use crate::value::{Color, LabelName};

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub id: LabelId,
    pub project_id: ProjectId,
    pub name: LabelName,
    pub color: Color,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
