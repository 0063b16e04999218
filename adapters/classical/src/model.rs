//! Fitting: per label, histograms of the colour bins and texture codes of its annotated pixels,
//! and one background model from the reference pixels outside every annotation. Detection then
//! asks, for each neighbourhood of a frame, which of these classes explains it best.

use std::collections::BTreeMap;

use visprompt_domain::{LabelId, Shape};
use visprompt_runtime::{BitMask, DetectorError, Reference};

use crate::features::{
    COLOUR_BINS, FEATURE_CODES, FeatureCodes, TEXTURE_CODES, colour_of, smooth_colour_histogram,
    texture_of,
};

/// Share of every class's probability spread evenly over all bins: a colour never seen in the
/// references is then equally (un)likely under every class instead of favouring the class with
/// fewer samples.
const UNIFORM_SHARE: f64 = 0.02;

/// Texture counts less than colour: the gradient codes of a single pixel are noisier.
const TEXTURE_WEIGHT: f32 = 0.6;

/// A negative click marks a disc of this radius as background, weighted like this many pixels
/// each, so the user's correction outweighs the bulk of the frame.
const NEGATIVE_RADIUS: i64 = 6;
const NEGATIVE_WEIGHT: f64 = 20.0;

/// Counts of colour bins and texture codes of one class's pixels.
#[derive(Clone)]
struct Histogram {
    colour: Vec<f64>,
    texture: Vec<f64>,
}

impl Histogram {
    fn new() -> Self {
        Self {
            colour: vec![0.0; COLOUR_BINS],
            texture: vec![0.0; TEXTURE_CODES],
        }
    }

    fn add(&mut self, code: u16, weight: f64) {
        self.colour[colour_of(code)] += weight;
        self.texture[texture_of(code)] += weight;
    }

    /// Smoothed colour probabilities.
    fn colour_probabilities(&self) -> Vec<f64> {
        let mut colour = self.colour.clone();
        smooth_colour_histogram(&mut colour);
        normalise(&mut colour);
        colour
    }

    fn texture_probabilities(&self) -> Vec<f64> {
        let mut texture = self.texture.clone();
        normalise(&mut texture);
        texture
    }
}

fn normalise(histogram: &mut [f64]) {
    let total: f64 = histogram.iter().sum();
    let uniform = 1.0 / histogram.len() as f64;
    for p in histogram.iter_mut() {
        let observed = if total > 0.0 { *p / total } else { uniform };
        *p = (1.0 - UNIFORM_SHARE) * observed + UNIFORM_SHARE * uniform;
    }
}

/// What detection needs of one class: the log-likelihood of every feature code, and of every
/// colour bin alone (for refining masks pixel by pixel).
pub(crate) struct ClassModel {
    /// `ln p(colour) + TEXTURE_WEIGHT * ln p(texture)`, indexed by feature code.
    pub(crate) code_log_likelihood: Vec<f32>,
    pub(crate) colour_likelihood: Vec<f64>,
}

impl ClassModel {
    fn from_histogram(histogram: &Histogram) -> Self {
        let colour = histogram.colour_probabilities();
        let texture = histogram.texture_probabilities();
        let code_log_likelihood = (0..FEATURE_CODES)
            .map(|code| {
                let code = code as u16;
                colour[colour_of(code)].ln() as f32
                    + TEXTURE_WEIGHT * texture[texture_of(code)].ln() as f32
            })
            .collect();
        Self {
            code_log_likelihood,
            colour_likelihood: colour,
        }
    }
}

pub(crate) struct LabelModel {
    pub(crate) label_id: LabelId,
    pub(crate) class: ClassModel,
    /// The smallest annotated instance, as a share of its reference frame's pixels.
    pub(crate) smallest_area_share: f64,
}

/// Everything fitted from the references.
pub(crate) struct FittedModels {
    pub(crate) background: ClassModel,
    /// In label id order, so output order does not depend on annotation order.
    pub(crate) labels: Vec<LabelModel>,
}

/// Fits one model per label with at least one usable annotation, and the background model.
/// An annotation is unusable when its mask is empty or not the size of its frame.
pub(crate) fn fit(references: &[Reference]) -> Result<FittedModels, DetectorError> {
    let mut labels: BTreeMap<LabelId, (Histogram, f64)> = BTreeMap::new();
    let mut background = Histogram::new();
    for reference in references {
        let image = &reference.image;
        let (w, h) = (image.width(), image.height());
        let usable: Vec<_> = reference
            .annotations
            .iter()
            .filter(|a| {
                let fits = a.mask.width() == w && a.mask.height() == h;
                if !fits {
                    tracing::warn!(
                        message = "Skipping an annotation whose mask does not match its frame.",
                        label_id = %a.label_id,
                        mask = ?(a.mask.width(), a.mask.height()),
                        frame = ?(w, h),
                    );
                }
                fits && a.mask.area() > 0
            })
            .collect();
        if usable.is_empty() {
            continue;
        }
        let features = FeatureCodes::of(image);
        let mut covered = BitMask::new(w, h);
        for annotation in &usable {
            let (histogram, smallest) = labels
                .entry(annotation.label_id)
                .or_insert_with(|| (Histogram::new(), f64::INFINITY));
            let mask = annotation.mask.as_bytes();
            for (&code, &on) in features.codes.iter().zip(mask) {
                if on != 0 {
                    histogram.add(code, 1.0);
                }
            }
            let share = annotation.mask.area() as f64 / (f64::from(w) * f64::from(h));
            *smallest = smallest.min(share);
            covered.union_with(&annotation.mask);
        }
        for (&code, &on) in features.codes.iter().zip(covered.as_bytes()) {
            if on == 0 {
                background.add(code, 1.0);
            }
        }
        for annotation in &usable {
            add_negative_points(&mut background, &annotation.shape, &features, w, h);
        }
    }
    if labels.is_empty() {
        return Err(DetectorError::InvalidReferences(
            "no reference annotation marks any pixel of its frame".into(),
        ));
    }
    Ok(FittedModels {
        background: ClassModel::from_histogram(&background),
        labels: labels
            .into_iter()
            .map(|(label_id, (histogram, smallest))| LabelModel {
                label_id,
                class: ClassModel::from_histogram(&histogram),
                smallest_area_share: smallest,
            })
            .collect(),
    })
}

fn add_negative_points(
    background: &mut Histogram,
    shape: &Shape,
    features: &FeatureCodes,
    w: u32,
    h: u32,
) {
    let Shape::Points(points) = shape else {
        return;
    };
    let (w, h) = (i64::from(w), i64::from(h));
    for (point, _) in points.iter().filter(|(_, positive)| !positive) {
        let (cx, cy) = (point.x.floor() as i64, point.y.floor() as i64);
        for y in (cy - NEGATIVE_RADIUS).max(0)..(cy + NEGATIVE_RADIUS + 1).min(h) {
            for x in (cx - NEGATIVE_RADIUS).max(0)..(cx + NEGATIVE_RADIUS + 1).min(w) {
                let (dx, dy) = (x - cx, y - cy);
                if dx * dx + dy * dy <= NEGATIVE_RADIUS * NEGATIVE_RADIUS {
                    background.add(features.codes[(y * w + x) as usize], NEGATIVE_WEIGHT);
                }
            }
        }
    }
}
