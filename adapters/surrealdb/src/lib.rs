//! SurrealDB adapter for the domain's [`Repository`] port: embedded in memory (tests), embedded on
//! disk with SurrealKV (the default), or a remote server over WebSocket (scale-out).
//!
//! # Layout
//!
//! - `lib.rs`: [`StoreLocation`], [`SurrealRepository::connect`].

use std::path::PathBuf;

use visprompt_domain::Repository;

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// Embedded, in memory: gone when the process ends. For tests.
    Memory,
    /// Embedded, on disk under this directory (SurrealKV).
    Disk(PathBuf),
    /// A SurrealDB server, e.g. `ws://127.0.0.1:8000`, signed in as a root user.
    Remote { url: String, username: String, password: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database at {location}: {message}")]
    Connect { location: String, message: String },
}

/// The repository, connected and with its schema migrated to the current version.
#[derive(Clone)]
pub struct SurrealRepository {}

impl SurrealRepository {
    /// Connects, selects namespace and database, and migrates the schema.
    pub async fn connect(
        _location: StoreLocation,
        _namespace: &str,
        _database: &str,
    ) -> Result<Self, StoreError> {
        todo!()
    }
}

#[allow(unused)]
fn _assert_port(r: SurrealRepository) -> Box<dyn Repository> {
    todo!()
}
