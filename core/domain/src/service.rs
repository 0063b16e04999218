//! The use cases the API calls. A service method takes values that are already valid on their own
//! (parsed by the caller), checks what needs other state (references, frame sizes, media roots),
//! and hands the result to the [`Repository`], which enforces the rules that concurrency could
//! break. One file per resource, all methods on [`Service`].

mod frames;
mod labels;
mod media;
mod models;
mod projects;
mod prompts;
mod sinks;
mod sources;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use media::MediaRoots;
pub use models::NewModelConfig;
pub use projects::ProjectUpdate;
pub use sinks::NewSink;
pub use sources::NewSource;

use crate::entity::Timestamp;
use crate::repository::Repository;

/// The domain's entry point; cheap to clone.
#[derive(Clone)]
pub struct Service {
    repo: Arc<dyn Repository>,
    media_roots: MediaRoots,
}

impl Service {
    pub fn new(repo: Arc<dyn Repository>, media_roots: MediaRoots) -> Self {
        Self { repo, media_roots }
    }

    pub fn media_roots(&self) -> &MediaRoots {
        &self.media_roots
    }
}

fn now() -> Timestamp {
    chrono::Utc::now()
}
