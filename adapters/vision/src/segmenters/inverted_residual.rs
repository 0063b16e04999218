//! TinyViT's inverted-residual block (1x1 expansion + GELU, depthwise 3x3 + GELU, 1x1
//! projection + residual + GELU) and its patch merging (the same three layers, the depthwise
//! one with stride 2, no residual and no final GELU), computed row by row so that the expanded
//! map never leaves the cache.
//!
//! These run on the encoder's largest maps (64 channels at 256 x 256, expanded 4x): as three
//! whole-map passes they wrote and re-read the expanded map (64 MB) twice, and spent most of
//! their time waiting on memory rather than computing. Here each worker takes a run of output
//! rows and keeps a ring of three expanded rows (the depthwise convolution's window): for each
//! output row it expands the input rows it is missing (one GEMM each), applies the depthwise
//! convolution to the ring, and projects the result straight into the output row (a second
//! GEMM, onto the residual when there is one). The rows at the edges of a worker's run are
//! expanded by both neighbours, a few percent of extra work.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

use super::ops::{Conv, SendPtr, contiguous_f32};
use crate::encoders::kernels::{gelu_in_place, gemm_f32, widest_simd};

/// Output rows per work item.
const RUN: usize = 32;

/// The three layers' parameters, f32, as the row pass reads them.
#[derive(Debug, Clone)]
pub(crate) struct RowwiseInvertedResidual {
    dim: usize,
    hidden: usize,
    out: usize,
    /// The depthwise convolution's stride (1 or 2).
    stride: usize,
    /// Whether the input is added to the projection (then out = dim, stride 1).
    residual: bool,
    /// Whether GELU follows the projection.
    act: bool,
    /// [hidden, dim] and [hidden].
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// [hidden, 9] and [hidden].
    w2: Vec<f32>,
    b2: Vec<f32>,
    /// [out, hidden] and [out].
    w3: Vec<f32>,
    b3: Vec<f32>,
}

impl RowwiseInvertedResidual {
    /// `None` unless the layers have the block's shapes (1x1, depthwise 3x3 with stride 1 or
    /// 2 and padding 1, 1x1) with f32 weights, and a residual only where the output has the
    /// input's shape. `residual` and `act` say what follows the projection.
    pub(crate) fn new(
        expand: &Conv,
        depthwise: &Conv,
        project: &Conv,
        residual: bool,
        act: bool,
    ) -> Result<Option<Self>> {
        let (p1, p2, p3) = (
            expand.f32_parameters()?,
            depthwise.f32_parameters()?,
            project.f32_parameters()?,
        );
        let (d1, d2, d3) = (p1.dims, p2.dims, p3.dims);
        let (hidden, dim, out) = (d1.0, d1.1, d3.0);
        let stride = depthwise.geometry().0;
        let fits = (d1.2, d1.3) == (1, 1)
            && expand.geometry() == (1, 0, 1)
            && d2 == (hidden, 1, 3, 3)
            && (stride == 1 || stride == 2)
            && depthwise.geometry() == (stride, 1, hidden)
            && d3 == (out, hidden, 1, 1)
            && project.geometry() == (1, 0, 1)
            && (!residual || (out == dim && stride == 1));
        Ok(fits.then_some(Self {
            dim,
            hidden,
            out,
            stride,
            residual,
            act,
            w1: p1.weight,
            b1: p1.bias,
            w2: p2.weight,
            b2: p2.bias,
            w3: p3.weight,
            b3: p3.bias,
        }))
    }

