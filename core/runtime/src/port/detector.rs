//! Detectors: fitted once from a project's reference frames and annotations, then run on every
//! frame. Both calls are blocking CPU work; the pipeline makes them on blocking threads.

use std::sync::Arc;

use visprompt_domain::{LabelId, ModelConfig, Shape};

use crate::detection::Detection;
use crate::image::RgbImage;
use crate::mask::BitMask;

/// One annotated object on a reference frame.
#[derive(Clone, Debug)]
pub struct ReferenceAnnotation {
    pub label_id: LabelId,
    /// The shape as the user drew it (negative points included).
    pub shape: Shape,
    /// The pixels the shape marks as the object (see [`crate::mask::rasterize`]).
    pub mask: BitMask,
}

/// A reference frame with its annotations, from one visual prompt.
#[derive(Clone, Debug)]
pub struct Reference {
    pub image: Arc<RgbImage>,
    pub annotations: Vec<ReferenceAnnotation>,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// This build or machine cannot run the configuration (an algorithm without weights, a device
    /// that is not there). The message says what is missing and how to provide it.
    #[error("{0}")]
    Unavailable(String),
    /// The references cannot be used (no annotation, an empty mask).
    #[error("{0}")]
    InvalidReferences(String),
    /// Inference failed on a frame.
    #[error("{0}")]
    Failed(String),
}

#[cfg_attr(test, mockall::automock)]
pub trait Detector: Send {
    /// Detections on `image`, any number per label, in no particular order.
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError>;
}

#[cfg_attr(test, mockall::automock)]
pub trait DetectorFactory: Send + Sync {
    /// Builds and fits a detector. `references` is never empty.
    /// MUST return `Unavailable` for a configuration this build cannot run and
    /// `InvalidReferences` when no annotation can be used.
    fn build(
        &self,
        model: &ModelConfig,
        references: &[Reference],
    ) -> Result<Box<dyn Detector>, DetectorError>;
}
