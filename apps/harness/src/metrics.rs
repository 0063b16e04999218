//! Segmentation and detection metrics accumulated image by image.
//!
//! Per class, over the images where the predicted or the true mask of the class is non-empty:
//! - **cumulative IoU**: Σ intersection / Σ union over those images (PerSAM's and Matcher's
//!   evaluation; large objects weigh more);
//! - **per-image IoU**: the mean of each image's IoU (torchmetrics' `MeanIoU` as the reference
//!   system uses it; every image weighs the same).
//!
//! mIoU is the mean over classes. **FB-IoU** is the mean of the foreground IoU (all classes
//! merged) and the background IoU, both cumulative over the images. **Precision and recall at
//! IoU 0.5** match each prediction, best score first, to the unmatched true instance of its class
//! with the highest mask IoU, if that IoU is at least 0.5.

use std::collections::BTreeMap;

use visprompt_runtime::BitMask;

/// IoU at which a predicted instance counts as finding a true one.
pub const MATCH_IOU: f64 = 0.5;

/// One true instance.
#[derive(Clone, Copy, Debug)]
pub struct GroundTruth<'a> {
    pub class: u32,
    pub mask: &'a BitMask,
}

/// One predicted instance.
#[derive(Clone, Copy, Debug)]
pub struct Predicted<'a> {
    pub class: u32,
    pub score: f32,
    pub mask: &'a BitMask,
}

#[derive(Clone, Copy, Debug, Default)]
struct ClassTotals {
    intersection: u64,
    union: u64,
    image_iou_sum: f64,
    images: u64,
    true_positives: u64,
    false_positives: u64,
    false_negatives: u64,
}

/// Totals over the images added so far.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    classes: BTreeMap<u32, ClassTotals>,
    fg: (u64, u64),
    bg: (u64, u64),
}

/// One class's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassReport {
    pub class: u32,
    /// Images where the class was predicted or present.
    pub images: u64,
    pub iou_cumulative: f64,
    pub iou_per_image: f64,
    /// `None` without any prediction of the class.
    pub precision: Option<f64>,
    /// `None` without any true instance of the class.
    pub recall: Option<f64>,
}

