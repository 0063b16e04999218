//! [`VisualPrompter`]: an encoder, a segmenter and one of the three prompting algorithms, fitted
//! from reference images with masks and run on target images.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::encoders::RgbImage;
use crate::segmenters::Sam;

use super::DetectError;
use super::decode::{self, Candidate, DecodeOptions, PreparedImage};
use super::features::{
    self, FeatureEncoder, MaskView, PatchFeatures, ReferenceFeatures, ReferenceShot,
};
use super::postprocess::{Prediction, postprocess};
use super::prompts::{
    self, CategoryPrompts, Geometry, GridPrompting, MatcherPrompting, SoftPrompting,
};

/// Which algorithm, with its prompting parameters.
#[derive(Clone, Copy, Debug)]
pub enum AlgorithmSettings {
    Matcher(MatcherPrompting),
    SoftMatcher(SoftPrompting),
    PerDino(GridPrompting),
}

/// A reference image and the object masks drawn on it, each with its category id.
pub struct ReferenceImage<'a> {
    pub image: RgbImage<'a>,
    pub masks: Vec<(u32, MaskView<'a>)>,
}

/// Every intermediate of one prediction, for tests and diagnostics.
#[derive(Clone, Debug)]
pub struct Trace {
    pub features: PatchFeatures,
    pub prompts: Vec<CategoryPrompts>,
    /// Decoded candidates at the original image size, before post-processing (empty from
    /// [`VisualPrompter::predict`]).
    pub candidates: Vec<Candidate>,
    pub predictions: Vec<Prediction>,
    pub timings: StageTimes,
}

/// Wall time of each stage of one prediction.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageTimes {
    /// Target image → patch features.
    pub encoder: Duration,
    /// Features → point prompts.
    pub prompts: Duration,
    /// Segmenter: image embedding, prompt decoding, mask upsampling and scoring.
    pub segmenter: Duration,
    /// Score filter, NMS, boxes.
    pub postprocess: Duration,
}

pub struct VisualPrompter {
    encoder: Arc<FeatureEncoder>,
    sam: Arc<Sam>,
    algorithm: AlgorithmSettings,
    decode: DecodeOptions,
    references: Option<ReferenceFeatures>,
}

impl VisualPrompter {
    pub fn new(
        encoder: Arc<FeatureEncoder>,
        sam: Arc<Sam>,
        algorithm: AlgorithmSettings,
        decode: DecodeOptions,
    ) -> Self {
        Self {
            encoder,
            sam,
            algorithm,
            decode,
            references: None,
        }
    }

    pub fn sam(&self) -> &Arc<Sam> {
        &self.sam
    }

    pub fn references(&self) -> Option<&ReferenceFeatures> {
        self.references.as_ref()
    }

