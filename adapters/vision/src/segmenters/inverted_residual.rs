//! TinyViT's inverted-residual block (1x1 expansion + GELU, depthwise 3x3 + GELU, 1x1
//! projection + residual + GELU) and its patch merging (the same three layers, the depthwise
//! one with stride 2, no residual and no final GELU), computed row by row on channels-last
//! maps so that the expanded map never leaves the cache.
//!
//! These run on the encoder's largest maps (64 channels at 256 x 256, expanded 4x): as three
//! whole-map passes they wrote and re-read the expanded map (64 MB) twice, and spent most of
//! their time waiting on memory rather than computing. Here each worker takes a run of output
//! rows and keeps a ring of three expanded rows (the depthwise convolution's window): for each
//! output row it expands the input rows it is missing (one GEMM each), applies the depthwise
//! convolution to the ring, and projects the result straight into the output row (a second
//! GEMM, onto the residual when there is one). The rows at the edges of a worker's run are
//! expanded by both neighbours, a few percent of extra work.
//!
//! Maps are channels-last ([B, H, W, C]), the layout of the transformer stages around these
//! blocks: a pixel's channels are then one contiguous row, the two 1x1 convolutions are linear
//! layers on a row of pixels ([`Dense`], packed f32 or, in the reduced-precision mode, bf16),
//! and no transposing copy is needed between a merge and the tokens of the next stage.

use std::mem::MaybeUninit;

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

use super::ops::{Conv, SendPtr};
use crate::encoders::dense::Dense;
use crate::encoders::kernels::{gelu_in_place, widest_simd, with_f32};

/// Output rows per work item.
const RUN: usize = 16;

/// The three layers' parameters as the row pass reads them.
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
    /// [hidden, dim], and its bias [hidden].
    expand: Dense,
    b1: Vec<f32>,
    /// The depthwise taps tap-major, [9][hidden] (each tap one contiguous row over the
    /// channels), and the bias [hidden].
    taps: Vec<f32>,
    b2: Vec<f32>,
    /// [out, hidden], and its bias [out].
    project: Dense,
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
        if !fits {
            return Ok(None);
        }
        let cpu = candle_core::Device::Cpu;
        let mut expand = Dense::new(Tensor::from_vec(p1.weight, (hidden, dim), &cpu)?, None);
        let mut project = Dense::new(Tensor::from_vec(p3.weight, (out, hidden), &cpu)?, None);
        expand.pack_for_cpu()?;
        project.pack_for_cpu()?;
        let mut taps = vec![0f32; 9 * hidden];
        for ch in 0..hidden {
            for t in 0..9 {
                taps[t * hidden + ch] = p2.weight[ch * 9 + t];
            }
        }
        Ok(Some(Self {
            dim,
            hidden,
            out,
            stride,
            residual,
            act,
            expand,
            b1: p1.bias,
            taps,
            b2: p2.bias,
            project,
            b3: p3.bias,
        }))
    }

    /// Puts the two 1x1 convolutions' weights in bf16 (the reduced-precision mode: their
    /// inputs are rounded to bf16, products summed in f32).
    pub(crate) fn pack_bf16(&mut self) -> Result<()> {
        self.expand.pack_bf16()?;
        self.project.pack_bf16()
    }

    /// x [B, H, W, dim] (f32, CPU) → [B, H', W', out] (H' = H, or ⌈H/2⌉ with stride 2).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        if c != self.dim || x.dtype() != DType::F32 || !x.device().is_cpu() {
            candle_core::bail!(
                "inverted residual: expected f32 [B, H, W, {}], got {:?}",
                self.dim,
                x.dims()
            );
        }
        let (oh, ow) = ((h - 1) / self.stride + 1, (w - 1) / self.stride + 1);
        let x = x.contiguous()?;
        let co = self.out;
        // Every output row is written once by its run (its bias or residual first): the
        // buffer is not zeroed beforehand.
        let mut out: Vec<f32> = Vec::with_capacity(b * oh * ow * co);
        let dst = SendPtr(out.as_mut_ptr());
        let runs = oh.div_ceil(RUN);
        let done = with_f32(&x, |src| {
            (0..b * runs).into_par_iter().try_for_each(|item| {
                let (img, run) = (item / runs, item % runs);
                let image = &src[img * h * w * c..(img + 1) * h * w * c];
                // SAFETY: items write disjoint rows of `out` (their image's rows of their run).
                let out = unsafe { dst.get().add(img * oh * ow * co) };
                let rows = run * RUN..((run + 1) * RUN).min(oh);
                self.run(image, (h, w), ow, rows, out)
            })
        });
        match done {
            Some(r) => r?,
            None => candle_core::bail!("inverted residual: expected a CPU tensor"),
        }
        // SAFETY: the runs cover every output row of every image, each row written in full.
        unsafe { out.set_len(b * oh * ow * co) };
        Tensor::from_vec(out, (b, oh, ow, co), x.device())
    }

    /// Output rows `rows` of one image ([h, w, dim] in, rows of `ow` pixels out).
    fn run(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        ow: usize,
        rows: std::ops::Range<usize>,
        out: *mut f32,
    ) -> Result<()> {
        let (c, hid, co, s) = (self.dim, self.hidden, self.out, self.stride);
        // ring[y % 3] holds expanded input row y ([w][hidden], after GELU); `held[slot]` which.
        let mut ring = vec![0f32; 3 * w * hid];
        let mut held = [usize::MAX; 3];
        let mut mid = vec![0f32; ow * hid];
        let mut scratch = Vec::new();
        for y in rows {
            // Output row y reads input rows s·y − 1 ..= s·y + 1.
            let centre = s * y;
            for yy in centre.saturating_sub(1)..(centre + 2).min(h) {
                let slot = yy % 3;
                if held[slot] == yy {
                    continue;
                }
                let dst = &mut ring[slot * w * hid..(slot + 1) * w * hid];
                for px in dst.chunks_exact_mut(hid) {
                    px.copy_from_slice(&self.b1);
                }
                self.expand.matmul_acc_serial(
                    &x[yy * w * c..(yy + 1) * w * c],
                    w,
                    dst,
                    &mut scratch,
                )?;
                gelu_in_place(dst);
                held[slot] = yy;
            }
            let row = |yy: Option<usize>| -> &[f32] {
                match yy {
                    Some(yy) if yy < h => &ring[(yy % 3) * w * hid..][..w * hid],
                    _ => &[],
                }
            };
            depthwise_row(
                row(centre.checked_sub(1)),
                row(Some(centre)),
                row(Some(centre + 1)),
                &self.taps,
                &self.b2,
                s,
                &mut mid,
            );
            gelu_in_place(&mut mid);
            // SAFETY: row y of this image's output lies inside `out`, and only this run
            // writes it.
            let orow: &mut [MaybeUninit<f32>] =
                unsafe { std::slice::from_raw_parts_mut(out.add(y * ow * co).cast(), ow * co) };
            if self.residual {
                add_into(orow, &x[y * w * c..(y + 1) * w * c], &self.b3);
            } else {
                for o in orow.chunks_exact_mut(co) {
                    for (o, b) in o.iter_mut().zip(&self.b3) {
                        o.write(*b);
                    }
                }
            }
            // SAFETY: every value of the row was just written (ow pixels of co channels; with
            // a residual c == co).
            let orow = unsafe { crate::encoders::kernels::assume_written(orow) };
            self.project
                .matmul_acc_serial(&mid, ow, orow, &mut scratch)?;
            if self.act {
                gelu_in_place(orow);
            }
        }
        Ok(())
    }
}

