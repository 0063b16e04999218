//! A project: the unit a user works in and the unit that runs. At most one project is active.

use crate::entity::Timestamp;
use crate::id::ProjectId;
use crate::value::ProjectName;

#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    pub id: ProjectId,
    pub name: ProjectName,
    /// True for the one active project; derived from the store's single active-project slot.
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
