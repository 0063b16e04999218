//! visprompt's weights-free detector: finds objects like the annotated ones by their colour and
//! texture alone, so the product runs end to end on any machine with nothing to download. It is
//! a one-shot matcher, not a learned model: it knows nothing about objects beyond what the
//! reference pixels show.
//!
//! # Method
//!
//! Every pixel gets a feature code: a hue/saturation/value colour bin and a gradient code (flat,
//! or one of eight orientations at two strengths). Fitting counts the codes under each label's
//! annotation masks and, as the background class, outside all masks. Detection scores each 4x4
//! cell by the mean log-likelihood of the codes in its 12x12 neighbourhood under every class,
//! turns those into per-label probabilities, thresholds them at `confidence_threshold`, closes
//! small gaps, splits the result into 8-connected instances and ranks them by mean probability.
//! Instances are then refined in rank order, each edge pixel by pixel from colour, dropping those
//! smaller than `min_area` times the smallest annotation, until `max_detections` per label are kept.
//!
//! # Layout
//!
//! - `features`: colour bins and gradient codes per pixel.
//! - `model`: fitting the class histograms.
//! - `grid`: morphology and connected components on the cell grid.
//! - `detector`: [`ClassicalDetector`], scoring and instances.
//! - `factory`: [`ClassicalDetectorFactory`], the [`visprompt_runtime::DetectorFactory`].

mod detector;
mod factory;
mod features;
mod grid;
mod model;

pub use detector::ClassicalDetector;
pub use factory::ClassicalDetectorFactory;