    /// x [B, dim, H, W] (f32, CPU) → [B, out, H', W'] (H' = H, or ⌈H/2⌉ with stride 2).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.dim || x.dtype() != DType::F32 || !x.device().is_cpu() {
            candle_core::bail!(
                "inverted residual: expected f32 [B, {}, H, W], got {:?}",
                self.dim,
                x.dims()
            );
        }
        let (oh, ow) = ((h - 1) / self.stride + 1, (w - 1) / self.stride + 1);
        let x = x.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let src = match &*storage {
            candle_core::Storage::Cpu(cpu) => contiguous_f32(cpu, layout)?,
            _ => candle_core::bail!("inverted residual: expected a CPU tensor"),
        };
        let co = self.out;
        let mut out = vec![0f32; b * co * oh * ow];
        let dst = SendPtr(out.as_mut_ptr());
        let runs = oh.div_ceil(RUN);
        (0..b * runs).into_par_iter().for_each(|item| {
            let (img, run) = (item / runs, item % runs);
            let image = &src[img * c * h * w..(img + 1) * c * h * w];
            // SAFETY: items write disjoint rows of `out` (their image's rows of their run).
            let out = unsafe { dst.get().add(img * co * oh * ow) };
            let rows = run * RUN..((run + 1) * RUN).min(oh);
            self.run(image, (h, w), (oh, ow), rows, out);
        });
        Tensor::from_vec(out, (b, co, oh, ow), x.device())
    }

    /// Output rows `rows` of one image.
    fn run(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
        rows: std::ops::Range<usize>,
        out: *mut f32,
    ) {
        let (c, hid, co, s) = (self.dim, self.hidden, self.out, self.stride);
        let plane = h * w;
        let none = gemm::Parallelism::None;
        // ring[y % 3] holds expanded input row y ([hidden][w], after GELU); `held[slot]` which.
        let mut ring = vec![0f32; 3 * hid * w];
        let mut held = [usize::MAX; 3];
        let mut mid = vec![0f32; hid * ow];
        let mut row_out = vec![0f32; co * ow];
        for y in rows {
            // Output row y reads input rows s·y − 1 ..= s·y + 1.
            let centre = s * y;
            for yy in centre.saturating_sub(1)..(centre + 2).min(h) {
                let slot = yy % 3;
                if held[slot] == yy {
                    continue;
                }
                let dst = &mut ring[slot * hid * w..(slot + 1) * hid * w];
                for (r, &bias) in dst.chunks_exact_mut(w).zip(&self.b1) {
                    r.fill(bias);
                }
                // expanded[ch][x] = b1 + Σ_ci w1[ch][ci] · x[ci][yy][x]
                gemm_f32(
                    (hid, w, c),
                    dst,
                    (w, 1),
                    true,
                    &self.w1,
                    (c, 1),
                    &x[yy * w..],
                    (plane, 1),
                    none,
                );
                gelu_in_place(dst);
                held[slot] = yy;
            }
            let row = |yy: Option<usize>| -> &[f32] {
                match yy {
                    Some(yy) if yy < h => &ring[(yy % 3) * hid * w..][..hid * w],
                    _ => &[],
                }
            };
            depthwise_row(
                row(centre.checked_sub(1)),
                row(Some(centre)),
                row(Some(centre + 1)),
                &self.w2,
                &self.b2,
                s,
                &mut mid,
            );
            gelu_in_place(&mut mid);
            // out[o][y][x] = (act)(b3 (+ x[o][y][x]) + Σ_ch w3[o][ch] · mid[ch][x])
            for (o, r) in row_out.chunks_exact_mut(ow).enumerate() {
                if self.residual {
                    add_scalar(r, &x[o * plane + y * w..][..w], self.b3[o]);
                } else {
                    r.fill(self.b3[o]);
                }
            }
            gemm_f32(
                (co, ow, hid),
                &mut row_out,
                (ow, 1),
                true,
                &self.w3,
                (hid, 1),
                &mid,
                (ow, 1),
                none,
            );
            if self.act {
                gelu_in_place(&mut row_out);
            }
            let out_plane = oh * ow;
            for (o, r) in row_out.chunks_exact(ow).enumerate() {
                // SAFETY: row y of channel o lies inside this image's part of `out`, and only
                // this run writes row y.
                unsafe {
                    std::ptr::copy_nonoverlapping(r.as_ptr(), out.add(o * out_plane + y * ow), ow)
                };
            }
        }
    }
}

widest_simd! {
    /// One output row of the depthwise 3x3 convolution (padding 1, `stride` 1 or 2) from the
    /// three input rows around it (`above` / `below` empty at the image's edges), each
    /// [channels][w]; `out` is [channels][output width].
    fn depthwise_row(
        above: &[f32],
        centre: &[f32],
        below: &[f32],
        weights: &[f32],
        bias: &[f32],
        stride: usize,
        out: &mut [f32],
    ) => depthwise_row_generic
}

#[inline(always)]
fn depthwise_row_generic(
    above: &[f32],
    centre: &[f32],
    below: &[f32],
    weights: &[f32],
    bias: &[f32],
    stride: usize,
    out: &mut [f32],
) {
    let channels = bias.len();
    let (w, ow) = (centre.len() / channels, out.len() / channels);
    for ch in 0..channels {
        let o = &mut out[ch * ow..(ch + 1) * ow];
        o.fill(bias[ch]);
        let k = &weights[ch * 9..ch * 9 + 9];
        for (dy, rows) in [above, centre, below].into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let r = &rows[ch * w..(ch + 1) * w];
            let (left, mid, right) = (k[dy * 3], k[dy * 3 + 1], k[dy * 3 + 2]);
            if stride == 1 {
                // Output x reads x−1, x and x+1 (zero outside the row).
                for (o, v) in o.iter_mut().zip(r) {
                    *o += mid * v;
                }
                for (o, v) in o[1..].iter_mut().zip(r) {
                    *o += left * v;
                }
                for (o, v) in o.iter_mut().zip(&r[1..]) {
                    *o += right * v;
                }
            } else {
                // Output x reads s·x−1, s·x and s·x+1.
                for (x, o) in o.iter_mut().enumerate() {
                    let at = stride * x;
                    let mut acc = mid * r[at];
                    if at > 0 {
                        acc += left * r[at - 1];
                    }
                    if at + 1 < w {
                        acc += right * r[at + 1];
                    }
                    *o += acc;
                }
            }
        }
    }
}

