//! visprompt's server: the OpenAPI REST interface over the domain, with the SurrealDB store.
//!
//! # Layout
//!
//! - [`settings`]: process settings (defaults ← TOML file ← environment).
//! - [`startup`]: [`Application`]: store, routes and listener, built from settings.
//! - [`api`]: one module per REST resource, and the error mapping in [`api::error`].
//! - [`middleware`]: bearer token, body limits, JSON error bodies.
//! - [`telemetry`]: logging set-up.
//! - [`ui`]: the built browser UI, served at `/` beside the API.

pub mod api;
pub mod demo;
pub mod detectors;
pub mod document;
pub mod metrics;
pub mod middleware;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod ui;

pub use settings::Settings;
pub use startup::{Application, openapi_document};
