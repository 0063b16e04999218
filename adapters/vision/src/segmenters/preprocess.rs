//! SAM pre- and post-processing as the reference product does it.
//!
//! - [`resize_longest_side`]: the product resizes the uint8 frame with PyTorch's
//!   `F.interpolate(mode="bilinear", align_corners=False)` (no antialias) to a longest side of
//!   1024 (`ResizeLongestSide.get_preprocess_shape`). On uint8 tensors PyTorch computes this
//!   separably with 16-bit fixed-point weights (horizontal pass, rounding to u8, then vertical
//!   pass), so this is reproduced bit for bit rather than with float arithmetic.
//! - [`normalize_and_pad`]: `(x - mean) / std` with SAM's pixel statistics, zero padding to the
//!   bottom and right.
//! - [`postprocess_masks`]: bilinear to the padded size, crop, bilinear to the original size.

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

/// SAM's pixel mean and std (RGB, 0..255).
pub const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
pub const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// `ResizeLongestSide.get_preprocess_shape`: (new_h, new_w).
pub fn preprocess_shape(h: usize, w: usize, long_side: usize) -> (usize, usize) {
    let scale = long_side as f64 / h.max(w) as f64;
    let nh = (h as f64 * scale + 0.5) as usize;
    let nw = (w as f64 * scale + 0.5) as usize;
    (nh, nw)
}

/// One output position of a 1-D resize: first source index and fixed-point weights.
struct Taps {
    start: usize,
    weights: [i32; 2],
    len: usize,
}

/// PyTorch's int16 bilinear weights (`_compute_index_ranges_int16_weights`, antialias off):
/// returns the taps per output index and the weights' precision in bits.
fn taps(in_size: usize, out_size: usize) -> (Vec<Taps>, u32) {
    let scale = in_size as f64 / out_size as f64;
    let support = 1.0f64;
    let mut float_taps = Vec::with_capacity(out_size);
    let mut wt_max = 0.0f64;
    for i in 0..out_size {
        let center = scale * (i as f64 + 0.5);
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let len = xmax.saturating_sub(xmin).min(2);
        let mut w = [0f64; 2];
        let mut total = 0.0;
        for (j, wj) in w.iter_mut().enumerate().take(len) {
            let x = ((j + xmin) as f64 - center + 0.5).abs();
            *wj = if x < 1.0 { 1.0 - x } else { 0.0 };
            total += *wj;
        }
        if total != 0.0 {
            for wj in w.iter_mut().take(len) {
                *wj /= total;
                wt_max = wt_max.max(*wj);
            }
        }
        float_taps.push((xmin, w, len));
    }
    let mut precision = 0u32;
    while precision < 22 {
        let next = (0.5 + wt_max * (1u64 << (precision + 1)) as f64) as i64;
        if next >= (1 << 15) {
            break;
        }
        precision += 1;
    }
    let one = (1u64 << precision) as f64;
    let taps = float_taps
        .into_iter()
        .map(|(start, w, len)| {
            let q = |v: f64| -> i32 {
                let v = v * one;
                (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i16 as i32
            };
            Taps {
                start,
                weights: [q(w[0]), q(w[1])],
                len,
            }
        })
        .collect();
    (taps, precision)
}

#[inline]
fn apply(acc: i32, precision: u32) -> u8 {
    (acc >> precision).clamp(0, 255) as u8
}

/// Resizes an interleaved RGB u8 image (h x w x 3) so that its longest side is `long_side`,
/// exactly as PyTorch's uint8 bilinear `F.interpolate` (align_corners=False, no antialias).
/// Returns (pixels, new_h, new_w).
pub fn resize_longest_side(
    rgb: &[u8],
    h: usize,
    w: usize,
    long_side: usize,
) -> Result<(Vec<u8>, usize, usize)> {
    if rgb.len() != h * w * 3 || h == 0 || w == 0 {
        candle_core::bail!("expected a {h}x{w}x3 RGB image, got {} bytes", rgb.len());
    }
    let (nh, nw) = preprocess_shape(h, w, long_side);
    Ok((resize_rgb(rgb, h, w, nh, nw), nh, nw))
}

/// The separable uint8 bilinear resize of an interleaved RGB image.
pub fn resize_rgb(rgb: &[u8], h: usize, w: usize, nh: usize, nw: usize) -> Vec<u8> {
    // Horizontal pass (skipped when the width does not change), rounding to u8.
    let horiz: Vec<u8> = if nw != w {
        let (tx, px) = taps(w, nw);
        let init = 1i32 << (px - 1);
        let mut out = vec![0u8; h * nw * 3];
        out.par_chunks_mut(nw * 3).enumerate().for_each(|(y, row)| {
            let src = &rgb[y * w * 3..(y + 1) * w * 3];
            for (x, t) in tx.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = init;
                    for j in 0..t.len {
                        acc += t.weights[j] * src[(t.start + j) * 3 + c] as i32;
                    }
                    row[x * 3 + c] = apply(acc, px);
                }
            }
        });
        out
    } else {
        rgb.to_vec()
    };
    if nh == h {
        return horiz;
    }
    let (ty, py) = taps(h, nh);
    let init = 1i32 << (py - 1);
    let mut out = vec![0u8; nh * nw * 3];
    out.par_chunks_mut(nw * 3).enumerate().for_each(|(y, row)| {
        let t = &ty[y];
        for (i, o) in row.iter_mut().enumerate() {
            let mut acc = init;
            for j in 0..t.len {
                acc += t.weights[j] * horiz[(t.start + j) * nw * 3 + i] as i32;
            }
            *o = apply(acc, py);
        }
    });
    out
}

