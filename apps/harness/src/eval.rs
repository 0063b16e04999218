//! The evaluation protocol: per class, `k` reference images drawn with a seed fit a detector;
//! every other image of the class is a target. Detections of the class are scored against its
//! mask ([`crate::metrics`]) and each target's detection time is recorded.

use std::sync::Arc;
use std::time::Instant;

use visprompt_domain::{LabelId, ModelConfig, Shape};
use visprompt_runtime::{BitMask, DetectorFactory, Reference, ReferenceAnnotation, RgbImage};

use crate::datasets::{Dataset, Sample};
use crate::metrics::{GroundTruth, Metrics, Predicted, Report};

#[derive(Clone, Copy, Debug)]
pub struct Protocol {
    /// References per class.
    pub shots: usize,
    /// Seed of the reference draw.
    pub seed: u64,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub report: Report,
    /// Class names, by class id (the index in the dataset).
    pub class_names: Vec<String>,
    /// Detection time of each target, milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Fitting time of each class's detector, milliseconds.
    pub fit_ms: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {message}")]
    Image { path: String, message: String },
    #[error("class {class}: {shots} reference(s) asked for, but it has only {images} image(s)")]
    TooFewImages {
        class: String,
        shots: usize,
        images: usize,
    },
    #[error("class {class}: the detector cannot be built: {message}")]
    Detector { class: String, message: String },
}

fn load_image(path: &std::path::Path) -> Result<RgbImage, EvalError> {
    let err = |message: String| EvalError::Image {
        path: path.display().to_string(),
        message,
    };
    let img = image::open(path).map_err(|e| err(e.to_string()))?.to_rgb8();
    let (w, h) = img.dimensions();
    RgbImage::from_raw(w, h, img.into_raw()).map_err(|e| err(e.to_string()))
}

fn load_mask(sample: &Sample) -> Result<BitMask, EvalError> {
    sample.mask.load().map_err(|e| EvalError::Image {
        path: sample.mask.describe(),
        message: e.to_string(),
    })
}

/// Indices `0..n` shuffled by `seed` (Fisher–Yates on SplitMix64): the same on every machine.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Runs `model` from `factory` over `dataset`; `progress(done, total)` after each target.
pub fn evaluate(
    dataset: &Dataset,
    factory: &dyn DetectorFactory,
    model: &ModelConfig,
    protocol: Protocol,
    mut progress: impl FnMut(usize, usize),
) -> Result<Outcome, EvalError> {
    let total: usize = dataset
        .classes
        .iter()
        .map(|c| c.samples.len().saturating_sub(protocol.shots))
        .sum();
    let mut done = 0;
    let mut metrics = Metrics::default();
    let mut latencies_ms = Vec::with_capacity(total);
    let mut fit_ms = Vec::new();
    for (class_id, class) in dataset.classes.iter().enumerate() {
        if class.samples.len() <= protocol.shots {
            return Err(EvalError::TooFewImages {
                class: class.name.clone(),
                shots: protocol.shots,
                images: class.samples.len(),
            });
        }
        let order = shuffled(class.samples.len(), protocol.seed ^ class_id as u64);
        let (refs, targets): (Vec<usize>, Vec<usize>) = (
            order[..protocol.shots].to_vec(),
            order[protocol.shots..].to_vec(),
        );
        let label = LabelId::new();
        let references = refs
            .iter()
            .map(|&i| reference(&class.samples[i], label))
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let mut detector = factory
            .build(model, &references)
            .map_err(|e| EvalError::Detector {
                class: class.name.clone(),
                message: e.to_string(),
            })?;
        fit_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let mut targets = targets;
        targets.sort_unstable();
        for i in targets {
            let sample = &class.samples[i];
            let image = load_image(&sample.image)?;
            let truth = load_mask(sample)?;
            let started = Instant::now();
            let detections = detector.detect(&image).map_err(|e| EvalError::Detector {
                class: class.name.clone(),
                message: e.to_string(),
            })?;
            latencies_ms.push(started.elapsed().as_secs_f64() * 1e3);
            let predicted: Vec<Predicted<'_>> = detections
                .iter()
                .filter(|d| d.label_id == label)
                .map(|d| Predicted {
                    class: class_id as u32,
                    score: d.score,
                    mask: &d.mask,
                })
                .collect();
            metrics.add_image(
                image.width(),
                image.height(),
                &[GroundTruth {
                    class: class_id as u32,
                    mask: &truth,
                }],
                &predicted,
            );
            done += 1;
            progress(done, total);
        }
    }
    Ok(Outcome {
        report: metrics.report(),
        class_names: dataset.classes.iter().map(|c| c.name.clone()).collect(),
        latencies_ms,
        fit_ms,
    })
}

fn reference(sample: &Sample, label: LabelId) -> Result<Reference, EvalError> {
    let image = load_image(&sample.image)?;
    let mask = load_mask(sample)?;
    if (mask.width(), mask.height()) != (image.width(), image.height()) {
        return Err(EvalError::Image {
            path: sample.mask.describe(),
            message: format!(
                "{}x{} mask for a {}x{} image",
                mask.width(),
                mask.height(),
                image.width(),
                image.height()
            ),
        });
    }
    Ok(Reference {
        image: Arc::new(image),
        annotations: vec![ReferenceAnnotation {
            label_id: label,
            shape: Shape::Mask(mask.to_rle()),
            mask,
        }],
    })
}

/// The `p`-th percentile (0–100) by nearest rank; `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_draw_is_a_seeded_permutation() {
        let a = shuffled(10, 42);
        assert_eq!(a, shuffled(10, 42));
        assert_ne!(a, shuffled(10, 43));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 95.0), Some(5.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
