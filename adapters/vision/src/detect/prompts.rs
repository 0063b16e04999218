//! Prompt generators: where on a target image to ask the segmenter for an object, from the
//! similarity of its patch features to a category's reference features.
//!
//! - [`matcher_prompts`]: bidirectional one-to-one matching (two linear sum assignments) between
//!   in-mask reference patches and target patches (Matcher).
//! - [`soft_matcher_prompts`]: a soft (softmax) correspondence score per target patch instead of
//!   the hard assignment (SoftMatcher).
//! - [`grid_prompts`]: the best cell of a grid over the cosine-similarity map of the category's
//!   prototype (PerDINO).
//!
//! Each returns foreground points (best first) and background points (least similar first) in
//! pixel coordinates of the target, plus the similarity map the decoder scores masks with.
//! Coordinates, rounding and tie-breaking follow the reference library so that the same features
//! give the same points.

use candle_core::{Device, Tensor};

use super::DetectError;
use super::features::{CategoryReference, PatchFeatures};
use super::lsa::linear_sum_assignment;

/// A prompt point in target pixel coordinates, with the score that ranked it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PromptPoint {
    pub x: f32,
    pub y: f32,
    pub score: f32,
}

/// The prompts for one category on one target image.
#[derive(Clone, Debug)]
pub struct CategoryPrompts {
    pub category: u32,
    pub foreground: Vec<PromptPoint>,
    pub background: Vec<PromptPoint>,
    /// `grid × grid` similarity map, row-major, used to score the masks.
    pub similarity: Vec<f32>,
}

/// Geometry shared by the generators.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Encoder input side (512).
    pub input_size: usize,
    pub patch_size: usize,
    /// Patches per side.
    pub grid: usize,
    /// Target image (height, width).
    pub image_size: (usize, usize),
}

impl Geometry {
    /// Centre of grid patch `index`, scaled to the image and rounded half to even (as
    /// `torch.round`), computed in `f32`.
    fn patch_centre(&self, index: usize) -> (f32, f32) {
        let (row, col) = (index / self.grid, index % self.grid);
        let half = (self.patch_size / 2) as f32;
        let x = col as f32 * self.patch_size as f32 + half;
        let y = row as f32 * self.patch_size as f32 + half;
        let sw = self.image_size.1 as f32 / self.input_size as f32;
        let sh = self.image_size.0 as f32 / self.input_size as f32;
        ((x * sw).round_ties_even(), (y * sh).round_ties_even())
    }
}

/// `a · bᵀ` for row-major `a [n × d]`, `b [m × d]` → `[n × m]`.
pub fn similarity_matrix(a: &[f32], b: &[f32], dim: usize) -> Result<Vec<f32>, DetectError> {
    let (n, m) = (a.len() / dim, b.len() / dim);
    if n == 0 || m == 0 {
        return Ok(Vec::new());
    }
    let ta = Tensor::from_slice(a, (n, dim), &Device::Cpu)?;
    let tb = Tensor::from_slice(b, (m, dim), &Device::Cpu)?;
    Ok(ta.matmul(&tb.t()?)?.flatten_all()?.to_vec1()?)
}

/// Indices sorted by value, best first (descending); equal values keep index order.
fn order_desc(values: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx
}

/// Indices sorted ascending by value; equal values keep index order.
fn order_asc(values: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    idx
}

/// Background points: the `k` target patches least similar on average to the in-mask reference
/// patches, least similar first.
fn background_points(
    sim: &[f32],
    n_target: usize,
    in_mask: &[usize],
    k: usize,
    geo: &Geometry,
) -> Vec<PromptPoint> {
    if in_mask.is_empty() || k == 0 {
        return Vec::new();
    }
    let mut avg = vec![0f32; n_target];
    for &r in in_mask {
        for (a, s) in avg.iter_mut().zip(&sim[r * n_target..(r + 1) * n_target]) {
            *a += s;
        }
    }
    for a in &mut avg {
        *a /= in_mask.len() as f32;
    }
    order_asc(&avg)
        .into_iter()
        .take(k.min(n_target))
        .map(|t| {
            let (x, y) = geo.patch_centre(t);
            PromptPoint {
                x,
                y,
                score: avg[t],
            }
        })
        .collect()
}