widest_simd! {
    /// `out = x + a`.
    fn add_scalar(out: &mut [f32], x: &[f32], a: f32) => add_scalar_generic
}

#[inline(always)]
fn add_scalar_generic(out: &mut [f32], x: &[f32], a: f32) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = v + a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::{VarBuilder, VarMap};

    fn layers(dim: usize, hidden: usize, out: usize, stride: usize) -> (Conv, Conv, Conv) {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let build = |vb: &VarBuilder| {
            (
                Conv::conv_bn(vb.pp("conv1"), dim, hidden, 1, 1, 0, 1).unwrap(),
                Conv::conv_bn(vb.pp("conv2"), hidden, hidden, 3, stride, 1, hidden).unwrap(),
                Conv::conv_bn(vb.pp("conv3"), hidden, out, 1, 1, 0, 1).unwrap(),
            )
        };
        build(&vb);
        // Random weights and batch-norm statistics (variances positive), then built again.
        let mut data = map.data().lock().unwrap();
        for (name, var) in data.iter_mut() {
            let shape = var.shape().clone();
            let t = Tensor::randn(0f32, 0.3, shape, &Device::Cpu).unwrap();
            let t = if name.ends_with("running_var") {
                (t.abs().unwrap() + 0.5).unwrap()
            } else {
                t
            };
            var.set(&t).unwrap();
        }
        drop(data);
        build(&vb)
    }

    #[test]
    fn row_pass_equals_the_three_layers() {
        // Odd sides, several runs of rows with a partial last one, two images, and the
        // encoder's real shape.
        for (b, dim, hidden, h, w) in [(2, 8, 32, 70, 11), (1, 5, 20, 3, 4), (1, 64, 256, 256, 256)]
        {
            let (c1, c2, c3) = layers(dim, hidden, dim, 1);
            let block = RowwiseInvertedResidual::new(&c1, &c2, &c3, true, true)
                .unwrap()
                .unwrap();
            let x = Tensor::randn(0f32, 1.0, (b, dim, h, w), &Device::Cpu).unwrap();
            let ours = block.forward(&x).unwrap();
            let y = c1.forward_fused(&x, None, true).unwrap();
            let y = c2.forward_fused(&y, None, true).unwrap();
            let want = c3.forward_fused(&y, Some(&x), true).unwrap();
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            assert!(
                diff < 1e-4,
                "{b}x{dim}x{h}x{w} (hidden {hidden}): max difference {diff}"
            );
        }
        // A residual needs the input's shape.
        let (c1, c2, c3) = layers(8, 16, 12, 1);
        assert!(
            RowwiseInvertedResidual::new(&c1, &c2, &c3, true, true)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn row_pass_merges_patches_as_the_three_layers_do() {
        // Stride 2 on odd and even sides (the last output row and column read one input row
        // and column fewer), stride 1, and the encoder's first merge.
        for (b, dim, out, stride, h, w) in [
            (2, 6, 10, 2, 37, 9),
            (1, 5, 8, 2, 8, 6),
            (1, 7, 12, 1, 9, 10),
            (1, 64, 128, 2, 256, 256),
        ] {
            let (c1, c2, c3) = layers(dim, out, out, stride);
            let block = RowwiseInvertedResidual::new(&c1, &c2, &c3, false, false)
                .unwrap()
                .unwrap();
            let x = Tensor::randn(0f32, 1.0, (b, dim, h, w), &Device::Cpu).unwrap();
            let ours = block.forward(&x).unwrap();
            let y = c1.forward_fused(&x, None, true).unwrap();
            let y = c2.forward_fused(&y, None, true).unwrap();
            let want = c3.forward_fused(&y, None, false).unwrap();
            assert_eq!(ours.dims(), want.dims());
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            assert!(
                diff < 1e-4,
                "{b}x{dim}x{h}x{w} -> {out}, stride {stride}: {diff}"
            );
        }
    }
}