/// Normalises a resized RGB image (nh x nw x 3) and zero-pads it to [1, 3, size, size].
pub fn normalize_and_pad(
    rgb: &[u8],
    nh: usize,
    nw: usize,
    size: usize,
    device: &Device,
) -> Result<Tensor> {
    if nh > size || nw > size || rgb.len() != nh * nw * 3 {
        candle_core::bail!("image {nh}x{nw} does not fit the {size} px model input");
    }
    let mut out = vec![0f32; 3 * size * size];
    for (c, plane) in out.chunks_mut(size * size).enumerate() {
        let (m, s) = (PIXEL_MEAN[c], PIXEL_STD[c]);
        for y in 0..nh {
            for x in 0..nw {
                plane[y * size + x] = (rgb[(y * nw + x) * 3 + c] as f32 - m) / s;
            }
        }
    }
    Tensor::from_vec(out, (1, 3, size, size), device)
}

/// Low-resolution logits [B, M, l, l] to logits at the original size [B, M, H, W].
///
/// Both resizes are linear and act on rows and columns separately, so on the CPU they are
/// composed into one resize with at most four taps per axis (`composed_taps`) and applied in
/// two passes (columns, then rows), without the 1024 x 1024 intermediate. The result equals
/// the two resizes up to f32 rounding (the reference rounds the intermediate to f32).
pub fn postprocess_masks(
    low_res: &Tensor,
    img_size: usize,
    input_size: (usize, usize),
    original_size: (usize, usize),
) -> Result<Tensor> {
    if low_res.device().is_cpu() && low_res.dtype() == candle_core::DType::F32 {
        return postprocess_composed(low_res, img_size, input_size, original_size);
    }
    postprocess_in_two_resizes(low_res, img_size, input_size, original_size)
}

/// [`postprocess_masks`] as the reference writes it: bilinear to the padded size, crop,
/// bilinear to the original size.
fn postprocess_in_two_resizes(
    low_res: &Tensor,
    img_size: usize,
    input_size: (usize, usize),
    original_size: (usize, usize),
) -> Result<Tensor> {
    let x = low_res.upsample_bilinear2d(img_size, img_size, false)?;
    let x = x
        .narrow(2, 0, input_size.0)?
        .narrow(3, 0, input_size.1)?
        .contiguous()?;
    x.upsample_bilinear2d(original_size.0, original_size.1, false)
}

/// One output position of a bilinear resize (PyTorch's `align_corners=False`): the two source
/// indices and the second one's weight.
fn bilinear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f64)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let src = (scale * (o as f64 + 0.5) - 0.5).max(0.0);
            let i0 = src.floor() as usize;
            (
                i0,
                (i0 + 1).min(n_in - 1),
                (src - i0 as f64).clamp(0.0, 1.0),
            )
        })
        .collect()
}

