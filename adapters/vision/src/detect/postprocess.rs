//! The reference's default post-processing: drop zero scores, then class-agnostic greedy
//! non-maximum suppression by intersection over the *smaller* area (IoM), first on masks, then
//! on boxes; each detection's box is the tight box of its mask.

use super::decode::Candidate;
use super::raster::BinaryMask;

/// A detection after post-processing; `bbox` is `(x1, y1, x2, y2)` with inclusive pixel indices.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub category: u32,
    pub score: f32,
    pub mask: BinaryMask,
    pub bbox: (usize, usize, usize, usize),
}

/// Overlap above which the lower-scored of two detections is suppressed.
pub const IOM_THRESHOLD: f32 = 0.5;

/// Indices kept by greedy NMS: by descending score (ties in input order), each kept detection
/// suppresses the later ones whose overlap with it exceeds `threshold`.
fn greedy_nms(scores: &[f32], overlap: impl Fn(usize, usize) -> f32, threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut suppressed = vec![false; scores.len()];
    let mut kept = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        kept.push(i);
        for &j in &order[k + 1..] {
            if !suppressed[j] && overlap(i, j) > threshold {
                suppressed[j] = true;
            }
        }
    }
    kept
}

fn box_area(b: (usize, usize, usize, usize)) -> f32 {
    (b.2 as f32 - b.0 as f32).max(0.0) * (b.3 as f32 - b.1 as f32).max(0.0)
}

/// Score filter, mask IoM-NMS, box IoM-NMS, boxes from masks.
pub fn postprocess(candidates: Vec<Candidate>) -> Vec<Prediction> {
    let mut c: Vec<Candidate> = candidates.into_iter().filter(|c| c.score > 0.0).collect();
    if c.len() > 1 {
        let areas: Vec<f32> = c.iter().map(|c| c.mask.area() as f32).collect();
        let scores: Vec<f32> = c.iter().map(|c| c.score).collect();
        let kept = greedy_nms(
            &scores,
            |i, j| c[i].mask.intersection(&c[j].mask) as f32 / (areas[i].min(areas[j]) + 1e-6),
            IOM_THRESHOLD,
        );
        c = select(c, &kept);
    }
    if c.len() > 1 {
        let boxes: Vec<(usize, usize, usize, usize)> =
            c.iter().map(|c| bounds_or_zero(&c.mask)).collect();
        let scores: Vec<f32> = c.iter().map(|c| c.score).collect();
        let kept = greedy_nms(
            &scores,
            |i, j| {
                let (a, b) = (boxes[i], boxes[j]);
                let iw = (a.2.min(b.2) as f32 - a.0.max(b.0) as f32).max(0.0);
                let ih = (a.3.min(b.3) as f32 - a.1.max(b.1) as f32).max(0.0);
                iw * ih / (box_area(a).min(box_area(b)) + 1e-6)
            },
            IOM_THRESHOLD,
        );
        c = select(c, &kept);
    }
    c.into_iter()
        .map(|c| Prediction {
            category: c.category,
            score: c.score,
            bbox: bounds_or_zero(&c.mask),
            mask: c.mask,
        })
        .collect()
}

/// The mask's box; an empty mask (possible after a refinement pass) gets the reference's
/// sentinel-free equivalent, an empty box at the origin.
fn bounds_or_zero(mask: &BinaryMask) -> (usize, usize, usize, usize) {
    mask.bounds().unwrap_or((0, 0, 0, 0))
}

fn select(items: Vec<Candidate>, kept: &[usize]) -> Vec<Candidate> {
    let mut slots: Vec<Option<Candidate>> = items.into_iter().map(Some).collect();
    kept.iter().filter_map(|&i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(score: f32, x0: usize, x1: usize) -> Candidate {
        Candidate {
            category: 0,
            score,
            mask: BinaryMask::from_fn(20, 4, |i| (x0..x1).contains(&(i % 20))),
        }
    }

    #[test]
    fn zero_scores_go_and_contained_masks_are_suppressed() {
        let out = postprocess(vec![
            cand(0.0, 0, 5),
            cand(0.6, 0, 10),
            // Inside the first: IoM 1.
            cand(0.5, 2, 4),
            // Apart.
            cand(0.4, 12, 18),
        ]);
        let scores: Vec<f32> = out.iter().map(|p| p.score).collect();
        assert_eq!(scores, vec![0.6, 0.4]);
        assert_eq!(out[0].bbox, (0, 0, 9, 3));
    }
}
