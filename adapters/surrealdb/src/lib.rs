//! SurrealDB adapter for the domain's [`Repository`] port: embedded in memory (tests), embedded on
//! disk with SurrealKV (the default), or a remote server over WebSocket (scale-out).
//! Rules that concurrent requests could break are kept by the database itself (schema, unique
//! indexes, single active slots, one transaction per write), never by checking first in Rust.
//!
//! # Layout
//!
//! - `lib.rs`: [`StoreLocation`], [`StoreError`], [`SurrealRepository::connect`].
//! - `schema.rs`: the ordered SurrealQL migrations and the start-up migrator.
//! - `exec.rs`: runs one script as one transaction, retries write conflicts, maps errors to
//!   [`DomainError`](visprompt_domain::DomainError) at this boundary.
//! - `record.rs`: the adapter's own record shapes and their conversion to and from domain types.
//! - `projects.rs`, `labels.rs`, `frames.rs`, `prompts.rs`, `sources.rs`, `sinks.rs`, `models.rs`:
//!   the SurrealQL of each aggregate.
//! - `repository.rs`: the [`Repository`] implementation, one line per method.
//! - `upgrade_tests.rs`: databases left by earlier schema versions, migrated and read back.

mod exec;
mod frames;
mod labels;
mod models;
mod projects;
mod prompts;
mod record;
mod repository;
mod schema;
mod sinks;
mod sources;
#[cfg(test)]
mod upgrade_tests;

use std::path::PathBuf;
use std::sync::Arc;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::Root;

pub use schema::SCHEMA_VERSION;

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// Embedded, in memory: gone when the process ends. For tests.
    Memory,
    /// Embedded, on disk under this directory (SurrealKV).
    Disk(PathBuf),
    /// A SurrealDB server, e.g. `ws://127.0.0.1:8000`, signed in as a root user.
    Remote {
        url: String,
        username: String,
        password: String,
    },
}

impl StoreLocation {
    /// The location as it can be logged: never includes the password.
    fn describe(&self) -> String {
        match self {
            StoreLocation::Memory => "memory".to_owned(),
            StoreLocation::Disk(path) => format!("surrealkv://{}", path.display()),
            StoreLocation::Remote { url, username, .. } => format!("{url} (as {username})"),
        }
    }
}

/// The adapter's own errors. Connecting and migrating return them directly; a failing query is
/// wrapped in [`DomainError::Storage`](visprompt_domain::DomainError::Storage) so that callers of
/// the port only see domain errors, while the log and `source()` keep the whole cause chain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database at {location}: {message}")]
    Connect { location: String, message: String },

    #[error(
        "the database holds schema version {found}, newer than the {supported} this build knows; \
         upgrade visprompt or use another database"
    )]
    SchemaTooNew { found: i64, supported: i64 },

    #[error("migrating the database schema to version {version} failed")]
    Migration {
        version: i64,
        #[source]
        source: surrealdb::Error,
    },

    #[error("database query `{operation}` failed")]
    Query {
        operation: &'static str,
        #[source]
        source: surrealdb::Error,
    },

    #[error(
        "database query `{operation}` still conflicted with concurrent writes after {attempts} attempts"
    )]
    Contention {
        operation: &'static str,
        attempts: u32,
        #[source]
        source: surrealdb::Error,
    },

    /// A query answered with a shape the adapter does not expect (a schema out of step).
    #[error("the result of `{operation}` cannot be decoded: {message}")]
    Decode {
        operation: &'static str,
        message: String,
    },

    /// A stored value breaks a domain rule, so the database was changed behind the adapter's back.
    #[error("a stored {entity} cannot be read back: {message}")]
    Corrupt {
        entity: &'static str,
        message: String,
    },
}

/// The repository, connected and with its schema migrated to the current version. Clones are
/// cheap and share one connection and one session: every script is self-contained (its own
/// transaction and variables), so nothing session-specific needs a handle of its own.
#[derive(Clone)]
pub struct SurrealRepository {
    /// Shared rather than cloned: cloning a `Surreal` handle opens a new session, which on a
    /// remote server means signing in again (a password hash check) for every clone.
    db: Arc<Surreal<Any>>,
}

impl SurrealRepository {
    /// Connects, selects namespace and database, and migrates the schema.
    ///
    /// An on-disk directory is created when missing. Opening a directory that another live
    /// repository of this process still holds waits briefly for it to be released: the embedded
    /// engine shuts down in the background once its last handle is dropped.
    pub async fn connect(
        location: StoreLocation,
        namespace: &str,
        database: &str,
    ) -> Result<Self, StoreError> {
        let described = location.describe();
        let connect_error = |message: String| StoreError::Connect {
            location: described.clone(),
            message,
        };
        let db = match &location {
            StoreLocation::Memory => open_embedded("mem://".to_owned()).await,
            StoreLocation::Disk(path) => {
                std::fs::create_dir_all(path)
                    .map_err(|e| connect_error(format!("cannot create the directory: {e}")))?;
                let path = path
                    .canonicalize()
                    .map_err(|e| connect_error(e.to_string()))?;
                open_embedded(format!("surrealkv://{}", path.display())).await
            }
            StoreLocation::Remote {
                url,
                username,
                password,
            } => match surrealdb::engine::any::connect(url.as_str()).await {
                Ok(db) => db
                    .signin(Root {
                        username: username.clone(),
                        password: password.clone(),
                    })
                    .await
                    .map(|_| db),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| connect_error(e.to_string()))?;
        // Selecting a namespace and database that do not exist yet defines them; servers that
        // start together against a fresh database then race on that definition and all but one
        // lose a write conflict, which is worth another try rather than a failed start.
        let mut attempt = 1;
        loop {
            match db.use_ns(namespace).use_db(database).await {
                Ok(_) => break,
                Err(e) if attempt < 16 && e.to_string().contains("can be retried") => {
                    tokio::time::sleep(exec::backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(connect_error(format!(
                        "cannot use {namespace}/{database}: {e}"
                    )));
                }
            }
        }
        let repo = Self { db: Arc::new(db) };
        let version = schema::migrate(&repo.db).await?;
        tracing::info!(
            message = "Store opened.",
            location = %described,
            namespace,
            database,
            schema_version = version
        );
        Ok(repo)
    }

    /// The schema version the database is at (after `connect`, always [`SCHEMA_VERSION`]).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        schema::current_version(&self.db).await
    }

    /// Drops this handle. The embedded engine closes its files once the last clone is gone.
    pub fn close(self) {
        drop(self);
    }
}

/// Opens an embedded engine, retrying for a few seconds while a previous instance of this process
/// still holds the on-disk directory: its shutdown runs in the background after its last handle
/// was dropped, so an immediate reopen (a restart in tests, a reload) may see the lock briefly.
async fn open_embedded(endpoint: String) -> surrealdb::Result<Surreal<Any>> {
    const ATTEMPTS: u32 = 50;
    let mut attempt = 1;
    loop {
        match surrealdb::engine::any::connect(endpoint.as_str()).await {
            Ok(db) => return Ok(db),
            Err(e) if attempt < ATTEMPTS && is_lock_error(&e) => {
                tracing::debug!(message = "Store directory still locked, retrying.", error = %e);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// SurrealKV refuses a directory whose lock file another open instance holds.
fn is_lock_error(error: &surrealdb::Error) -> bool {
    error.to_string().contains("already locked")
}
