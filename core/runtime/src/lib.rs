//! visprompt's runtime: the live pipeline. Frames come from a [`FrameSource`], a [`Detector`]
//! turns them into detections, a [`Broadcaster`] fans the results out to sinks and viewers, and
//! the [`PipelineManager`] keeps the running pipeline in step with what the database says. It
//! depends on the domain and on no adapter: sources, detectors, sinks and codecs arrive as trait
//! objects from the program that composes them.
//!
//! # Layout
//!
//! - [`image`]: [`RgbImage`], the one pixel layout every stage uses.
//! - [`mask`]: binary masks, RLE, boxes, outlines, rasterising prompt shapes.
//! - [`detection`], [`frame`]: what flows through the pipeline.
//! - [`payload`]: the prediction JSON every consumer gets.
//! - [`port`]: the traits adapters implement.
//! - [`broadcast`]: newest-frame-wins fan-out.
//! - [`changes`]: a repository decorator that reports every stored change.
//! - [`confine`]: media paths checked against the roots with symlinks resolved.
//! - [`pipeline`]: spec, running pipeline, status and the manager.
//! - [`embedded`]: [`embedded::LivePipeline`], the pipeline in a program of one's own, with no
//!   server or database: see its example.

pub mod broadcast;
pub mod changes;
pub mod confine;
pub mod detection;
pub mod embedded;
pub mod frame;
pub mod image;
pub mod mask;
pub mod payload;
pub mod pipeline;
pub mod port;
pub mod read_cache;

pub use broadcast::{Broadcaster, Subscription};
pub use changes::{Change, ChangeKind, ObservedRepository};
pub use confine::{Confinement, ConfinementError};
pub use detection::Detection;
pub use frame::{FrameResult, LabelInfo, LabelTable, VideoFrame};
pub use image::RgbImage;
pub use mask::{BitMask, BoundingBox};
pub use payload::PredictionPayload;
pub use pipeline::*;
pub use port::*;
