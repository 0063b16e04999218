//! The domain's one error type. Its variants are the cases callers branch on: the API layer maps
//! each to one HTTP status in one place, so a new variant is a compile error there, not a 500.

use std::error::Error as StdError;
use std::fmt;

/// Which kind of thing was not found or conflicted; used in messages and by the API mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    Project,
    ActiveProject,
    Label,
    Frame,
    Prompt,
    Source,
    Sink,
    ModelConfig,
    ActiveModelConfig,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Project => "project",
            Entity::ActiveProject => "active project",
            Entity::Label => "label",
            Entity::Frame => "frame",
            Entity::Prompt => "prompt",
            Entity::Source => "source",
            Entity::Sink => "sink",
            Entity::ModelConfig => "model configuration",
            Entity::ActiveModelConfig => "active model configuration",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The addressed thing does not exist (or not in the project named in the request).
    #[error("{entity} {id} not found")]
    NotFound { entity: Entity, id: String },

    /// The request is valid on its own but breaks a rule about the stored state (a duplicate
    /// name, a label still in use, a frame already used by another prompt).
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },

    /// A value breaks its own rule; `field` is the JSON path of the offending field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    /// The store failed for a reason the caller cannot fix. Details go to the log, not the client.
    #[error("storage failure")]
    Storage(#[source] Box<dyn StdError + Send + Sync>),
}

impl DomainError {
    pub fn not_found(entity: Entity, id: impl fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn storage(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Storage(source.into())
    }

    /// Prefixes the field path, so nested validation reports `config.topic`, not `topic`.
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Self::Invalid { field, message } => Self::Invalid {
                field: format!("{prefix}.{field}"),
                message,
            },
            other => other,
        }
    }
}