    /// Learns the categories from `shots`. A category whose masks are all too small to cover a
    /// whole encoder patch falls back to the patches its masks cover at least half of.
    pub fn fit(&mut self, shots: &[ReferenceImage<'_>]) -> Result<(), DetectError> {
        if shots.iter().all(|s| s.masks.is_empty()) {
            return Err(DetectError::InvalidReferences(
                "no reference mask to learn from".into(),
            ));
        }
        let (input, patch) = (self.encoder.input_size(), self.encoder.patch_size());
        let feats: Vec<PatchFeatures> = shots
            .iter()
            .map(|s| self.encoder.encode(s.image))
            .collect::<Result<_, _>>()?;
        let mut pooled: Vec<Vec<(u32, Vec<f32>)>> = shots
            .iter()
            .map(|s| features::pool_category_masks(&s.masks, input, patch, features::pool_mask))
            .collect();
        // Categories with no fully covered patch anywhere: pool them by coverage instead.
        let mut ids: Vec<u32> = pooled.iter().flatten().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let covered = pooled
                .iter()
                .flatten()
                .filter(|(c, _)| *c == id)
                .any(|(_, m)| m.iter().any(|&v| v != 0.0));
            if covered {
                continue;
            }
            for (shot, p) in shots.iter().zip(pooled.iter_mut()) {
                let mine: Vec<(u32, MaskView<'_>)> = shot
                    .masks
                    .iter()
                    .filter(|(c, _)| *c == id)
                    .copied()
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let fallback = features::pool_category_masks(
                    &mine,
                    input,
                    patch,
                    features::pool_mask_by_coverage,
                );
                for (c, m) in p.iter_mut() {
                    if *c == id {
                        *m = fallback[0].1.clone();
                    }
                }
            }
        }
        let refs: Vec<ReferenceShot<'_>> = feats
            .iter()
            .zip(pooled)
            .map(|(f, pooled_masks)| ReferenceShot {
                features: f,
                pooled_masks,
            })
            .collect();
        let references = features::reference_features(&refs);
        if references.categories.iter().all(|c| c.prototype.is_none()) {
            return Err(DetectError::InvalidReferences(
                "every reference mask is empty".into(),
            ));
        }
        self.references = Some(references);
        Ok(())
    }

    /// Detections on `image`.
    pub fn predict(&self, image: RgbImage<'_>) -> Result<Vec<Prediction>, DetectError> {
        Ok(self.run(image, false)?.predictions)
    }

    /// Detections on `image` with every intermediate.
    pub fn predict_traced(&self, image: RgbImage<'_>) -> Result<Trace, DetectError> {
        self.run(image, true)
    }

    /// One prediction; the candidates before post-processing are kept only when asked for.
    fn run(&self, image: RgbImage<'_>, keep_candidates: bool) -> Result<Trace, DetectError> {
        let refs = self.references.as_ref().ok_or(DetectError::NotFitted)?;
        let mut timings = StageTimes::default();
        let t0 = Instant::now();
        let target = self.encoder.encode(image)?;
        timings.encoder = t0.elapsed();
        let t0 = Instant::now();
        let geo = Geometry {
            input_size: self.encoder.input_size(),
            patch_size: self.encoder.patch_size(),
            grid: target.rows,
            image_size: (image.height, image.width),
        };
        let prompts: Vec<CategoryPrompts> = refs
            .categories
            .iter()
            .map(|cat| match &self.algorithm {
                AlgorithmSettings::Matcher(p) => prompts::matcher_prompts(cat, &target, &geo, p),
                AlgorithmSettings::SoftMatcher(p) => {
                    prompts::soft_matcher_prompts(cat, &target, &geo, p)
                }
                AlgorithmSettings::PerDino(p) => prompts::grid_prompts(cat, &target, &geo, p),
            })
            .collect::<Result<_, _>>()?;
        timings.prompts = t0.elapsed();
        let t0 = Instant::now();
        let candidates = if prompts.iter().all(|p| p.foreground.is_empty()) {
            Vec::new()
        } else {
            let prepared = decode::prepare(&self.sam, image)?;
            self.decode_all(&prepared, &prompts, (target.rows, target.cols))?
        };
        timings.segmenter = t0.elapsed();
        let t0 = Instant::now();
        let (predictions, candidates) = if keep_candidates {
            (postprocess(candidates.clone()), candidates)
        } else {
            (postprocess(candidates), Vec::new())
        };
        timings.postprocess = t0.elapsed();
        Ok(Trace {
            features: target,
            prompts,
            candidates,
            predictions,
            timings,
        })
    }

    fn decode_all(
        &self,
        prepared: &PreparedImage,
        prompts: &[CategoryPrompts],
        grid: (usize, usize),
    ) -> Result<Vec<Candidate>, DetectError> {
        let mut out = Vec::new();
        for p in prompts {
            out.extend(decode::decode_category(
                &self.sam,
                prepared,
                p,
                grid,
                &self.decode,
            )?);
        }
        if prepared.scale < 1.0 {
            let (h, w) = prepared.original_size;
            for c in &mut out {
                c.mask = c.mask.resize_nearest(h, w);
            }
        }
        Ok(out)
    }
}
