//! `POST /api/v1/projects/{project_id}/frames/{frame_id}/segment`: click-to-segment while
//! annotating. Points (positive and negative) and/or a box on a stored reference frame become
//! one mask from the promptable segmenter, returned as a mask shape (ready to save as an
//! annotation), its outline polygon and the segmenter's score.
//!
//! The frame's image embedding (the expensive half) is kept in a small cache, so that successive
//! clicks on one frame only run the prompt encoder and mask decoder.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use visprompt_domain::{AlgorithmParams, DomainError, FrameId, ProjectId, SamModel, Service};
use visprompt_runtime::{BitMask, FrameCodec};
use visprompt_vision::detect::decode::{self, PreparedImage};
use visprompt_vision::detect::interactive::{self, Click};
use visprompt_vision::detector::segmenter_id;
use visprompt_vision::encoders::RgbImage;
use visprompt_vision::store::{EncoderPrecision, ModelStore};

use crate::api::ApiTags;
use crate::api::error::ApiError;
use crate::api::prompts::{MaskShape, PointBody, PromptPointBody};

/// Frames whose embeddings are kept.
const EMBEDDING_CACHE: usize = 8;

/// A box from its top-left (`min`) to its bottom-right (`max`) corner, in frame pixels.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SegmentBox")]
pub struct SegmentBox {
    pub min: PointBody,
    pub max: PointBody,
}

