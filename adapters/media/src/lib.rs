//! Frame sources: every [`visprompt_runtime::FrameSource`] this build can open, and the
//! [`MediaSourceFactory`] that opens the right one for a stored source configuration.
//!
//! # Layout
//!
//! - [`synthetic`]: moving textured shapes at known positions (demo source, test ground truth).
//! - [`factory`]: [`MediaSourceFactory`], configuration → source.

pub mod factory;
pub mod synthetic;

pub use factory::MediaSourceFactory;
pub use synthetic::{SyntheticScene, SyntheticSource};
