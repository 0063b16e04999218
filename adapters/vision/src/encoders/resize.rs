//! Image and grid resampling exactly as PyTorch does it, on planar `f32` data on the CPU.
//!
//! candle has neither antialiased nor bicubic interpolation, and the reference uses both:
//!
//! - [`resize_aa`]: PyTorch's antialiased separable resampling (`F.interpolate(...,
//!   antialias=True)`, which torchvision's `resize(antialias=True)` calls): a triangle (bilinear)
//!   or Keys cubic with `a = -0.5` (bicubic) filter, stretched by the scale factor when
//!   downsampling, weights normalised to sum to one, support clipped at the borders.
//! - [`resize_bicubic`]: PyTorch's plain `mode="bicubic", align_corners=False` (Keys cubic with
//!   `a = -0.75`, border pixels replicated), which DINOv2 without registers uses for its position
//!   embeddings.
//!
//! Both work on `channels` planes of `height × width` values stored one after the other, and are
//! separable: the width is resampled first, then the height.

/// The filter of an antialiased resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Triangle filter: antialiased bilinear.
    Bilinear,
    /// Keys cubic with `a = -0.5`: antialiased bicubic.
    Bicubic,
}

impl Filter {
    /// Half the filter's support at scale 1 (PyTorch's `interp_size / 2`).
    fn half_support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// For one output length: per output index, the first input index and its normalised weights.
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

/// Antialiased taps, as PyTorch's `_compute_indices_min_size_weights_aa`.
fn aa_taps(input: usize, output: usize, filter: Filter) -> Taps {
    let scale = input as f64 / output as f64;
    let support = if scale >= 1.0 {
        filter.half_support() * scale
    } else {
        filter.half_support()
    };
    let inv_scale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut start = Vec::with_capacity(output);
    let mut weights = Vec::with_capacity(output);
    for i in 0..output {
        let center = scale * (i as f64 + 0.5);
        // PyTorch truncates towards zero, then clamps at 0.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize;
        let mut w: Vec<f64> = (xmin..xmax)
            .map(|j| filter.weight((j as f64 - center + 0.5) * inv_scale))
            .collect();
        let total: f64 = w.iter().sum();
        if total != 0.0 {
            for v in &mut w {
                *v /= total;
            }
        }
        start.push(xmin);
        weights.push(w.into_iter().map(|v| v as f32).collect());
    }
    Taps { start, weights }
}

/// Plain bicubic taps (`align_corners=False`, `a = -0.75`), border indices clamped: 4 taps that
/// may repeat the first or last input index.
fn bicubic_taps(input: usize, output: usize) -> (Vec<[usize; 4]>, Vec<[f32; 4]>) {
    const A: f64 = -0.75;
    let cc1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = input as f64 / output as f64;
    let last = input as i64 - 1;
    let mut idx = Vec::with_capacity(output);
    let mut wts = Vec::with_capacity(output);
    for i in 0..output {
        let real = scale * (i as f64 + 0.5) - 0.5;
        let floor = real.floor();
        let t = real - floor;
        let base = floor as i64;
        let at = |o: i64| (base + o).clamp(0, last) as usize;
        idx.push([at(-1), at(0), at(1), at(2)]);
        wts.push([
            cc2(t + 1.0) as f32,
            cc1(t) as f32,
            cc1(1.0 - t) as f32,
            cc2(2.0 - t) as f32,
        ]);
    }
    (idx, wts)
}

/// Resamples `channels` planes of `height × width` to `out_h × out_w` with PyTorch's antialiased
/// filter. Returns the planes of the output, channel after channel.
pub fn resize_aa(
    data: &[f32],
    channels: usize,
    (height, width): (usize, usize),
    (out_h, out_w): (usize, usize),
    filter: Filter,
) -> Vec<f32> {
    assert_eq!(
        data.len(),
        channels * height * width,
        "planar data of the stated size"
    );
    let tw = aa_taps(width, out_w, filter);
    let th = aa_taps(height, out_h, filter);
    // Horizontal pass: channels × height × out_w.
    let mut mid = vec![0f32; channels * height * out_w];
    for (row_in, row_out) in data.chunks_exact(width).zip(mid.chunks_exact_mut(out_w)) {
        for (o, out) in row_out.iter_mut().enumerate() {
            let s = tw.start[o];
            *out = tw.weights[o]
                .iter()
                .zip(&row_in[s..])
                .map(|(w, v)| w * v)
                .sum();
        }
    }
    // Vertical pass: channels × out_h × out_w.
    let mut out = vec![0f32; channels * out_h * out_w];
    for c in 0..channels {
        let plane = &mid[c * height * out_w..(c + 1) * height * out_w];
        let dst = &mut out[c * out_h * out_w..(c + 1) * out_h * out_w];
        for (o, row_out) in dst.chunks_exact_mut(out_w).enumerate() {
            let s = th.start[o];
            for (k, w) in th.weights[o].iter().enumerate() {
                let row_in = &plane[(s + k) * out_w..(s + k + 1) * out_w];
                for (d, v) in row_out.iter_mut().zip(row_in) {
                    *d += w * v;
                }
            }
        }
    }
    out
}

/// Resamples `channels` planes with PyTorch's plain bicubic interpolation
/// (`mode="bicubic", align_corners=False`, no antialiasing).
pub fn resize_bicubic(
    data: &[f32],
    channels: usize,
    (height, width): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    assert_eq!(
        data.len(),
        channels * height * width,
        "planar data of the stated size"
    );
    let (iw, ww) = bicubic_taps(width, out_w);
    let (ih, wh) = bicubic_taps(height, out_h);
    let mut mid = vec![0f32; channels * height * out_w];
    for (row_in, row_out) in data.chunks_exact(width).zip(mid.chunks_exact_mut(out_w)) {
        for (o, out) in row_out.iter_mut().enumerate() {
            *out = (0..4).map(|k| ww[o][k] * row_in[iw[o][k]]).sum();
        }
    }
    let mut out = vec![0f32; channels * out_h * out_w];
    for c in 0..channels {
        let plane = &mid[c * height * out_w..(c + 1) * height * out_w];
        let dst = &mut out[c * out_h * out_w..(c + 1) * out_h * out_w];
        for (o, row_out) in dst.chunks_exact_mut(out_w).enumerate() {
            for k in 0..4 {
                let w = wh[o][k];
                let row_in = &plane[ih[o][k] * out_w..(ih[o][k] + 1) * out_w];
                for (d, v) in row_out.iter_mut().zip(row_in) {
                    *d += w * v;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let data: Vec<f32> = (0..2 * 5 * 7).map(|v| v as f32 * 0.37).collect();
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            let out = resize_aa(&data, 2, (5, 7), (5, 7), filter);
            for (a, b) in out.iter().zip(&data) {
                assert!((a - b).abs() < 1e-5, "{filter:?}: {a} vs {b}");
            }
        }
        let out = resize_bicubic(&data, 2, (5, 7), (5, 7));
        for (a, b) in out.iter().zip(&data) {
            assert!((a - b).abs() < 1e-5, "bicubic: {a} vs {b}");
        }
    }

    #[test]
    fn constant_planes_stay_constant() {
        let data = vec![3.5f32; 9 * 13];
        for (oh, ow) in [(4, 5), (20, 30), (9, 2)] {
            for filter in [Filter::Bilinear, Filter::Bicubic] {
                let out = resize_aa(&data, 1, (9, 13), (oh, ow), filter);
                assert!(
                    out.iter().all(|v| (v - 3.5).abs() < 1e-5),
                    "{filter:?} {oh}x{ow}"
                );
            }
            let out = resize_bicubic(&data, 1, (9, 13), (oh, ow));
            assert!(
                out.iter().all(|v| (v - 3.5).abs() < 1e-5),
                "bicubic {oh}x{ow}"
            );
        }
    }

    #[test]
    fn halving_with_bilinear_antialias_averages_neighbour_pairs_and_their_neighbours() {
        // Scale 2: support 2, taps at distance 0.25 and 0.75 on each side: weights 3/8, 1/8.
        let row = [0.0f32, 8.0, 16.0, 24.0, 32.0, 40.0, 48.0, 56.0];
        let out = resize_aa(&row, 1, (1, 8), (1, 4), Filter::Bilinear);
        // Interior output 1 covers inputs 1..=4 with weights 1/8, 3/8, 3/8, 1/8.
        assert!((out[1] - (8.0 + 3.0 * 16.0 + 3.0 * 24.0 + 32.0) / 8.0).abs() < 1e-5);
        // Output 0 is clipped at the border and renormalised: inputs 0..=2, weights 3, 3, 1.
        assert!(
            (out[0] - (3.0 * 8.0 + 16.0) / 7.0).abs() < 1e-5,
            "{}",
            out[0]
        );
    }
}