#[derive(Debug, Clone, Object)]
pub struct SegmentRequest {
    /// Clicks on the object (`positive`, the default) or next to it.
    #[oai(default, validator(max_items = 64))]
    pub points: Vec<PromptPointBody>,
    /// A box around the object.
    #[oai(rename = "box")]
    pub bbox: Option<SegmentBox>,
    /// The segmenter (`SAM-HQ-tiny`, ...); by default the one of the project's active model
    /// configuration, else `SAM-HQ-tiny`.
    pub sam_model: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct SegmentResult {
    /// The mask, as a `mask` annotation shape takes it.
    pub mask: MaskShape,
    /// Outline of the mask's largest region, as a `polygon` annotation shape takes it (empty
    /// when the mask is empty).
    pub polygon: Vec<PointBody>,
    /// The segmenter's predicted IoU for the mask.
    pub score: f32,
    /// Pixels in the mask.
    pub area: u64,
    /// The segmenter that answered.
    pub sam_model: String,
}

type CacheKey = (FrameId, &'static str);

#[derive(Default)]
pub struct EmbeddingCache {
    entries: Mutex<VecDeque<(CacheKey, Arc<PreparedImage>)>>,
}

impl EmbeddingCache {
    fn get(&self, key: &CacheKey) -> Option<Arc<PreparedImage>> {
        let mut e = self.entries.lock().expect("cache lock");
        let at = e.iter().position(|(k, _)| k == key)?;
        let entry = e.remove(at).expect("present");
        let value = entry.1.clone();
        e.push_front(entry);
        Some(value)
    }

    fn put(&self, key: CacheKey, value: Arc<PreparedImage>) {
        let mut e = self.entries.lock().expect("cache lock");
        e.retain(|(k, _)| *k != key);
        e.push_front((key, value));
        e.truncate(EMBEDDING_CACHE);
    }
}

pub struct SegmentApi {
    pub service: Service,
    pub codec: Arc<dyn FrameCodec>,
    pub models: Arc<ModelStore>,
    pub cache: Arc<EmbeddingCache>,
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Frames")]
impl SegmentApi {
    /// Segment an object on a stored frame from clicks and/or a box (click-to-segment).
    /// 422 when the prompt is empty or lies outside the frame; 409 when the segmenter's weights
    /// are not available (the message says how to provide them).
    #[oai(
        path = "/:project_id/frames/:frame_id/segment",
        method = "post",
        operation_id = "segment_frame"
    )]
    async fn segment(
        &self,
        project_id: Path<Uuid>,
        frame_id: Path<Uuid>,
        body: Json<SegmentRequest>,
    ) -> Result<Json<SegmentResult>, ApiError> {
        let pid = ProjectId::from_uuid(project_id.0);
        let fid = FrameId::from_uuid(frame_id.0);
        let body = body.0;
        if body.points.is_empty() && body.bbox.is_none() {
            return Err(ApiError::invalid(
                "points",
                "give at least one point or a box",
            ));
        }
        if !body.points.is_empty() && body.points.iter().all(|p| !p.positive) && body.bbox.is_none()
        {
            return Err(ApiError::invalid(
                "points",
                "only negative points: mark at least one point on the object, or give a box",
            ));
        }
        let sam_model = match &body.sam_model {
            Some(raw) => SamModel::parse(raw).ok_or_else(|| {
                ApiError::invalid(
                    "sam_model",
                    format!(
                        "unknown segmenter {raw:?}; one of {}",
                        SamModel::ALL.map(|m| m.as_str()).join(", ")
                    ),
                )
            })?,
            None => match self.service.active_model(pid).await {
                Ok(m) => match m.params {
                    AlgorithmParams::Matcher(p) => p.sam_model,
                    AlgorithmParams::PerDino(p) => p.sam_model,
                    AlgorithmParams::SoftMatcher(p) => p.sam_model,
                    AlgorithmParams::Classical(_) => SamModel::default(),
                },
                Err(DomainError::NotFound { .. }) => SamModel::default(),
                Err(e) => return Err(e.into()),
            },
        };
        let (frame, bytes) = self.service.frame_image(pid, fid).await?;
        let (w, h) = (
            f64::from(frame.size.width()),
            f64::from(frame.size.height()),
        );
        for (i, p) in body.points.iter().enumerate() {
            if p.x > w || p.y > h {
                return Err(ApiError::invalid(
                    format!("points[{i}]"),
                    format!("({}, {}) lies outside the {w}x{h} frame", p.x, p.y),
                ));
            }
        }
        if let Some(b) = &body.bbox {
            if b.max.x > w || b.max.y > h {
                return Err(ApiError::invalid(
                    "box.max",
                    format!("({}, {}) lies outside the {w}x{h} frame", b.max.x, b.max.y),
                ));
            }
            if b.min.x >= b.max.x || b.min.y >= b.max.y {
                return Err(ApiError::invalid(
                    "box",
                    "min must lie above and left of max",
                ));
            }
        }
        let model_id = segmenter_id(sam_model);
        let models = self.models.clone();
        let codec = self.codec.clone();
        let cache = self.cache.clone();
        let clicks: Vec<Click> = body
            .points
            .iter()
            .map(|p| Click {
                x: p.x as f32,
                y: p.y as f32,
                positive: p.positive,
            })
            .collect();
        let bbox = body.bbox.as_ref().map(|b| {
            [
                b.min.x as f32,
                b.min.y as f32,
                b.max.x as f32,
                b.max.y as f32,
            ]
        });
        let outcome = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
            // Annotation masks come from the full-precision encoder, whatever the live
            // pipeline runs.
            let sam = models
                .segmenter(model_id, EncoderPrecision::F32)
                .map_err(|e| ApiError::conflict(e.to_string()))?;
            let key = (fid, model_id);
            let prepared = match cache.get(&key) {
                Some(p) => p,
                None => {
                    let image = codec.decode(&bytes).map_err(|e| {
                        tracing::error!(message = "A stored frame does not decode.", error = %e);
                        ApiError::internal()
                    })?;
                    let view = RgbImage {
                        width: image.width() as usize,
                        height: image.height() as usize,
                        data: image.as_raw(),
                    };
                    let p = Arc::new(decode::prepare(&sam, view).map_err(|e| {
                        tracing::error!(message = "Embedding a frame failed.", error = %e);
                        ApiError::internal()
                    })?);
                    cache.put(key, p.clone());
                    p
                }
            };
            interactive::segment(&sam, &prepared, &clicks, bbox).map_err(|e| {
                tracing::error!(message = "Segmenting failed.", error = %e);
                ApiError::internal()
            })
        })
        .await
        .map_err(|_| ApiError::internal())??;
        let (mask, score) = outcome;
        let bits = BitMask::from_fn(mask.width as u32, mask.height as u32, |x, y| {
            mask.data[y as usize * mask.width + x as usize] != 0
        });
        let rle = bits.to_rle();
        let polygon = if bits.area() > 0 {
            bits.outline()
                .into_iter()
                .map(|(x, y)| PointBody {
                    x: f64::from(x),
                    y: f64::from(y),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Json(SegmentResult {
            mask: MaskShape {
                width: rle.size.width(),
                height: rle.size.height(),
                counts: rle.counts,
            },
            polygon,
            score,
            area: bits.area(),
            sam_model: sam_model.as_str().into(),
        }))
    }
}