/// The taps of `l → padded` (bilinear) followed by `crop → out` (bilinear) along one axis:
/// for every output position, up to four (low-resolution index, weight) pairs.
fn composed_taps(l: usize, padded: usize, crop: usize, out: usize) -> Vec<[(usize, f32); 4]> {
    let first = bilinear_taps(l, padded);
    if crop == out {
        // The reference's second resize is then the identity.
        return first[..out]
            .iter()
            .map(|&(a, b, w)| [(a, (1.0 - w) as f32), (b, w as f32), (0, 0.0), (0, 0.0)])
            .collect();
    }
    bilinear_taps(crop, out)
        .into_iter()
        .map(|(j0, j1, wj)| {
            let (a0, a1, wa) = first[j0];
            let (b0, b1, wb) = first[j1];
            [
                (a0, ((1.0 - wj) * (1.0 - wa)) as f32),
                (a1, ((1.0 - wj) * wa) as f32),
                (b0, (wj * (1.0 - wb)) as f32),
                (b1, (wj * wb) as f32),
            ]
        })
        .collect()
}

fn postprocess_composed(
    low_res: &Tensor,
    img_size: usize,
    input_size: (usize, usize),
    original_size: (usize, usize),
) -> Result<Tensor> {
    let (b, m, lh, lw) = low_res.dims4()?;
    let (h, w) = original_size;
    let rows = composed_taps(lh, img_size, input_size.0, h);
    let cols = composed_taps(lw, img_size, input_size.1, w);
    let src: Vec<f32> = low_res.flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; b * m * h * w];
    out.par_chunks_mut(h * w)
        .zip(src.par_chunks(lh * lw))
        .for_each(|(plane, low)| {
            // Columns first: every low-resolution row at the output width.
            let mut wide = vec![0f32; lh * w];
            for (dst, row) in wide.chunks_exact_mut(w).zip(low.chunks_exact(lw)) {
                for (d, taps) in dst.iter_mut().zip(&cols) {
                    *d = taps.iter().map(|&(i, wt)| wt * row[i]).sum();
                }
            }
            // Then rows: each output row is a weighted sum of up to four wide rows.
            for (dst, taps) in plane.chunks_exact_mut(w).zip(&rows) {
                dst.fill(0.0);
                for &(i, wt) in taps {
                    if wt != 0.0 {
                        axpy_row(dst, wt, &wide[i * w..(i + 1) * w]);
                    }
                }
            }
        });
    Tensor::from_vec(out, (b, m, h, w), low_res.device())
}

crate::encoders::kernels::widest_simd! {
    /// `dst += a · x`.
    fn axpy_row(dst: &mut [f32], a: f32, x: &[f32]) => axpy_row_generic
}

#[inline(always)]
fn axpy_row_generic(dst: &mut [f32], a: f32, x: &[f32]) {
    for (d, x) in dst.iter_mut().zip(x) {
        *d += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_upscaling_equals_the_two_resizes() {
        // (low side, padded side, resized frame, original frame): a downscaled frame as the
        // detectors see it, an upscaled one, one kept at its size, and small odd sizes.
        for (l, padded, input, original) in [
            (256, 1024, (768, 1024), (480, 640)),
            (256, 1024, (1024, 576), (1920, 1080)),
            (256, 1024, (768, 1024), (768, 1024)),
            (16, 64, (40, 64), (33, 51)),
        ] {
            let low =
                (Tensor::randn(0f32, 1.0, (2, 1, l, l), &Device::Cpu).unwrap() * 10.0).unwrap();
            let ours = postprocess_composed(&low, padded, input, original).unwrap();
            let want = postprocess_in_two_resizes(&low, padded, input, original).unwrap();
            assert_eq!(ours.dims(), &[2, 1, original.0, original.1]);
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            // Logits of up to ~40: f32 rounding differs by ~1e-5; a wrong tap by whole units.
            assert!(
                diff < 1e-4,
                "{l} -> {padded} -> {input:?} -> {original:?}: {diff}"
            );
        }
    }
}
