//! The evaluation harness: how well a detector segments what it was shown, and how fast.
//!
//! - [`metrics`]: per class and overall mIoU (cumulative, as the few-shot papers report it, and
//!   the per-image mean the reference system computes), FB-IoU, and instance precision and recall
//!   at IoU 0.5.
//!
//! - [`datasets`]: PerSeg, folder and FSS-1000 layouts on disk; [`coco`]: COCO-style instance
//!   annotations.
//! - [`synthetic`]: a generated dataset of textured objects with exact masks, for tests and demos.
//!
//! - [`eval`]: the protocol: per class, seeded `k`-shot references fit a detector (any
//!   `DetectorFactory`), every other image is a target; metrics and latencies.
//!
//! - [`compare`]: two reports side by side; [`plots`]: the report's PNG plots.

pub mod coco;
pub mod compare;
pub mod datasets;
pub mod eval;
pub mod metrics;
pub mod plots;
pub mod synthetic;

pub use metrics::{ClassReport, GroundTruth, Metrics, Predicted, Report};