/// Keeps the best point of each cell of a `cells × cells` grid laid over the points' own
/// bounding range, cells in ascending order.
fn grid_cell_filter(points: &[PromptPoint], cells: usize) -> Vec<PromptPoint> {
    let fold = |f: fn(f32, f32) -> f32, init: f32, get: fn(&PromptPoint) -> f32| {
        points.iter().map(get).fold(init, f)
    };
    let (x_min, x_max) = (
        fold(f32::min, f32::INFINITY, |p| p.x),
        fold(f32::max, f32::NEG_INFINITY, |p| p.x),
    );
    let (y_min, y_max) = (
        fold(f32::min, f32::INFINITY, |p| p.y),
        fold(f32::max, f32::NEG_INFINITY, |p| p.y),
    );
    let cell_w = (x_max - x_min).max(1.0) / cells as f32;
    let cell_h = (y_max - y_min).max(1.0) / cells as f32;
    let last = cells as i64 - 1;
    let mut best: std::collections::BTreeMap<i64, PromptPoint> = Default::default();
    for p in points {
        let cx = (((p.x - x_min) / cell_w).floor() as i64).clamp(0, last);
        let cy = (((p.y - y_min) / cell_h).floor() as i64).clamp(0, last);
        let id = cy * cells as i64 + cx;
        match best.get(&id) {
            Some(b) if b.score >= p.score => {}
            _ => {
                best.insert(id, *p);
            }
        }
    }
    best.into_values().collect()
}

/// Grid filtering when there are more than `keep` points (and `cells > 0`), then the `keep` best.
fn filter_foreground(points: Vec<PromptPoint>, keep: usize, cells: usize) -> Vec<PromptPoint> {
    let points = if cells > 0 && points.len() > keep {
        grid_cell_filter(&points, cells)
    } else {
        points
    };
    let scores: Vec<f32> = points.iter().map(|p| p.score).collect();
    order_desc(&scores)
        .into_iter()
        .take(keep)
        .map(|i| points[i])
        .collect()
}

/// 3×3 local maxima of a `grid × grid` map (the centre equals the neighbourhood's maximum).
fn local_maxima(map: &[f32], grid: usize) -> Vec<bool> {
    let mut out = vec![false; map.len()];
    for r in 0..grid {
        for c in 0..grid {
            let mut m = f32::NEG_INFINITY;
            for rr in r.saturating_sub(1)..(r + 2).min(grid) {
                for cc in c.saturating_sub(1)..(c + 2).min(grid) {
                    m = m.max(map[rr * grid + cc]);
                }
            }
            out[r * grid + c] = map[r * grid + c] == m;
        }
    }
    out
}

/// `prototype · target` over the grid, or zeros without a prototype.
fn prototype_map(cat: &CategoryReference, target: &PatchFeatures) -> Result<Vec<f32>, DetectError> {
    match &cat.prototype {
        Some(p) => similarity_matrix(p, &target.data, target.dim),
        None => Ok(vec![0.0; target.len()]),
    }
}

/// What the two matching generators start from.
struct Similarities {
    dim: usize,
    /// Reference patches (padding included).
    n_ref: usize,
    n_target: usize,
    /// Prototype · target patches.
    local: Vec<f32>,
    /// Every reference patch · every target patch, `[n_ref × n_target]`.
    sim: Vec<f32>,
    /// In-mask reference patches.
    in_mask: Vec<usize>,
    background: Vec<PromptPoint>,
}

impl Similarities {
    fn of(
        cat: &CategoryReference,
        target: &PatchFeatures,
        geo: &Geometry,
        num_background: usize,
    ) -> Result<Self, DetectError> {
        let dim = target.dim;
        let n_target = target.len();
        let sim = similarity_matrix(&cat.ref_embeddings, &target.data, dim)?;
        let in_mask = cat.in_mask();
        let background = background_points(&sim, n_target, &in_mask, num_background, geo);
        Ok(Self {
            dim,
            n_ref: cat.n_ref(dim),
            n_target,
            local: prototype_map(cat, target)?,
            sim,
            in_mask,
            background,
        })
    }
}

