//! The prediction payload: the one JSON document every consumer gets per processed frame (MQTT,
//! webhook, file, the WebRTC data channel). It is its own versioned wire type, documented in
//! `docs/payload.md`; domain and runtime types do not derive `Serialize`.

use serde::Serialize;

use crate::frame::FrameResult;

/// Bumped when a field changes meaning or disappears; adding a field does not bump it.
pub const PAYLOAD_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct PredictionPayload {
    pub version: u32,
    pub project_id: String,
    pub frame: FramePayload,
    pub detections: Vec<DetectionPayload>,
}

#[derive(Debug, Serialize)]
pub struct FramePayload {
    /// The frame's sequence number since the source started.
    pub sequence: u64,
    /// Capture time, RFC 3339 with microseconds, UTC.
    pub captured_at: String,
    /// Capture time in milliseconds since the Unix epoch.
    pub captured_at_ms: i64,
    pub width: u32,
    pub height: u32,
    /// Position in a navigable source (image folder, dataset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Capture to result, in milliseconds.
    pub latency_ms: f64,
    /// Time in the detector, in milliseconds.
    pub inference_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct DetectionPayload {
    pub label_id: String,
    /// The label's name when the result was made; `null` if the label was deleted meanwhile.
    pub label_name: Option<String>,
    /// `#RRGGBB`.
    pub label_color: Option<String>,
    pub score: f32,
    /// `[x_min, y_min, x_max, y_max]` in pixels, max exclusive.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Outline of the mask's largest region, `[[x, y], ...]` in pixels.
    pub polygon: Vec<[f32; 2]>,
    pub mask: RlePayload,
}

/// COCO uncompressed RLE: `size` is `[height, width]`; `counts` alternate runs of 0s and 1s,
/// starting with 0s, over the pixels in column-major order.
#[derive(Debug, Serialize)]
pub struct RlePayload {
    pub size: [u32; 2],
    pub counts: Vec<u32>,
}

impl PredictionPayload {
    pub fn from_result(result: &FrameResult) -> Self {
        let frame = &result.frame;
        Self {
            version: PAYLOAD_VERSION,
            project_id: result.project_id.to_string(),
            frame: FramePayload {
                sequence: frame.seq,
                captured_at: frame
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                captured_at_ms: frame.timestamp.timestamp_millis(),
                width: frame.image.width(),
                height: frame.image.height(),
                index: frame.index,
                latency_ms: millis(result.latency()),
                inference_ms: millis(result.inference),
            },
            detections: result
                .detections
                .iter()
                .map(|d| {
                    let label = result.labels.get(d.label_id);
                    let rle = d.mask.to_rle();
                    DetectionPayload {
                        label_id: d.label_id.to_string(),
                        label_name: label.map(|l| l.name.clone()),
                        label_color: label.map(|l| l.color.to_string()),
                        score: finite(d.score),
                        bbox: [d.bbox.x_min, d.bbox.y_min, d.bbox.x_max, d.bbox.y_max].map(finite),
                        polygon: d.mask.outline().into_iter().map(|(x, y)| [x, y]).collect(),
                        mask: RlePayload {
                            size: [rle.size.height(), rle.size.width()],
                            counts: rle.counts,
                        },
                    }
                })
                .collect(),
        }
    }
}

fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// JSON has no NaN or infinity; a detector bug must not make the payload unencodable.
fn finite(v: f32) -> f32 {
    if v.is_finite() { v } else { 0.0 }
}
