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
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&GeluErf)
    } else {
        x.gelu_erf()
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
        let u = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&u)?;
        let s = xc.sqr()?.mean_keepdim(1)?;
        let xn = xc.broadcast_div(&(s + self.eps)?.sqrt()?)?;
        xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
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
        let w = vb.pp("c").get((c_out, c_in / groups, k, k), "weight")?;
        let bn = vb.pp("bn");
        let gamma = bn.get(c_out, "weight")?;
        let beta = bn.get(c_out, "bias")?;
        let mean = bn.get(c_out, "running_mean")?;
        let var = bn.get(c_out, "running_var")?;
        let scale = gamma.div(&(var + 1e-5)?.sqrt()?)?;
        let weight = w.broadcast_mul(&scale.reshape((c_out, 1, 1, 1))?)?;
        let bias = beta.sub(&mean.mul(&scale)?)?;
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
        if self.groups > 1
            && self.groups == c_in
            && c_in == c_out
            && x.device().is_cpu()
            && x.dtype() == DType::F32
        {
            let bias = match &self.bias {
                Some(b) => b.clone(),
                None => Tensor::zeros(c_out, DType::F32, x.device())?,
            };
            return depthwise(x, &self.weight, &bias, self.stride, self.padding);
        }
        let y = if kh == 1 && kw == 1 && self.stride == 1 && self.padding == 0 && self.groups == 1 {
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