/// The figures over all images.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub classes: Vec<ClassReport>,
    /// Mean of the classes' cumulative IoU; `None` with no class seen.
    pub miou_cumulative: Option<f64>,
    /// Mean of the classes' per-image IoU.
    pub miou_per_image: Option<f64>,
    pub fb_iou: Option<f64>,
    /// Over all classes' instances.
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// The union of `masks`, or an empty mask of the given size.
fn union_of<'a>(masks: impl Iterator<Item = &'a BitMask>, width: u32, height: u32) -> BitMask {
    let mut out = BitMask::new(width, height);
    for m in masks {
        out.union_with(m);
    }
    out
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

impl Metrics {
    /// Adds one image of `width × height` pixels. Every mask must be that size.
    pub fn add_image(
        &mut self,
        width: u32,
        height: u32,
        truth: &[GroundTruth<'_>],
        predicted: &[Predicted<'_>],
    ) {
        let same_size = |m: &BitMask| m.width() == width && m.height() == height;
        assert!(
            truth.iter().all(|t| same_size(t.mask)) && predicted.iter().all(|p| same_size(p.mask)),
            "every mask is the image's size"
        );
        let pixels = u64::from(width) * u64::from(height);
        // Foreground and background, classes merged.
        let all_pred = union_of(predicted.iter().map(|p| p.mask), width, height);
        let all_true = union_of(truth.iter().map(|t| t.mask), width, height);
        let inter = all_pred.intersection_area(&all_true);
        let union = all_pred.area() + all_true.area() - inter;
        self.fg.0 += inter;
        self.fg.1 += union;
        self.bg.0 += pixels - union;
        self.bg.1 += pixels - inter;

        let mut classes: Vec<u32> = truth
            .iter()
            .map(|t| t.class)
            .chain(predicted.iter().map(|p| p.class))
            .collect();
        classes.sort_unstable();
        classes.dedup();
        for class in classes {
            let mine_true: Vec<&BitMask> = truth
                .iter()
                .filter(|t| t.class == class)
                .map(|t| t.mask)
                .collect();
            let mut mine_pred: Vec<&Predicted<'_>> =
                predicted.iter().filter(|p| p.class == class).collect();
            let p = union_of(mine_pred.iter().map(|p| p.mask), width, height);
            let t = union_of(mine_true.iter().copied(), width, height);
            let inter = p.intersection_area(&t);
            let union = p.area() + t.area() - inter;
            let totals = self.classes.entry(class).or_default();
            if union > 0 {
                totals.intersection += inter;
                totals.union += union;
                totals.image_iou_sum += inter as f64 / union as f64;
                totals.images += 1;
            }
            // Instances: best score first, each true instance found at most once.
            mine_pred.sort_by(|a, b| b.score.total_cmp(&a.score));
            let mut found = vec![false; mine_true.len()];
            for pred in mine_pred {
                let best = mine_true
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !found[*i])
                    .map(|(i, t)| (i, pred.mask.iou(t)))
                    .filter(|(_, iou)| *iou >= MATCH_IOU)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match best {
                    Some((i, _)) => {
                        found[i] = true;
                        totals.true_positives += 1;
                    }
                    None => totals.false_positives += 1,
                }
            }
            totals.false_negatives += found.iter().filter(|f| !**f).count() as u64;
        }
    }

    pub fn report(&self) -> Report {
        let classes: Vec<ClassReport> = self
            .classes
            .iter()
            .filter(|(_, t)| {
                t.images > 0 || t.true_positives + t.false_positives + t.false_negatives > 0
            })
            .map(|(&class, t)| ClassReport {
                class,
                images: t.images,
                iou_cumulative: ratio(t.intersection, t.union).unwrap_or(0.0),
                iou_per_image: if t.images > 0 {
                    t.image_iou_sum / t.images as f64
                } else {
                    0.0
                },
                precision: ratio(t.true_positives, t.true_positives + t.false_positives),
                recall: ratio(t.true_positives, t.true_positives + t.false_negatives),
            })
            .collect();
        let seen = || classes.iter().filter(|c| c.images > 0);
        let (tp, fp, fneg) = self.classes.values().fold((0, 0, 0), |(a, b, c), t| {
            (
                a + t.true_positives,
                b + t.false_positives,
                c + t.false_negatives,
            )
        });
        let fb = match (ratio(self.fg.0, self.fg.1), ratio(self.bg.0, self.bg.1)) {
            (Some(f), Some(b)) => Some((f + b) / 2.0),
            (f, b) => f.or(b),
        };
        Report {
            miou_cumulative: mean(seen().map(|c| c.iou_cumulative)),
            miou_per_image: mean(seen().map(|c| c.iou_per_image)),
            fb_iou: fb,
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fneg),
            classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w × h` mask with the pixels where `f(x, y)` holds.
    fn mask(w: u32, h: u32, f: impl Fn(u32, u32) -> bool) -> BitMask {
        BitMask::from_fn(w, h, f)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn a_perfect_prediction_scores_one_everywhere() {
        let object = mask(8, 6, |x, y| (2..5).contains(&x) && (1..4).contains(&y));
        let mut m = Metrics::default();
        m.add_image(
            8,
            6,
            &[GroundTruth {
                class: 1,
                mask: &object,
            }],
            &[Predicted {
                class: 1,
                score: 0.9,
                mask: &object,
            }],
        );
        let r = m.report();
        assert!(close(r.miou_cumulative, 1.0) && close(r.miou_per_image, 1.0));
        assert!(close(r.fb_iou, 1.0));
        assert!(close(r.precision, 1.0) && close(r.recall, 1.0));
    }

    #[test]
    fn an_empty_prediction_scores_zero_and_finds_nothing() {
        let object = mask(4, 4, |x, _| x < 2); // 8 of 16 pixels
        let mut m = Metrics::default();
        m.add_image(
            4,
            4,
            &[GroundTruth {
                class: 3,
                mask: &object,
            }],
            &[],
        );
        let r = m.report();
        assert!(close(r.miou_cumulative, 0.0));
        // Foreground IoU 0; background: nothing predicted, 8 true background pixels of 16.
        assert!(close(r.fb_iou, (0.0 + 8.0 / 16.0) / 2.0));
        assert_eq!(r.precision, None, "no prediction");
        assert!(close(r.recall, 0.0));
    }

    #[test]
    fn a_known_overlap_gives_its_hand_computed_iou() {
        // Left half against top half of a 4x4 image: 4 shared pixels, 12 in the union.
        let truth = mask(4, 4, |x, _| x < 2);
        let pred = mask(4, 4, |_, y| y < 2);
        let mut m = Metrics::default();
        m.add_image(
            4,
            4,
            &[GroundTruth {
                class: 0,
                mask: &truth,
            }],
            &[Predicted {
                class: 0,
                score: 1.0,
                mask: &pred,
            }],
        );
        let r = m.report();
        assert!(close(r.miou_cumulative, 4.0 / 12.0));
        // Background: right half against bottom half, the same geometry.
        assert!(close(r.fb_iou, 4.0 / 12.0));
        // IoU 1/3 < 0.5: a false positive and a missed instance.
        assert!(close(r.precision, 0.0) && close(r.recall, 0.0));
    }

    #[test]
    fn cumulative_and_per_image_iou_weigh_images_differently() {
        let big = mask(10, 1, |_, _| true); // 10 pixels, predicted exactly
        let small = mask(10, 1, |x, _| x < 2); // 2 pixels, missed
        let none = BitMask::new(10, 1);
        let mut m = Metrics::default();
        m.add_image(
            10,
            1,
            &[GroundTruth {
                class: 0,
                mask: &big,
            }],
            &[Predicted {
                class: 0,
                score: 1.0,
                mask: &big,
            }],
        );
        m.add_image(
            10,
            1,
            &[GroundTruth {
                class: 0,
                mask: &small,
            }],
            &[],
        );
        // An image where the class is neither present nor predicted does not count.
        m.add_image(
            10,
            1,
            &[GroundTruth {
                class: 1,
                mask: &none,
            }],
            &[],
        );
        let r = m.report();
        let c0 = r.classes.iter().find(|c| c.class == 0).unwrap();
        assert_eq!(c0.images, 2);
        assert!((c0.iou_cumulative - 10.0 / 12.0).abs() < 1e-12);
        assert!((c0.iou_per_image - 0.5).abs() < 1e-12);
    }

    #[test]
    fn instances_match_once_each_best_score_first() {
        let a = mask(20, 4, |x, _| x < 5);
        let b = mask(20, 4, |x, _| (10..15).contains(&x));
        // Shares 2 of its 5 columns with b: IoU 8/32 = 0.25.
        let off_b = mask(20, 4, |x, _| (13..18).contains(&x));
        let mut m = Metrics::default();
        m.add_image(
            20,
            4,
            &[
                GroundTruth { class: 2, mask: &a },
                GroundTruth { class: 2, mask: &b },
            ],
            &[
                Predicted {
                    class: 2,
                    score: 0.9,
                    mask: &a,
                },
                Predicted {
                    class: 2,
                    score: 0.5,
                    mask: &a,
                }, // a duplicate
                Predicted {
                    class: 2,
                    score: 0.7,
                    mask: &off_b,
                },
            ],
        );
        let r = m.report();
        // One hit (a), two false positives (the duplicate, the poor b), b missed.
        assert!(close(r.precision, 1.0 / 3.0));
        assert!(close(r.recall, 1.0 / 2.0));
        // A prediction of another class never matches.
        let mut m = Metrics::default();
        m.add_image(
            20,
            4,
            &[GroundTruth { class: 2, mask: &a }],
            &[Predicted {
                class: 5,
                score: 0.9,
                mask: &a,
            }],
        );
        let r = m.report();
        assert!(close(r.precision, 0.0) && close(r.recall, 0.0));
    }
}