/// Matcher's parameters for prompting.
#[derive(Clone, Copy, Debug)]
pub struct MatcherPrompting {
    pub num_foreground: usize,
    pub num_background: usize,
    /// Also use local maxima of the prototype similarity above this value.
    pub similarity_threshold: Option<f32>,
    pub num_grid_cells: usize,
}

/// Bidirectional matching: each in-mask reference patch is assigned a distinct target patch
/// (maximising total similarity); each of those target patches is assigned back a distinct
/// reference patch among all of them; a pair is kept when the way back lands inside the mask.
/// With no such pair, the single best forward match is kept.
pub fn matcher_prompts(
    cat: &CategoryReference,
    target: &PatchFeatures,
    geo: &Geometry,
    p: &MatcherPrompting,
) -> Result<CategoryPrompts, DetectError> {
    let Similarities {
        n_ref,
        n_target,
        local,
        sim,
        in_mask,
        background,
        ..
    } = Similarities::of(cat, target, geo, p.num_background)?;

    // (target patch, score) of the kept matches.
    let mut matches: Vec<(usize, f32)> = Vec::new();
    if !in_mask.is_empty() {
        let fw: Vec<f64> = in_mask
            .iter()
            .flat_map(|&r| {
                sim[r * n_target..(r + 1) * n_target]
                    .iter()
                    .map(|&v| f64::from(v))
            })
            .collect();
        let a = linear_sum_assignment(&fw, in_mask.len(), n_target, true);
        let fw_pairs: Vec<(usize, usize, f32)> = a
            .rows
            .iter()
            .zip(&a.cols)
            .map(|(&r, &t)| (in_mask[r], t, sim[in_mask[r] * n_target + t]))
            .collect();
        if !fw_pairs.is_empty() {
            let bw: Vec<f64> = fw_pairs
                .iter()
                .flat_map(|&(_, t, _)| (0..n_ref).map(move |r| (r, t)))
                .map(|(r, t)| f64::from(sim[r * n_target + t]))
                .collect();
            let b = linear_sum_assignment(&bw, fw_pairs.len(), n_ref, true);
            let is_in: Vec<bool> = cat.ref_mask.iter().map(|v| *v != 0.0).collect();
            for (&row, &col) in b.rows.iter().zip(&b.cols) {
                if is_in[col] {
                    let (_, t, s) = fw_pairs[row];
                    matches.push((t, s));
                }
            }
            if matches.is_empty() {
                // The first of the best forward matches.
                let best = fw_pairs
                    .iter()
                    .fold(None::<(usize, usize, f32)>, |acc, &m| match acc {
                        Some(b) if b.2 >= m.2 => Some(b),
                        _ => Some(m),
                    })
                    .expect("non-empty");
                matches.push((best.1, best.2));
            }
        }
    }
    if let Some(threshold) = p.similarity_threshold {
        let peaks = local_maxima(&local, geo.grid);
        let mut extra: Vec<usize> = (0..n_target)
            .filter(|&t| peaks[t] && local[t] > threshold && !matches.iter().any(|m| m.0 == t))
            .collect();
        if extra.len() > p.num_foreground {
            let scores: Vec<f32> = extra.iter().map(|&t| local[t]).collect();
            extra = order_desc(&scores)
                .into_iter()
                .take(p.num_foreground)
                .map(|i| extra[i])
                .collect();
        }
        matches.extend(extra.into_iter().map(|t| (t, local[t])));
    }
    let foreground: Vec<PromptPoint> = matches
        .into_iter()
        .map(|(t, score)| {
            let (x, y) = geo.patch_centre(t);
            PromptPoint { x, y, score }
        })
        .collect();
    Ok(CategoryPrompts {
        category: cat.id,
        foreground: filter_foreground(foreground, p.num_foreground, p.num_grid_cells),
        background,
        similarity: local,
    })
}

/// SoftMatcher's parameters for prompting.
#[derive(Clone, Copy, Debug)]
pub struct SoftPrompting {
    pub num_foreground: usize,
    pub num_background: usize,
    /// Candidates are target patches whose min-max normalised score reaches this.
    pub score_threshold: f32,
    pub bidirectional: bool,
    /// Keep only 3×3 local maxima of the score among the candidates (best `num_foreground`).
    pub spatial_sampling: bool,
    /// Draw at most `num_foreground` candidates at random, weighted by score, with this seed.
    pub sampling_seed: Option<u64>,
    /// Approximate the similarities with random Fourier features, with this seed.
    pub rff_seed: Option<u64>,
}

