//! Typed ids: one newtype per entity so that a `LabelId` can never be passed where a `ProjectId` is
//! expected. The storage form (for example SurrealDB's `table:id`) exists only inside adapters.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

typed_id!(
    /// Identifies a [`crate::Project`].
    ProjectId
);
typed_id!(
    /// Identifies a [`crate::Label`] within its project.
    LabelId
);
typed_id!(
    /// Identifies a stored reference [`crate::Frame`].
    FrameId
);
typed_id!(
    /// Identifies a [`crate::Prompt`].
    PromptId
);
typed_id!(
    /// Identifies a [`crate::Source`].
    SourceId
);
typed_id!(
    /// Identifies a [`crate::Sink`].
    SinkId
);
typed_id!(
    /// Identifies a [`crate::ModelConfig`].
    ModelConfigId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_through_its_text_form() {
        let id = ProjectId::new();
        assert_eq!(id.to_string().parse::<ProjectId>().unwrap(), id);
    }

    #[test]
    fn text_that_is_not_a_uuid_is_not_an_id() {
        assert!("project-1".parse::<LabelId>().is_err());
    }
}