widest_simd! {
    /// One output row of the depthwise 3x3 convolution (padding 1, `stride` 1 or 2) from the
    /// three input rows around it (`above` / `below` empty at the image's edges), each
    /// [w][channels]; `out` is [output width][channels], `taps` [9][channels].
    fn depthwise_row(
        above: &[f32],
        centre: &[f32],
        below: &[f32],
        taps: &[f32],
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
    taps: &[f32],
    bias: &[f32],
    stride: usize,
    out: &mut [f32],
) {
    let channels = bias.len();
    let w = centre.len() / channels;
    for (ox, o) in out.chunks_exact_mut(channels).enumerate() {
        o.copy_from_slice(bias);
        for (dy, rows) in [above, centre, below].into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            for dx in 0..3 {
                // Output x reads input s·x − 1 ..= s·x + 1 (zero outside the row).
                let Some(ix) = (stride * ox + dx).checked_sub(1).filter(|&ix| ix < w) else {
                    continue;
                };
                let src = &rows[ix * channels..(ix + 1) * channels];
                let tap = &taps[(dy * 3 + dx) * channels..][..channels];
                for ((o, t), v) in o.iter_mut().zip(tap).zip(src) {
                    *o += t * v;
                }
            }
        }
    }
}

widest_simd! {
    /// `out = x + b`, pixel by pixel (`b` one pixel's channels), into memory not yet written.
    fn add_into(out: &mut [MaybeUninit<f32>], x: &[f32], b: &[f32]) => add_into_generic
}

#[inline(always)]
fn add_into_generic(out: &mut [MaybeUninit<f32>], x: &[f32], b: &[f32]) {
    for (o, x) in out.chunks_exact_mut(b.len()).zip(x.chunks_exact(b.len())) {
        for ((o, v), b) in o.iter_mut().zip(x).zip(b) {
            o.write(v + b);
        }
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

    fn channels_last(x: &Tensor) -> Tensor {
        x.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap()
    }

    fn channels_first(x: &Tensor) -> Tensor {
        x.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap()
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
            let ours = channels_first(&block.forward(&channels_last(&x)).unwrap());
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
            let ours = channels_first(&block.forward(&channels_last(&x)).unwrap());
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

    #[test]
    fn bf16_row_pass_stays_within_bf16_rounding() {
        // In bf16 the 1x1 convolutions' weights and inputs are rounded to bf16 (relative error
        // 2^-9 each) and the products summed in f32, against the three f32 layers here: a
        // deviation that must show (not 0) and stay within 2 % of the largest output.
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        for (dim, hidden, out, stride, residual) in [(16, 64, 16, 1, true), (32, 48, 40, 2, false)]
        {
            let (c1, c2, c3) = layers(dim, hidden, out, stride);
            let mut block = RowwiseInvertedResidual::new(&c1, &c2, &c3, residual, residual)
                .unwrap()
                .unwrap();
            block.pack_bf16().unwrap();
            let x = Tensor::randn(0f32, 1.0, (1, dim, 21, 18), &Device::Cpu).unwrap();
            let ours = channels_first(&block.forward(&channels_last(&x)).unwrap());
            let y = c1.forward_fused(&x, None, true).unwrap();
            let y = c2.forward_fused(&y, None, true).unwrap();
            let res = residual.then_some(&x);
            let want = c3.forward_fused(&y, res, residual).unwrap();
            let what = format!("bf16 {dim} -> {hidden} -> {out}, stride {stride}");
            crate::segmenters::ops::assert_within_rounding(&ours, &want, 0.02, &what);
        }
    }
}
