//! What flows through the pipeline: a captured [`VideoFrame`] and the [`FrameResult`] the detector
//! made of it. Both carry the frame's sequence number and capture time from the source onwards, so
//! every consumer can match results to frames and measure latency end to end.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use visprompt_domain::{Color, Label, LabelId, ProjectId};

use crate::detection::Detection;
use crate::image::RgbImage;
use crate::payload::PredictionPayload;

/// One frame as the source delivered it.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// Counts frames since the pipeline's source started, from 1; never repeats within a pipeline.
    pub seq: u64,
    /// Monotonic capture instant, for latency.
    pub captured_at: Instant,
    /// Wall-clock capture time, for consumers in other processes.
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub image: Arc<RgbImage>,
    /// Position in a navigable source (image folder, dataset), if it has one.
    pub index: Option<usize>,
}

/// A label's current name and colour, as the output shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelInfo {
    pub name: String,
    pub color: Color,
}

/// The project's labels at the time a result was published: renames and recolours reach the next
/// result without refitting anything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelTable {
    labels: HashMap<LabelId, LabelInfo>,
}

impl LabelTable {
    pub fn from_labels(labels: &[Label]) -> Self {
        Self {
            labels: labels
                .iter()
                .map(|l| {
                    (
                        l.id,
                        LabelInfo {
                            name: l.name.as_str().to_owned(),
                            color: l.color,
                        },
                    )
                })
                .collect(),
        }
    }

    /// A table from `(id, name, colour)` entries, for callers that hold no domain labels.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (LabelId, &'a str, Color)>) -> Self {
        Self {
            labels: entries
                .into_iter()
                .map(|(id, name, color)| {
                    (
                        id,
                        LabelInfo {
                            name: name.to_owned(),
                            color,
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn get(&self, id: LabelId) -> Option<&LabelInfo> {
        self.labels.get(&id)
    }
}

/// What the detector made of one frame.
#[derive(Debug)]
pub struct FrameResult {
    pub project_id: ProjectId,
    pub frame: VideoFrame,
    pub detections: Vec<Detection>,
    pub labels: Arc<LabelTable>,
    /// Time spent in the detector alone.
    pub inference: Duration,
    /// When the result was published; `completed_at - frame.captured_at` is the pipeline latency.
    pub completed_at: Instant,
    payload: OnceLock<Arc<str>>,
}

impl FrameResult {
    pub fn new(
        project_id: ProjectId,
        frame: VideoFrame,
        detections: Vec<Detection>,
        labels: Arc<LabelTable>,
        inference: Duration,
    ) -> Self {
        Self {
            project_id,
            frame,
            detections,
            labels,
            inference,
            completed_at: Instant::now(),
            payload: OnceLock::new(),
        }
    }

    pub fn latency(&self) -> Duration {
        self.completed_at
            .saturating_duration_since(self.frame.captured_at)
    }

    /// The prediction payload as JSON, encoded once and shared by every sink and viewer.
    pub fn payload_json(&self) -> Arc<str> {
        self.payload
            .get_or_init(|| {
                let payload = PredictionPayload::from_result(self);
                serde_json::to_string(&payload)
                    .expect("the payload has only string keys and finite numbers")
                    .into()
            })
            .clone()
    }
}
