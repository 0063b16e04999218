//! Building blocks shared by the SAM image encoders and the mask decoder: exact GELU, channel
//! LayerNorm for NCHW maps, convolutions with batch norm folded in at load time, a fast
//! depthwise convolution, 2x2/stride-2 transposed convolutions as one matrix product, and the
//! MLPs of the decoder. CPU kernels are written here where candle's generic path is slow
//! (grouped convolutions run one group at a time in candle).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Linear, VarBuilder};
use rayon::prelude::*;

/// Exact (erf) GELU, as PyTorch's `nn.GELU()` default.
pub(crate) fn gelu(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.gelu_erf();
    }
    match x.dtype() {
        DType::F32 => x.contiguous()?.apply_op1_no_bwd(&GeluErf),
        dt => x
            .to_dtype(DType::F32)?
            .apply_op1_no_bwd(&GeluErf)?
            .to_dtype(dt),
    }
}

/// erf(x) for f32, maximum absolute error ~1e-7 (below f32 rounding of GELU's result), written so
/// that the compiler vectorises it: Abramowitz & Stegun 7.1.26 is not precise enough, so this is
/// the rational/exponential form used by many vector maths libraries (W. J. Cody's split at 0.5
/// replaced by a single Taylor/erfc branch pair).
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn erf_f32(x: f32) -> f32 {
    // For |x| < 0.84375 use the odd Taylor-like polynomial; above, use erfc via exp. The
    // coefficients are those of the FreeBSD msun single-precision `erff` (public domain).
    let a = x.abs();
    if a < 0.84375 {
        const PP0: f32 = 1.283_791_6e-1;
        const PP1: f32 = -3.250_421e-1;
        const PP2: f32 = -2.848_175e-2;
        const PP3: f32 = -5.770_270_3e-3;
        const PP4: f32 = -2.376_301_7e-5;
        const QQ1: f32 = 3.979_172e-1;
        const QQ2: f32 = 6.502_225e-2;
        const QQ3: f32 = 5.081_306_3e-3;
        const QQ4: f32 = 1.324_947_4e-4;
        const QQ5: f32 = -3.960_228_3e-6;
        let z = x * x;
        let r = PP0 + z * (PP1 + z * (PP2 + z * (PP3 + z * PP4)));
        let s = 1.0 + z * (QQ1 + z * (QQ2 + z * (QQ3 + z * (QQ4 + z * QQ5))));
        return x + x * (r / s);
    }
    if a < 1.25 {
        const ERX: f32 = 8.450_629e-1;
        const PA0: f32 = -2.362_118_6e-3;
        const PA1: f32 = 4.148_561_2e-1;
        const PA2: f32 = -3.722_078_8e-1;
        const PA3: f32 = 3.183_466_2e-1;
        const PA4: f32 = -1.108_946_9e-1;
        const PA5: f32 = 3.547_830_4e-2;
        const PA6: f32 = -2.166_375_6e-3;
        const QA1: f32 = 1.064_208_8e-1;
        const QA2: f32 = 5.403_979_7e-1;
        const QA3: f32 = 7.182_865_5e-2;
        const QA4: f32 = 1.261_712_2e-1;
        const QA5: f32 = 1.363_708_4e-2;
        const QA6: f32 = 1.198_449_9e-2;
        let s = a - 1.0;
        let p = PA0 + s * (PA1 + s * (PA2 + s * (PA3 + s * (PA4 + s * (PA5 + s * PA6)))));
        let q = 1.0 + s * (QA1 + s * (QA2 + s * (QA3 + s * (QA4 + s * (QA5 + s * QA6)))));
        let v = ERX + p / q;
        return if x >= 0.0 { v } else { -v };
    }
    if a >= 4.0 {
        return if x >= 0.0 { 1.0 } else { -1.0 };
    }
    let s = 1.0 / (a * a);
    let (r, q) = if a < 1.0 / 0.35 {
        const RA0: f32 = -9.864_944e-3;
        const RA1: f32 = -6.938_586e-1;
        const RA2: f32 = -1.055_862_6e1;
        const RA3: f32 = -6.237_533e1;
        const RA4: f32 = -1.623_966_7e2;
        const RA5: f32 = -1.846_051e2;
        const RA6: f32 = -8.128_744e1;
        const RA7: f32 = -9.814_33;
        const SA1: f32 = 1.965_127_2e1;
        const SA2: f32 = 1.376_577_6e2;
        const SA3: f32 = 4.345_659e2;
        const SA4: f32 = 6.453_873e2;
        const SA5: f32 = 4.290_081_4e2;
        const SA6: f32 = 1.086_35e2;
        const SA7: f32 = 6.570_25;
        const SA8: f32 = -6.042_441_5e-2;
        (
            RA0 + s * (RA1 + s * (RA2 + s * (RA3 + s * (RA4 + s * (RA5 + s * (RA6 + s * RA7)))))),
            1.0 + s
                * (SA1
                    + s * (SA2
                        + s * (SA3 + s * (SA4 + s * (SA5 + s * (SA6 + s * (SA7 + s * SA8))))))),
        )
    } else {
        const RB0: f32 = -9.864_943e-3;
        const RB1: f32 = -7.992_833e-1;
        const RB2: f32 = -1.775_795_5e1;
        const RB3: f32 = -1.606_363_8e2;
        const RB4: f32 = -6.375_664_5e2;
        const RB5: f32 = -1.025_095_1e3;
        const RB6: f32 = -4.835_191_9e2;
        const SB1: f32 = 3.033_806e1;
        const SB2: f32 = 3.257_925e2;
        const SB3: f32 = 1.536_729_6e3;
        const SB4: f32 = 3.199_858_2e3;
        const SB5: f32 = 2.553_05e3;
        const SB6: f32 = 4.745_285_4e2;
        const SB7: f32 = -2.244_095_2e1;
        (
            RB0 + s * (RB1 + s * (RB2 + s * (RB3 + s * (RB4 + s * (RB5 + s * RB6))))),
            1.0 + s * (SB1 + s * (SB2 + s * (SB3 + s * (SB4 + s * (SB5 + s * (SB6 + s * SB7)))))),
        )
    };
    // erfc(a) = exp(-a^2 - 0.5625 + r/q) / a, with a^2 split to keep precision.
    let z = f32::from_bits(a.to_bits() & 0xffff_f000);
    let e = (-z * z - 0.5625).exp() * ((z - a) * (z + a) + r / q).exp() / a;
    if x >= 0.0 { 1.0 - e } else { e - 1.0 }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "sam-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(16 * 1024)
            .zip(src.par_chunks(16 * 1024))
            .for_each(|(o, s)| {
                for (o, &v) in o.iter_mut().zip(s) {
                    *o = 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The f32 elements of a contiguous CPU tensor.
pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let all = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => candle_core::bail!("expected a contiguous tensor"),
    }
}

/// LayerNorm over the channel dimension of an NCHW map (SAM's `LayerNorm2d`, eps 1e-6).
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm2d {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm2d {
    pub(crate) fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(channels, "weight")?.reshape((1, channels, 1, 1))?,
            bias: vb.get(channels, "bias")?.reshape((1, channels, 1, 1))?,
            eps: 1e-6,
        })
    }
}