/// The reference's soft-matching temperature.
const SOFT_REG: f32 = 0.1;
/// Random Fourier features: dimension and bandwidth.
const RFF_DIM: usize = 256;
const RFF_SIGMA: f32 = 0.75;

/// `log_softmax` of `values / SOFT_REG`.
fn log_softmax(values: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let max = values
        .clone()
        .map(|v| v / SOFT_REG)
        .fold(f32::NEG_INFINITY, f32::max);
    let lse = values
        .clone()
        .map(|v| (v / SOFT_REG - max).exp())
        .sum::<f32>()
        .ln()
        + max;
    values.map(|v| v / SOFT_REG - lse).collect()
}

/// Soft matching: per target patch, the geometric mean over in-mask reference patches of the
/// softmax (over target patches) of their similarity; optionally times the softmax the other
/// way. Candidates: normalised score ≥ threshold; the combined similarity map is the mean of
/// the prototype map and the normalised soft map.
pub fn soft_matcher_prompts(
    cat: &CategoryReference,
    target: &PatchFeatures,
    geo: &Geometry,
    p: &SoftPrompting,
) -> Result<CategoryPrompts, DetectError> {
    let Similarities {
        dim,
        n_ref,
        n_target,
        local,
        sim,
        in_mask,
        background,
    } = Similarities::of(cat, target, geo, p.num_background)?;
    if in_mask.is_empty() {
        return Ok(CategoryPrompts {
            category: cat.id,
            foreground: Vec::new(),
            background,
            similarity: local,
        });
    }
    // The similarities the soft matching uses: exact, or through random Fourier features.
    let (fw, full): (Vec<f32>, Option<Vec<f32>>) = match p.rff_seed {
        None => {
            let fw = in_mask
                .iter()
                .flat_map(|&r| sim[r * n_target..(r + 1) * n_target].iter().copied())
                .collect();
            (fw, p.bidirectional.then(|| sim.clone()))
        }
        Some(seed) => {
            let w = gaussian(seed, dim * (RFF_DIM / 2), 1.0 / RFF_SIGMA);
            let phi = |rows: &[f32]| -> Result<Vec<f32>, DetectError> {
                let n = rows.len() / dim;
                let proj = similarity_matrix_plain(rows, &w, n, dim, RFF_DIM / 2)?;
                let norm = ((RFF_DIM / 2) as f32).sqrt();
                let mut out = Vec::with_capacity(n * RFF_DIM);
                for row in proj.chunks_exact(RFF_DIM / 2) {
                    out.extend(row.iter().map(|v| v.sin() / norm));
                    out.extend(row.iter().map(|v| v.cos() / norm));
                }
                Ok(out)
            };
            let masked: Vec<f32> = in_mask
                .iter()
                .flat_map(|&r| cat.ref_embeddings[r * dim..(r + 1) * dim].iter().copied())
                .collect();
            let phi_t = phi(&target.data)?;
            let fw = similarity_matrix(&phi(&masked)?, &phi_t, RFF_DIM)?;
            let full = if p.bidirectional {
                Some(similarity_matrix(
                    &phi(&cat.ref_embeddings)?,
                    &phi_t,
                    RFF_DIM,
                )?)
            } else {
                None
            };
            (fw, full)
        }
    };
    let m = in_mask.len();
    let mut log_sum = vec![0f32; n_target];
    for row in fw.chunks_exact(n_target) {
        for (s, v) in log_sum.iter_mut().zip(log_softmax(row.iter().copied())) {
            *s += v;
        }
    }
    if let Some(full) = &full {
        // Softmax over all reference patches (padding included), for each target patch.
        for t in 0..n_target {
            let col = log_softmax((0..n_ref).map(|r| full[r * n_target + t]));
            for &r in &in_mask {
                log_sum[t] += col[r];
            }
        }
    }
    let scores: Vec<f32> = log_sum.iter().map(|s| (s / m as f32).exp()).collect();
    let (lo, hi) = min_max(&scores);
    let normalised: Vec<f32> = scores.iter().map(|s| (s - lo) / (hi - lo + 1e-6)).collect();
    let threshold = p.score_threshold;
    let chosen: Vec<usize> = if p.spatial_sampling {
        let peaks = local_maxima(&scores, geo.grid);
        let cands: Vec<usize> = (0..n_target)
            .filter(|&t| peaks[t] && normalised[t] >= threshold)
            .collect();
        let cs: Vec<f32> = cands.iter().map(|&t| scores[t]).collect();
        order_desc(&cs)
            .into_iter()
            .take(p.num_foreground)
            .map(|i| cands[i])
            .collect()
    } else {
        let cands: Vec<usize> = (0..n_target)
            .filter(|&t| normalised[t] >= threshold)
            .collect();
        match p.sampling_seed {
            Some(seed) => weighted_sample(&cands, &scores, p.num_foreground, seed),
            None => cands,
        }
    };
    let foreground: Vec<PromptPoint> = chosen
        .into_iter()
        .map(|t| {
            let (x, y) = geo.patch_centre(t);
            PromptPoint {
                x,
                y,
                score: scores[t],
            }
        })
        .collect();
    let (slo, shi) = min_max(&scores);
    let similarity = local
        .iter()
        .zip(&scores)
        .map(|(l, s)| (l + (s - slo) / (shi - slo + 1e-6)) / 2.0)
        .collect();
    Ok(CategoryPrompts {
        category: cat.id,
        // SoftMatcher always filters on an 8-cell grid (its generator does not pass its own).
        foreground: filter_foreground(foreground, p.num_foreground, 8),
        background,
        similarity,
    })
}

