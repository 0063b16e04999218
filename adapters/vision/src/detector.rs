//! The live pipeline's [`DetectorFactory`] for the neural algorithms (Matcher, SoftMatcher,
//! PerDINO): turns a stored model configuration into a [`VisualPrompter`] with weights from the
//! [`ModelStore`], fits it on the project's visual prompts and runs it on frames.
//!
//! Reference annotations: polygons and masks are used as drawn; points (with negatives) and
//! boxes are first turned into an object mask by the segmenter on the reference frame, since the
//! algorithms learn from masks.

use std::sync::Arc;

use visprompt_domain::{
    AlgorithmParams, Device, EncoderModel, LabelId, ModelConfig, Precision, SamModel, Shape,
};
use visprompt_runtime::{
    BitMask, Detection, Detector, DetectorError, DetectorFactory, Reference, RgbImage,
};

use crate::detect::decode::{self, DecodeOptions};
use crate::detect::features::MaskView;
use crate::detect::interactive::{self, Click};
use crate::detect::prompts::{GridPrompting, MatcherPrompting, SoftPrompting};
use crate::detect::{AlgorithmSettings, BinaryMask, ReferenceImage, VisualPrompter};
use crate::encoders;
use crate::store::{EncoderPrecision, ModelStore, StoreError};

/// The catalogue id of an encoder choice; `None` when this build has no such model.
pub fn encoder_id(model: EncoderModel) -> Option<&'static str> {
    Some(match model {
        EncoderModel::Dinov3Small => "dinov3_small",
        EncoderModel::Dinov3Base => "dinov3_base",
        EncoderModel::Dinov3Large => "dinov3_large",
        EncoderModel::Dinov2Small => "dinov2_small",
        EncoderModel::Dinov2Base => "dinov2_base",
        EncoderModel::Dinov2SmallReg => "dinov2_small_registers",
        EncoderModel::Dinov2BaseReg => "dinov2_base_registers",
        EncoderModel::Dinov3SmallPlus | EncoderModel::Dinov3Huge => return None,
    })
}

/// The catalogue id of a segmenter choice.
pub fn segmenter_id(model: SamModel) -> &'static str {
    match model {
        SamModel::SamHqTiny => "sam_hq_tiny",
        SamModel::SamHqBase => "sam_hq_vit_b",
        SamModel::SamHqLarge => "sam_hq_vit_l",
        SamModel::SamHq => "sam_hq_vit_h",
        SamModel::SamBase => "sam_vit_b",
        SamModel::MobileSam => "mobile_sam",
    }
}

fn store_error(e: StoreError) -> DetectorError {
    // Missing or unsupported weights are a setup matter the message explains; the server stays up.
    DetectorError::Unavailable(e.to_string())
}

pub struct VisionDetectorFactory {
    store: Arc<ModelStore>,
}

impl VisionDetectorFactory {
    pub fn new(store: Arc<ModelStore>) -> Self {
        Self { store }
    }
}

/// What a configuration asks for, in this crate's terms.
struct Plan {
    encoder: &'static str,
    segmenter: &'static str,
    precision: EncoderPrecision,
    algorithm: AlgorithmSettings,
    decode: DecodeOptions,
}

fn plan(model: &ModelConfig) -> Result<Plan, DetectorError> {
    match model.device {
        Device::Auto | Device::Cpu => {}
        other => {
            return Err(DetectorError::Unavailable(format!(
                "device {other} is not available: this build runs the models on the CPU (choose \
                 \"cpu\" or \"auto\")"
            )));
        }
    }
    let (encoder, sam, precision) = match &model.params {
        AlgorithmParams::Matcher(p) => (p.encoder_model, p.sam_model, p.precision),
        AlgorithmParams::SoftMatcher(p) => (p.encoder_model, p.sam_model, p.precision),
        AlgorithmParams::PerDino(p) => (p.encoder_model, p.sam_model, p.precision),
        AlgorithmParams::Classical(_) => {
            return Err(DetectorError::Unavailable(
                "the classical algorithm is not a neural one".into(),
            ));
        }
    };
    let encoder = encoder_id(encoder).ok_or_else(|| {
        DetectorError::Unavailable(format!(
            "encoder {} is not available in this build; choose dinov3_small, dinov3_base, \
             dinov3_large or a dinov2 model",
            encoder.as_str()
        ))
    })?;
    // CPUs have no f16 arithmetic worth using: f16 runs as f32, bf16 as bf16 matrix products
    // where the CPU has them.
    let precision = match precision {
        Precision::Bf16 => EncoderPrecision::Bf16,
        Precision::Fp32 | Precision::Fp16 => EncoderPrecision::F32,
    };
    let (algorithm, decode) = match &model.params {
        AlgorithmParams::Matcher(p) => (
            AlgorithmSettings::Matcher(MatcherPrompting {
                num_foreground: p.num_foreground_points as usize,
                num_background: p.num_background_points as usize,
                similarity_threshold: p.similarity_threshold.map(|v| v as f32),
                num_grid_cells: p.num_grid_cells as usize,
            }),
            DecodeOptions {
                confidence_threshold: p.confidence_threshold as f32,
                mask_refinement: p.use_mask_refinement,
            },
        ),
        AlgorithmParams::SoftMatcher(p) => (
            AlgorithmSettings::SoftMatcher(SoftPrompting {
                num_foreground: p.num_foreground_points as usize,
                num_background: p.num_background_points as usize,
                score_threshold: p.softmatching_score_threshold as f32,
                bidirectional: p.softmatching_bidirectional,
                spatial_sampling: p.use_spatial_sampling,
                // Fixed seeds: the same frame gives the same detections.
                sampling_seed: p.use_sampling.then_some(0x5eed),
                rff_seed: p.approximate_matching.then_some(0xf00d),
            }),
            DecodeOptions {
                confidence_threshold: p.confidence_threshold as f32,
                // SoftMatcher inherits Matcher's refinement pass.
                mask_refinement: true,
            },
        ),
        AlgorithmParams::PerDino(p) => (
            AlgorithmSettings::PerDino(GridPrompting {
                num_foreground: p.num_foreground_points as usize,
                num_background: p.num_background_points as usize,
                num_grid_cells: p.num_grid_cells as usize,
                point_selection_threshold: p.point_selection_threshold as f32,
            }),
            DecodeOptions {
                confidence_threshold: p.confidence_threshold as f32,
                mask_refinement: false,
            },
        ),
        AlgorithmParams::Classical(_) => unreachable!("handled above"),
    };
    Ok(Plan {
        encoder,
        segmenter: segmenter_id(sam),
        precision,
        algorithm,
        decode,
    })
}

