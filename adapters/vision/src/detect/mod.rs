//! Zero-shot detection from visual prompts: Matcher, SoftMatcher and PerDINO, built from an
//! image encoder ([`crate::encoders`]) and a promptable segmenter ([`crate::segmenters`]).
//!
//! The flow, shared by all three ([`model::VisualPrompter`]):
//!
//! 1. **fit** ([`features`]): encode each reference image; pool each category's mask onto the
//!    patch grid; keep the category's reference patches and their mean (the prototype).
//! 2. **prompt** ([`prompts`]): encode the target; per category, pick foreground points where the
//!    target looks like the reference (how depends on the algorithm) and background points where
//!    it looks least like it.
//! 3. **decode** ([`decode`]): one segmenter prompt per foreground point; score each mask by the
//!    similarity under it times the segmenter's predicted IoU.
//! 4. **post-process** ([`postprocess`]): drop low scores, suppress overlaps, boxes from masks.
//!
//! Every step follows the reference library (`instantlearn`), so the same weights give the same
//! points and masks; `tests/algorithms_parity.rs` checks this against its outputs.

pub mod decode;
pub mod features;
pub mod interactive;
pub mod lsa;
pub mod model;
pub mod postprocess;
pub mod prompts;
pub mod raster;

pub use model::{AlgorithmSettings, ReferenceImage, StageTimes, Trace, VisualPrompter};
pub use postprocess::Prediction;
pub use raster::BinaryMask;

/// Why detection could not run.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("model computation failed: {0}")]
    Model(#[from] candle_core::Error),
    #[error("image encoder failed: {0}")]
    Encoder(#[from] crate::encoders::EncoderError),
    /// The references cannot be used; the message says why.
    #[error("{0}")]
    InvalidReferences(String),
    /// `predict` before a successful `fit`.
    #[error("no reference has been fitted")]
    NotFitted,
}