fn min_max(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// `a [n × k] · b [k × m]` (b row-major, not transposed).
fn similarity_matrix_plain(
    a: &[f32],
    b: &[f32],
    n: usize,
    k: usize,
    m: usize,
) -> Result<Vec<f32>, DetectError> {
    let ta = Tensor::from_slice(a, (n, k), &Device::Cpu)?;
    let tb = Tensor::from_slice(b, (k, m), &Device::Cpu)?;
    Ok(ta.matmul(&tb)?.flatten_all()?.to_vec1()?)
}

/// A small deterministic generator (SplitMix64) for the optional random parts.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// `n` normal samples with standard deviation `scale` (Box–Muller).
fn gaussian(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| {
            let (u, v) = (rng.unit(), rng.unit());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32 * scale
        })
        .collect()
}

/// At most `k` of `candidates` without replacement, each draw weighted by its score.
fn weighted_sample(candidates: &[usize], scores: &[f32], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix(seed);
    let mut pool: Vec<usize> = candidates.to_vec();
    let mut out = Vec::new();
    while out.len() < k && !pool.is_empty() {
        let total: f64 = pool.iter().map(|&t| f64::from(scores[t])).sum();
        let pick = if total > 0.0 {
            let mut r = rng.unit() * total;
            let mut chosen = pool.len() - 1;
            for (i, &t) in pool.iter().enumerate() {
                r -= f64::from(scores[t]);
                if r <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            (rng.unit() * pool.len() as f64) as usize
        };
        out.push(pool.remove(pick.min(pool.len() - 1)));
    }
    out
}

/// PerDINO's parameters for prompting.
#[derive(Clone, Copy, Debug)]
pub struct GridPrompting {
    pub num_foreground: usize,
    pub num_background: usize,
    pub num_grid_cells: usize,
    /// Patches with a prototype similarity above this are candidates.
    pub point_selection_threshold: f32,
}

/// Grid prompting on the prototype similarity map: candidates above the threshold (or the best
/// patch when none is), the best per cell of a `cells × cells` grid over the map, best first.
/// Points are the patches' top-left corners scaled to the image (not rounded), as the reference.
pub fn grid_prompts(
    cat: &CategoryReference,
    target: &PatchFeatures,
    geo: &Geometry,
    p: &GridPrompting,
) -> Result<CategoryPrompts, DetectError> {
    let map = prototype_map(cat, target)?;
    let (gh, gw) = (target.rows, target.cols);
    let sx = (geo.image_size.1 as f64 / gw as f64) as f32;
    let sy = (geo.image_size.0 as f64 / gh as f64) as f32;
    let at = |t: usize, score: f32| PromptPoint {
        x: (t % gw) as f32 * sx,
        y: (t / gw) as f32 * sy,
        score,
    };
    let cands: Vec<usize> = (0..map.len())
        .filter(|&t| map[t] > p.point_selection_threshold)
        .collect();
    let mut foreground: Vec<PromptPoint> = if cands.is_empty() {
        let best = order_desc(&map).into_iter().next();
        best.map(|t| vec![at(t, map[t])]).unwrap_or_default()
    } else {
        let cells = p.num_grid_cells.max(1);
        let cell_w = gw as f32 / cells as f32;
        let cell_h = gh as f32 / cells as f32;
        let last = cells as i64 - 1;
        let mut best: std::collections::BTreeMap<i64, usize> = Default::default();
        for &t in &cands {
            let cx = ((((t % gw) as f32) / cell_w).floor() as i64).clamp(0, last);
            let cy = ((((t / gw) as f32) / cell_h).floor() as i64).clamp(0, last);
            let id = cy * cells as i64 + cx;
            match best.get(&id) {
                Some(&b) if map[b] >= map[t] => {}
                _ => {
                    best.insert(id, t);
                }
            }
        }
        let picked: Vec<usize> = best.into_values().collect();
        let scores: Vec<f32> = picked.iter().map(|&t| map[t]).collect();
        order_desc(&scores)
            .into_iter()
            .map(|i| at(picked[i], scores[i]))
            .collect()
    };
    foreground.truncate(p.num_foreground);
    let background: Vec<PromptPoint> = order_asc(&map)
        .into_iter()
        .take(p.num_background.min(map.len()))
        .map(|t| at(t, map[t]))
        .collect();
    Ok(CategoryPrompts {
        category: cat.id,
        foreground,
        background,
        similarity: map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(h: usize, w: usize) -> Geometry {
        Geometry {
            input_size: 512,
            patch_size: 16,
            grid: 32,
            image_size: (h, w),
        }
    }

    #[test]
    fn patch_centres_round_half_to_even_like_torch() {
        // Column 0 of a 160-px-wide image: (0·16 + 8) · 160/512 = 2.5 → 2; column 1: 7.5 → 8.
        let g = geo(120, 160);
        assert_eq!(g.patch_centre(0).0, 2.0);
        assert_eq!(g.patch_centre(1).0, 8.0);
        // 640 × 480: exact multiples.
        let g = geo(480, 640);
        assert_eq!(g.patch_centre(32 + 1), (30.0, 22.0));
    }

    #[test]
    fn grid_filter_keeps_the_best_point_per_cell_then_the_top_k() {
        let pts: Vec<PromptPoint> = (0..10)
            .map(|i| PromptPoint {
                x: (i % 2) as f32 * 100.0,
                y: 0.0,
                score: i as f32,
            })
            .collect();
        // Two columns of cells are occupied (x = 0 and x = 100); best of each: 8 and 9.
        let kept = filter_foreground(pts.clone(), 3, 8);
        assert_eq!(
            kept.iter().map(|p| p.score).collect::<Vec<_>>(),
            vec![9.0, 8.0]
        );
        // Without the grid, simply the top 3.
        let kept = filter_foreground(pts, 3, 0);
        assert_eq!(
            kept.iter().map(|p| p.score).collect::<Vec<_>>(),
            vec![9.0, 8.0, 7.0]
        );
    }

    #[test]
    fn local_maxima_include_plateaus() {
        let map = vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        let m = local_maxima(&map, 3);
        assert_eq!(
            m,
            // (2, 0) is a plateau of zeros: equal to its neighbourhood's maximum.
            vec![true, true, false, false, false, false, true, false, true]
        );
    }

    #[test]
    fn weighted_sampling_is_without_replacement_and_seeded() {
        let scores = vec![0.1, 0.5, 0.2, 0.9, 0.3];
        let c = vec![0, 1, 2, 3, 4];
        let a = weighted_sample(&c, &scores, 3, 42);
        assert_eq!(a, weighted_sample(&c, &scores, 3, 42));
        let mut s = a.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 3);
    }
}