fn view(image: &RgbImage) -> encoders::RgbImage<'_> {
    encoders::RgbImage {
        width: image.width() as usize,
        height: image.height() as usize,
        data: image.as_raw(),
    }
}

impl DetectorFactory for VisionDetectorFactory {
    fn build(
        &self,
        model: &ModelConfig,
        references: &[Reference],
    ) -> Result<Box<dyn Detector>, DetectorError> {
        let plan = plan(model)?;
        let encoder = self
            .store
            .encoder(plan.encoder, plan.precision)
            .map_err(store_error)?;
        let sam = self
            .store
            .segmenter(plan.segmenter, plan.precision)
            .map_err(store_error)?;
        let mut labels: Vec<LabelId> = references
            .iter()
            .flat_map(|r| r.annotations.iter().map(|a| a.label_id))
            .collect();
        labels.sort_unstable();
        labels.dedup();
        let failed = |e: crate::detect::DetectError| DetectorError::Failed(e.to_string());
        // Object masks per reference image, one byte per pixel.
        let mut masks: Vec<Vec<(u32, Vec<u8>)>> = Vec::with_capacity(references.len());
        for r in references {
            let mut prepared = None;
            let mut mine = Vec::new();
            for a in &r.annotations {
                let category = labels.binary_search(&a.label_id).expect("collected above") as u32;
                let (clicks, bbox) = match &a.shape {
                    Shape::Points(points) => (
                        points
                            .iter()
                            .map(|(p, positive)| Click {
                                x: p.x as f32,
                                y: p.y as f32,
                                positive: *positive,
                            })
                            .collect(),
                        None,
                    ),
                    Shape::Rectangle { min, max } => (
                        Vec::new(),
                        Some([min.x as f32, min.y as f32, max.x as f32, max.y as f32]),
                    ),
                    Shape::Polygon(_) | Shape::Mask(_) => {
                        mine.push((category, a.mask.as_bytes().to_vec()));
                        continue;
                    }
                };
                if !clicks.iter().any(|c: &Click| c.positive) && bbox.is_none() {
                    continue; // only negative clicks: nothing marks the object
                }
                if prepared.is_none() {
                    prepared = Some(decode::prepare(&sam, view(&r.image)).map_err(failed)?);
                }
                let p = prepared.as_ref().expect("prepared above");
                let (mask, _) = interactive::segment(&sam, p, &clicks, bbox).map_err(failed)?;
                if mask.area() > 0 {
                    mine.push((category, mask.data));
                } else {
                    mine.push((category, a.mask.as_bytes().to_vec()));
                }
            }
            masks.push(mine);
        }
        let shots: Vec<ReferenceImage<'_>> = references
            .iter()
            .zip(&masks)
            .map(|(r, m)| ReferenceImage {
                image: view(&r.image),
                masks: m
                    .iter()
                    .map(|(c, data)| {
                        (
                            *c,
                            MaskView {
                                width: r.image.width() as usize,
                                height: r.image.height() as usize,
                                data,
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        let mut prompter = VisualPrompter::new(encoder, sam, plan.algorithm, plan.decode);
        prompter.fit(&shots).map_err(|e| match e {
            crate::detect::DetectError::InvalidReferences(m) => DetectorError::InvalidReferences(m),
            other => DetectorError::Failed(other.to_string()),
        })?;
        Ok(Box::new(VisionDetector { prompter, labels }))
    }
}

/// A fitted neural detector.
pub struct VisionDetector {
    prompter: VisualPrompter,
    /// Category id → label.
    labels: Vec<LabelId>,
}

impl Detector for VisionDetector {
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
        let predictions = self
            .prompter
            .predict(view(image))
            .map_err(|e| DetectorError::Failed(e.to_string()))?;
        Ok(predictions
            .into_iter()
            .filter_map(|p| {
                let label = *self.labels.get(p.category as usize)?;
                Detection::from_mask(label, p.score.clamp(0.0, 1.0), to_bitmask(&p.mask))
            })
            .collect())
    }
}

fn to_bitmask(mask: &BinaryMask) -> BitMask {
    let w = mask.width;
    BitMask::from_fn(mask.width as u32, mask.height as u32, |x, y| {
        mask.data[y as usize * w + x as usize] != 0
    })
}
