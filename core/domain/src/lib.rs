//! visprompt's domain: what a project is made of, which values are valid, and the rules that hold
//! between them. It knows nothing of HTTP, databases, codecs or the live pipeline; those depend on
//! it, never the reverse (the `visprompt-domain` crate has no dependency that could reach them).
//!
//! # Layout
//!
//! - [`id`]: typed ids (`ProjectId`, `LabelId`, ...), one newtype per entity over a UUID.
//! - [`value`]: constrained values (`ProjectName`, `Color`, `Device`, ...) that can only be built valid.
//! - [`entity`]: the entities (project, label, frame, prompt, source, sink, model configuration).
//! - [`page`]: pagination requests and pages of results.
//! - [`error`]: [`DomainError`], the one error type of this layer.
//! - [`repository`]: the [`Repository`] port that persistence adapters implement.
//! - [`service`]: [`Service`], the use cases the API calls: validate, check references, persist.

pub mod entity;
pub mod error;
pub mod id;
pub mod page;
pub mod repository;
pub mod service;
pub mod value;

pub use entity::*;
pub use error::{DomainError, Entity};
pub use id::*;
pub use page::{Page, Paged};
pub use repository::{ProjectBundle, Repository, StoredFrame};
pub use service::{MediaRoots, NewModelConfig, NewSink, NewSource, ProjectUpdate, Service};
pub use value::*;