impl Module for LayerNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 && self.weight.dtype() == DType::F32 {
            let op = ChannelNorm {
                weight: self.weight.flatten_all()?.to_vec1::<f32>()?,
                bias: self.bias.flatten_all()?.to_vec1::<f32>()?,
                eps: self.eps as f32,
            };
            return x.contiguous()?.apply_op1_no_bwd(&op);
        }
        let u = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&u)?;
        let s = xc.sqr()?.mean_keepdim(1)?;
        let xn = xc.broadcast_div(&(s + self.eps)?.sqrt()?)?;
        xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// LayerNorm over channels of a contiguous f32 NCHW tensor, computed plane by plane (the
/// reduction runs across planes, so every pass is over contiguous pixels).
struct ChannelNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl CustomOp1 for ChannelNorm {
    fn name(&self) -> &'static str {
        "sam-layer-norm-2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let dims = layout.dims();
        if dims.len() != 4 || dims[1] != self.weight.len() {
            candle_core::bail!("layer-norm-2d: unexpected shape {dims:?}");
        }
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        let mut out = vec![0f32; src.len()];
        const BAND: usize = 1024;
        // Work items: (image, band of pixels).
        let bands = hw.div_ceil(BAND);
        let items: Vec<(usize, usize)> = (0..dims[0])
            .flat_map(|b| (0..bands).map(move |k| (b, k)))
            .collect();
        let out_ptr = SendPtr(out.as_mut_ptr());
        items.par_iter().for_each(|&(b, k)| {
            let p0 = k * BAND;
            let len = BAND.min(hw - p0);
            let base = b * c * hw;
            let mut mean = [0f32; BAND];
            let mut var = [0f32; BAND];
            for ch in 0..c {
                let row = &src[base + ch * hw + p0..base + ch * hw + p0 + len];
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            let inv_c = 1.0 / c as f32;
            for m in mean.iter_mut().take(len) {
                *m *= inv_c;
            }
            for ch in 0..c {
                let row = &src[base + ch * hw + p0..base + ch * hw + p0 + len];
                for ((s2, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
                    let d = v - m;
                    *s2 += d * d;
                }
            }
            for s2 in var.iter_mut().take(len) {
                *s2 = 1.0 / (*s2 * inv_c + self.eps).sqrt();
            }
            for ch in 0..c {
                let row = &src[base + ch * hw + p0..base + ch * hw + p0 + len];
                let (w, bb) = (self.weight[ch], self.bias[ch]);
                // SAFETY: every work item writes a disjoint range of `out`.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.get().add(base + ch * hw + p0), len)
                };
                for (((o, &v), &m), &r) in dst.iter_mut().zip(row).zip(&mean).zip(&var) {
                    *o = (v - m) * r * w + bb;
                }
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// A raw pointer handed to parallel workers that write disjoint ranges.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used for disjoint writes from rayon workers while the owner waits.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// The 3x3 patches of a [c, h, w] plane stack (stride 1, zero padding 1): [c*9, h*w].
fn im2col3x3(src: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let hw = h * w;
    let mut cols = vec![0f32; c * 9 * hw];
    cols.par_chunks_mut(hw).enumerate().for_each(|(r, dst)| {
        let (ch, ky, kx) = (r / 9, (r % 9) / 3, r % 3);
        let plane = &src[ch * hw..(ch + 1) * hw];
        let x0 = if kx == 0 { 1 } else { 0 };
        let x1 = if kx == 2 { w - 1 } else { w };
        for y in 0..h {
            let iy = y as isize + ky as isize - 1;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let iy = iy as usize;
            let sx0 = x0 + kx - 1;
            dst[y * w + x0..y * w + x1]
                .copy_from_slice(&plane[iy * w + sx0..iy * w + sx0 + (x1 - x0)]);
        }
    });
    cols
}

/// 3x3, stride 1, padding 1 convolution on f32 CPU tensors: im2col per image and one GEMM.
fn conv3x3(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, c, h, wd) = x.dims4()?;
    let co = w.dim(0)?;
    let wm = w.reshape((co, c * 9))?;
    let x = x.contiguous()?;
    let mut outs = Vec::with_capacity(b);
    for i in 0..b {
        let xi = x.get(i)?.flatten_all()?.to_vec1::<f32>()?;
        let cols = Tensor::from_vec(im2col3x3(&xi, c, h, wd), (c * 9, h * wd), x.device())?;
        outs.push(wm.matmul(&cols)?.reshape((1, co, h, wd))?);
    }
    Tensor::cat(&outs, 0)
}

/// One output channel per image: `out[i] = sum_c k[i, c] (*) y[i, c]` (3x3, padding 1), for
/// contiguous f32 y [n, c, h, w] and k [n, c, 3, 3]. Returns [n, 1, h, w].
pub(crate) fn conv3x3_single(y: &Tensor, k: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = y.dims4()?;
    let ys = y.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let ks = k.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let hw = h * w;
    let mut out = vec![0f32; n * hw];
    const ROWS: usize = 32;
    out.par_chunks_mut(ROWS * w)
        .enumerate()
        .for_each(|(chunk, dst)| {
            let per_img = h.div_ceil(ROWS);
            let (i, band) = (chunk / per_img, chunk % per_img);
            let y0 = band * ROWS;
            let rows = dst.len() / w;
            for ch in 0..c {
                let plane = &ys[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                let kk = &ks[(i * c + ch) * 9..(i * c + ch + 1) * 9];
                for r in 0..rows {
                    let oy = y0 + r;
                    let orow = &mut dst[r * w..(r + 1) * w];
                    for ky in 0..3 {
                        let iy = oy as isize + ky as isize - 1;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let srow = &plane[iy as usize * w..(iy as usize + 1) * w];
                        let (k0, k1, k2) = (kk[ky * 3], kk[ky * 3 + 1], kk[ky * 3 + 2]);
                        // centre tap over all x, left/right taps shifted.
                        for (o, &v) in orow.iter_mut().zip(srow) {
                            *o += k1 * v;
                        }
                        for (o, &v) in orow[1..].iter_mut().zip(&srow[..w - 1]) {
                            *o += k0 * v;
                        }
                        for (o, &v) in orow[..w - 1].iter_mut().zip(&srow[1..]) {
                            *o += k2 * v;
                        }
                    }
                }
            }
        });
    Tensor::from_vec(out, (n, 1, h, w), y.device())
}

/// A 2-D convolution with optional bias (PyTorch `nn.Conv2d` weight layout). 1x1 convolutions
/// run as one matrix product, depthwise ones on a dedicated kernel.
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl Conv {
    pub(crate) fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = vb.get((c_out, c_in, k, k), "weight")?;
        let bias = if bias {
            Some(vb.get(c_out, "bias")?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
            groups: 1,
        })
    }

    /// PyTorch `Conv2d_BN` of TinyViT (`c` = conv without bias, `bn` = BatchNorm2d in eval mode),
    /// with the batch norm folded into the convolution.
    pub(crate) fn conv_bn(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> Result<Self> {
        // Folded in f32 whatever the model's dtype, then converted.
        let f32 = |vb: &VarBuilder, shape: candle_core::Shape, name: &str| {
            vb.get_with_hints_dtype(shape, name, Default::default(), DType::F32)
        };
        let w = f32(&vb.pp("c"), (c_out, c_in / groups, k, k).into(), "weight")?;
        let bn = vb.pp("bn");
        let gamma = f32(&bn, c_out.into(), "weight")?;
        let beta = f32(&bn, c_out.into(), "bias")?;
        let mean = f32(&bn, c_out.into(), "running_mean")?;
        let var = f32(&bn, c_out.into(), "running_var")?;
        let scale = gamma.div(&(var + 1e-5)?.sqrt()?)?;
        let weight = w
            .broadcast_mul(&scale.reshape((c_out, 1, 1, 1))?)?
            .to_dtype(vb.dtype())?;
        let bias = beta.sub(&mean.mul(&scale)?)?.to_dtype(vb.dtype())?;
        Ok(Self {
            weight,
            bias: Some(bias),
            stride,
            padding,
            groups,
        })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c_in, h, w) = x.dims4()?;
        let (c_out, _, kh, kw) = self.weight.dims4()?;
        if self.groups > 1 && self.groups == c_in && c_in == c_out && x.device().is_cpu() {
            // Reduced precisions are computed in f32 on the CPU (candle would run one group at
            // a time).
            let dt = x.dtype();
            let bias = match &self.bias {
                Some(b) => b.to_dtype(DType::F32)?,
                None => Tensor::zeros(c_out, DType::F32, x.device())?,
            };
            let w = self.weight.to_dtype(DType::F32)?;
            let x = x.to_dtype(DType::F32)?;
            return depthwise(&x, &w, &bias, self.stride, self.padding)?.to_dtype(dt);
        }
        let fast3 = kh == 3
            && kw == 3
            && self.stride == 1
            && self.padding == 1
            && self.groups == 1
            && x.device().is_cpu()
            && x.dtype() == DType::F32;
        let y = if fast3 {
            conv3x3(x, &self.weight)?
        } else if kh == 1 && kw == 1 && self.stride == 1 && self.padding == 0 && self.groups == 1 {
            let wm = self.weight.reshape((c_out, c_in))?;
            let xm = x.reshape((b, c_in, h * w))?;
            wm.broadcast_left(b)?
                .matmul(&xm)?
                .reshape((b, c_out, h, w))?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?
        };
        match &self.bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, c_out, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Depthwise KxK convolution with bias on a contiguous f32 NCHW tensor.
fn depthwise(x: &Tensor, w: &Tensor, bias: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    let (b, c, h, wd) = x.dims4()?;
    let (_, _, k, _) = w.dims4()?;
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (wd + 2 * pad - k) / stride + 1;
    let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let ws = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let bs = bias.to_vec1::<f32>()?;
    let mut out = vec![0f32; b * c * oh * ow];
    out.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, o)| {
            let ch = plane % c;
            let src = &xs[plane * h * wd..(plane + 1) * h * wd];
            let ker = &ws[ch * k * k..(ch + 1) * k * k];
            o.fill(bs[ch]);
            for oy in 0..oh {
                let row = &mut o[oy * ow..(oy + 1) * ow];
                for ky in 0..k {
                    let iy = (oy * stride + ky) as isize - pad as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let srow = &src[iy as usize * wd..(iy as usize + 1) * wd];
                    for kx in 0..k {
                        let wv = ker[ky * k + kx];
                        // ox range where ix = ox*stride + kx - pad is inside [0, wd).
                        let lo = if kx >= pad {
                            0
                        } else {
                            (pad - kx).div_ceil(stride)
                        };
                        let hi_excl = {
                            let lim = wd + pad - kx; // ix < wd  <=> ox*stride < wd + pad - kx
                            lim.div_ceil(stride).min(ow)
                        };
                        if stride == 1 {
                            let off = lo + kx - pad;
                            for (ox, r) in row[lo..hi_excl].iter_mut().enumerate() {
                                *r += wv * srow[off + ox];
                            }
                        } else {
                            for (ox, r) in row.iter_mut().enumerate().take(hi_excl).skip(lo) {
                                *r += wv * srow[ox * stride + kx - pad];
                            }
                        }
                    }
                }
            }
        });
    Tensor::from_vec(out, (b, c, oh, ow), x.device())
}

/// `nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2)`: every input pixel writes its own
/// 2x2 output block, so the whole layer is one matrix product and a pixel shuffle.
#[derive(Debug, Clone)]
pub(crate) struct ConvTranspose2x2 {
    /// [c_out*4, c_in], rows ordered (c_out, ky, kx).
    weight: Tensor,
    bias: Tensor,
    c_out: usize,
}

impl ConvTranspose2x2 {
    pub(crate) fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        let w = vb.get((c_in, c_out, 2, 2), "weight")?;
        let weight = w.reshape((c_in, c_out * 4))?.t()?.contiguous()?;
        let bias = vb.get(c_out, "bias")?;
        Ok(Self {
            weight,
            bias,
            c_out,
        })
    }
}

impl Module for ConvTranspose2x2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c_in, h, w) = x.dims4()?;
        let xm = x.reshape((b, c_in, h * w))?;
        let y = self.weight.broadcast_left(b)?.matmul(&xm)?; // [b, c_out*4, h*w]
        let y = y
            .reshape((b, self.c_out, 2, 2, h, w))?
            .permute((0, 1, 4, 2, 5, 3))?
            .reshape((b, self.c_out, 2 * h, 2 * w))?;
        y.broadcast_add(&self.bias.reshape((1, self.c_out, 1, 1))?)
    }
}

/// The decoder's MLP: `num_layers` linear layers with ReLU between them.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    pub(crate) fn new(
        vb: VarBuilder,
        input: usize,
        hidden: usize,
        output: usize,
        num_layers: usize,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(num_layers);
        for i in 0..num_layers {
            let n_in = if i == 0 { input } else { hidden };
            let n_out = if i + 1 == num_layers { output } else { hidden };
            layers.push(candle_nn::linear(
                n_in,
                n_out,
                vb.pp(format!("layers.{i}")),
            )?);
        }
        Ok(Self { layers })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < n {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

/// Softmax over the last dimension (fused on CPU).
pub(crate) fn softmax(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax_last_dim(x)
}

#[cfg(test)]
mod tests {
    use super::erf_f32;

    #[test]
    fn erf_matches_f64_reference_to_f32_precision() {
        let mut worst = 0f64;
        for i in -80_000..=80_000 {
            let x = i as f64 * 1e-4;
            let want = candle_core::cpu::erf::erf_f64(x);
            let got = erf_f32(x as f32) as f64;
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 3e-7, "erf error {worst}");
    }
}
