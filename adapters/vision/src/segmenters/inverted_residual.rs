//! TinyViT's inverted-residual block (1x1 expansion + GELU, depthwise 3x3 + GELU, 1x1
//! projection + residual + GELU) computed row by row, so that the expanded map never leaves
//! the cache.
//!
//! The block runs on the encoder's largest maps (64 channels at 256 x 256, expanded 4x): as
//! three whole-map passes it wrote and re-read a 64 MB expanded map twice, and spent most of its
//! time waiting on memory rather than computing. Here each worker takes a run of output rows and
//! keeps a ring of three expanded rows (the depthwise convolution's window): for each output row
//! it expands the next input row (one GEMM), applies the depthwise convolution to the ring, and
//! projects the result straight into the output row (a second GEMM onto the residual).
//! The rows at the edges of a worker's run are expanded by both neighbours, a few percent of
//! extra work.

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
    /// [hidden, dim] and [hidden].
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// [hidden, 9] and [hidden].
    w2: Vec<f32>,
    b2: Vec<f32>,
    /// [dim, hidden] and [dim].
    w3: Vec<f32>,
    b3: Vec<f32>,
}

impl RowwiseInvertedResidual {
    /// `None` unless the layers have the block's shapes (1x1, depthwise 3x3 stride 1, 1x1 back
    /// to the input width) with f32 weights.
    pub(crate) fn new(expand: &Conv, depthwise: &Conv, project: &Conv) -> Result<Option<Self>> {
        let (p1, p2, p3) = (
            expand.f32_parameters()?,
            depthwise.f32_parameters()?,
            project.f32_parameters()?,
        );
        let (d1, d2, d3) = (p1.dims, p2.dims, p3.dims);
        let (hidden, dim) = (d1.0, d1.1);
        let fits = (d1.2, d1.3) == (1, 1)
            && expand.geometry() == (1, 0, 1)
            && d2 == (hidden, 1, 3, 3)
            && depthwise.geometry() == (1, 1, hidden)
            && d3 == (dim, hidden, 1, 1)
            && project.geometry() == (1, 0, 1);
        Ok(fits.then_some(Self {
            dim,
            hidden,
            w1: p1.weight,
            b1: p1.bias,
            w2: p2.weight,
            b2: p2.bias,
            w3: p3.weight,
            b3: p3.bias,
        }))
    }

    /// x [B, dim, H, W] (f32, CPU) → the block's output, same shape.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.dim || x.dtype() != DType::F32 || !x.device().is_cpu() {
            candle_core::bail!(
                "inverted residual: expected f32 [B, {}, H, W], got {:?}",
                self.dim,
                x.dims()
            );
        }
        let x = x.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let src = match &*storage {
            candle_core::Storage::Cpu(cpu) => contiguous_f32(cpu, layout)?,
            _ => candle_core::bail!("inverted residual: expected a CPU tensor"),
        };
        let mut out = vec![0f32; b * c * h * w];
        let dst = SendPtr(out.as_mut_ptr());
        let runs = h.div_ceil(RUN);
        (0..b * runs).into_par_iter().for_each(|item| {
            let (img, run) = (item / runs, item % runs);
            let image = &src[img * c * h * w..(img + 1) * c * h * w];
            // SAFETY: items write disjoint rows of `out` (their image's rows of their run).
            let out = unsafe { dst.get().add(img * c * h * w) };
            self.run(image, (h, w), run * RUN..((run + 1) * RUN).min(h), out);
        });
        Tensor::from_vec(out, (b, c, h, w), x.device())
    }

    /// Output rows `rows` of one image.
    fn run(&self, x: &[f32], (h, w): (usize, usize), rows: std::ops::Range<usize>, out: *mut f32) {
        let (c, hid) = (self.dim, self.hidden);
        let plane = h * w;
        let none = gemm::Parallelism::None;
        // ring[y % 3] holds expanded row y ([hidden][w], after GELU); `held[slot]` which row.
        let mut ring = vec![0f32; 3 * hid * w];
        let mut held = [usize::MAX; 3];
        let mut mid = vec![0f32; hid * w];
        let mut row_out = vec![0f32; c * w];
        for y in rows {
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
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
                row(y.checked_sub(1)),
                row(Some(y)),
                row(Some(y + 1)),
                &self.w2,
                &self.b2,
                &mut mid,
            );
            gelu_in_place(&mut mid);
            // out[co][y][x] = gelu(x[co][y][x] + b3 + Σ_ch w3[co][ch] · mid[ch][x])
            for (co, r) in row_out.chunks_exact_mut(w).enumerate() {
                add_scalar(r, &x[co * plane + y * w..][..w], self.b3[co]);
            }
            gemm_f32(
                (c, w, hid),
                &mut row_out,
                (w, 1),
                true,
                &self.w3,
                (hid, 1),
                &mid,
                (w, 1),
                none,
            );
            gelu_in_place(&mut row_out);
            for (co, r) in row_out.chunks_exact(w).enumerate() {
                // SAFETY: row y of channel co lies inside this image's part of `out`, and only
                // this run writes row y.
                unsafe {
                    std::ptr::copy_nonoverlapping(r.as_ptr(), out.add(co * plane + y * w), w)
                };
            }
        }
    }
}

widest_simd! {
    /// One output row of the depthwise 3x3 convolution (padding 1) from the three input rows
    /// around it (`above` / `below` empty at the image's edges), each [channels][w]; `out` the
    /// same shape as `centre`.
    fn depthwise_row(
        above: &[f32],
        centre: &[f32],
        below: &[f32],
        weights: &[f32],
        bias: &[f32],
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
    out: &mut [f32],
) {
    let channels = bias.len();
    let w = centre.len() / channels;
    for ch in 0..channels {
        let o = &mut out[ch * w..(ch + 1) * w];
        o.fill(bias[ch]);
        let k = &weights[ch * 9..ch * 9 + 9];
        for (dy, rows) in [above, centre, below].into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let r = &rows[ch * w..(ch + 1) * w];
            let (left, mid, right) = (k[dy * 3], k[dy * 3 + 1], k[dy * 3 + 2]);
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

    fn layers(dim: usize, hidden: usize) -> (Conv, Conv, Conv) {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let build = |vb: &VarBuilder| {
            (
                Conv::conv_bn(vb.pp("conv1"), dim, hidden, 1, 1, 0, 1).unwrap(),
                Conv::conv_bn(vb.pp("conv2"), hidden, hidden, 3, 1, 1, hidden).unwrap(),
                Conv::conv_bn(vb.pp("conv3"), hidden, dim, 1, 1, 0, 1).unwrap(),
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
            let (c1, c2, c3) = layers(dim, hidden);
            let block = RowwiseInvertedResidual::new(&c1, &c2, &c3)
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
        // Layers of other shapes are declined.
        let (c1, c2, _) = layers(8, 32);
        assert!(
            RowwiseInvertedResidual::new(&c1, &c2, &c1)
                .unwrap()
                .is_none()
        );
    }
}
