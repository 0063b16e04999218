//! Building blocks shared by the SAM image encoders and the mask decoder: exact GELU, channel
//! LayerNorm for NCHW maps, convolutions with batch norm folded in at load time, a fast
//! depthwise convolution, 2x2/stride-2 transposed convolutions as one matrix product, and the
//! MLPs of the decoder. CPU kernels are written here where candle's generic path is slow
//! (grouped convolutions run one group at a time in candle).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Linear, VarBuilder};
use rayon::prelude::*;

use crate::encoders::kernels::{gelu_in_place, widest_simd};

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

/// `dst ← GELU(src)`.
fn gelu_slice(src: &[f32], dst: &mut [f32]) {
    dst.copy_from_slice(src);
    gelu_in_place(dst);
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
            .for_each(|(o, s)| gelu_slice(s, o));
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
    /// SAM's epsilon for this norm.
    pub(crate) const EPS: f64 = 1e-6;

    pub(crate) fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(channels, "weight")?.reshape((1, channels, 1, 1))?,
            bias: vb.get(channels, "bias")?.reshape((1, channels, 1, 1))?,
            eps: Self::EPS,
        })
    }

    /// The weight, bias and epsilon as f32 values, for kernels that normalise rows of
    /// channels-last maps.
    pub(crate) fn f32_parameters(&self) -> Result<(Vec<f32>, Vec<f32>, f32)> {
        let values = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
        Ok((values(&self.weight)?, values(&self.bias)?, self.eps as f32))
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

/// Pixels per work item of [`ChannelNorm`].
const NORM_BAND: usize = 1024;

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
        const BAND: usize = NORM_BAND;
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
            let band = NormBand { hw, p0, len };
            // SAFETY: `out` holds the whole image, and no other task writes this band.
            let image_out = SendPtr(unsafe { out_ptr.get().add(base) });
            norm_band(self, &src[base..base + c * hw], band, image_out)
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Pixels `p0 .. p0 + len` of every `hw`-pixel channel plane of one image.
#[derive(Clone, Copy)]
struct NormBand {
    hw: usize,
    p0: usize,
    len: usize,
}

widest_simd! {
    fn norm_band(norm: &ChannelNorm, image: &[f32], band: NormBand, out: SendPtr)
        => norm_band_generic
}

/// One band of at most `NORM_BAND` pixels of one image (`image` its input planes, `out` the
/// start of its output planes). Only this call writes the band's output.
#[inline(always)]
fn norm_band_generic(norm: &ChannelNorm, image: &[f32], band: NormBand, out: SendPtr) {
    let NormBand { hw, p0, len } = band;
    let c = norm.weight.len();
    let src = |ch: usize| &image[ch * hw + p0..ch * hw + p0 + len];
    let mut mean = [0f32; NORM_BAND];
    let mut var = [0f32; NORM_BAND];
    for ch in 0..c {
        for (m, &v) in mean.iter_mut().zip(src(ch)) {
            *m += v;
        }
    }
    let inv_c = 1.0 / c as f32;
    for m in mean.iter_mut() {
        *m *= inv_c;
    }
    for ch in 0..c {
        for ((s2, &v), &m) in var.iter_mut().zip(src(ch)).zip(&mean) {
            let d = v - m;
            *s2 += d * d;
        }
    }
    for s2 in var.iter_mut() {
        *s2 = 1.0 / (*s2 * inv_c + norm.eps).sqrt();
    }
    for ch in 0..c {
        let (w, bb) = (norm.weight[ch], norm.bias[ch]);
        // SAFETY: the band's rows of channel `ch` lie inside the image's output and no other
        // task writes them (see the caller).
        let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(ch * hw + p0), len) };
        for (((o, &v), &m), &r) in dst.iter_mut().zip(src(ch)).zip(&mean).zip(&var) {
            *o = (v - m) * r * w + bb;
        }
    }
}

/// A raw pointer handed to parallel workers that write disjoint ranges.
pub(crate) struct SendPtr<T = f32>(pub(crate) *mut T);
// Not derived: the derives would require `T: Clone`, where a pointer is always copied.
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: only used for disjoint writes from rayon workers while the owner waits.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// 3x3, stride 1, padding 1 convolution on f32 CPU tensors. The input is copied once into a
/// zero-bordered plane stack, and the output computed on the padded width (the two padding
/// columns of each row are dropped at the end), in bands of rows: per band, the nine taps'
/// shifted rows are laid side by side (an im2col of the band only, 2.4 MB for the HQ decoder's
/// mask features instead of 75 MB for the whole map) and multiplied with all weights at once, so
/// each output value is written once from a product over `9 * c` terms. Bands run in parallel.
fn conv3x3(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    use crate::encoders::kernels::gemm_f32;
    const BAND: usize = 8;
    let (b, c, h, wd) = x.dims4()?;
    let co = w.dim(0)?;
    let pw = wd + 2;
    let k = 9 * c;
    // Two more values: the last taps of the last (discarded) columns read just past the plane.
    let plane = (h + 2) * pw + 2;
    let wv: Vec<f32> = w.contiguous()?.flatten_all()?.to_vec1()?;
    // [co × 9c], columns tap-major then channel, as the band's rows are laid out.
    let mut weights = vec![0f32; co * k];
    for o in 0..co {
        for ci in 0..c {
            for t in 0..9 {
                weights[o * k + t * c + ci] = wv[(o * c + ci) * 9 + t];
            }
        }
    }
    let xv: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
    let mut padded = vec![0f32; c * plane];
    let band_size = co * BAND * pw;
    let mut acc = vec![0f32; h.div_ceil(BAND) * band_size];
    let mut out = Vec::with_capacity(b * co * h * wd);
    for i in 0..b {
        for ch in 0..c {
            for y in 0..h {
                let src = &xv[((i * c + ch) * h + y) * wd..((i * c + ch) * h + y + 1) * wd];
                let at = ch * plane + (y + 1) * pw + 1;
                padded[at..at + wd].copy_from_slice(src);
            }
        }
        // One band buffer per worker, reused across its bands.
        acc.par_chunks_mut(band_size).enumerate().for_each_init(
            Vec::new,
            |cols: &mut Vec<f32>, (band, dst)| {
                let y0 = band * BAND;
                let len = BAND.min(h - y0) * pw;
                cols.resize(k * len, 0.0);
                for t in 0..9 {
                    let offset = (t / 3) * pw + t % 3 + y0 * pw;
                    for ci in 0..c {
                        let from = ci * plane + offset;
                        cols[(t * c + ci) * len..(t * c + ci + 1) * len]
                            .copy_from_slice(&padded[from..from + len]);
                    }
                }
                // Computed as its transpose, pixels by channels: the long pixel dimension is
                // the GEMM's contiguous one.
                gemm_f32(
                    (len, co, k),
                    dst,
                    (1, BAND * pw),
                    false,
                    cols,
                    (1, len),
                    &weights,
                    (1, k),
                    gemm::Parallelism::None,
                );
            },
        );
        for o in 0..co {
            for y in 0..h {
                let row = (y / BAND) * band_size + o * BAND * pw + (y % BAND) * pw;
                out.extend_from_slice(&acc[row..row + wd]);
            }
        }
    }
    Tensor::from_vec(out, (b, co, h, wd), x.device())
}

/// What [`conv_banded`] does after the product, and how it lays out its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BandedOutput {
    /// GELU on each band as it is finished (no separate pass over the map).
    pub(crate) act: bool,
    /// `[B, OH, OW, C]` instead of `[B, C, OH, OW]`: each band is then one contiguous piece of
    /// the output, which the product writes in place.
    pub(crate) channels_last: bool,
}

/// Any KxK convolution (stride, padding, no groups) with bias on f32 CPU tensors, in bands of
/// output rows: per band, the taps of its rows are gathered side by side (an im2col of the
/// band only) and multiplied with all weights at once, onto the bias. candle's own convolution
/// builds the im2col of the whole map single-threaded; TinyViT's stride-2 patch embedding spent
/// 190 ms there.
fn conv_banded(
    x: &Tensor,
    w: &Tensor,
    bias: &[f32],
    (stride, pad): (usize, usize),
    output: BandedOutput,
) -> Result<Tensor> {
    use crate::encoders::kernels::{gemm_f32, with_f32};
    const BAND: usize = 8;
    let (b, c, h, wd) = x.dims4()?;
    let (co, _, kh, kw) = w.dims4()?;
    let oh = (h + 2 * pad - kh) / stride + 1;
    let ow = (wd + 2 * pad - kw) / stride + 1;
    let k = c * kh * kw;
    let weights: Vec<f32> = w.contiguous()?.flatten_all()?.to_vec1()?; // [co × (c, ky, kx)]
    if bias.len() != co {
        candle_core::bail!("convolution: {} bias values for {co} channels", bias.len());
    }
    let x = x.contiguous()?;
    let bands = oh.div_ceil(BAND);
    let mut out = vec![0f32; b * co * oh * ow];
    let dst = SendPtr(out.as_mut_ptr());
    let serial = gemm::Parallelism::None;
    let done = with_f32(&x, |xs| {
        (0..b * bands).into_par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |(cols, acc): &mut (Vec<f32>, Vec<f32>), item| {
                let (img, band) = (item / bands, item % bands);
                let oy0 = band * BAND;
                let len = BAND.min(oh - oy0) * ow;
                cols.clear();
                cols.resize(k * len, 0.0);
                for ci in 0..c {
                    let plane = &xs[(img * c + ci) * h * wd..(img * c + ci + 1) * h * wd];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            // Output columns whose tap lands inside the row: s·x + kx − pad
                            // in 0 .. wd.
                            let first = pad.saturating_sub(kx).div_ceil(stride);
                            let end = (wd + pad).saturating_sub(kx).div_ceil(stride).min(ow);
                            let row = ((ci * kh + ky) * kw + kx) * len;
                            let tap = &mut cols[row..row + len];
                            for (r, out_row) in tap.chunks_exact_mut(ow).enumerate() {
                                let iy = ((oy0 + r) * stride + ky) as isize - pad as isize;
                                if iy < 0 || iy >= h as isize || first >= end {
                                    continue;
                                }
                                let src = &plane[iy as usize * wd..(iy as usize + 1) * wd];
                                let from = first * stride + kx - pad;
                                for (v, s) in out_row[first..end]
                                    .iter_mut()
                                    .zip(src[from..].iter().step_by(stride))
                                {
                                    *v = *s;
                                }
                            }
                        }
                    }
                }
                if output.channels_last {
                    // SAFETY: each (image, band) item writes only its own rows, which are
                    // one contiguous piece of a channels-last output.
                    let at = (img * oh * ow + oy0 * ow) * co;
                    let piece =
                        unsafe { std::slice::from_raw_parts_mut(dst.get().add(at), len * co) };
                    for px in piece.chunks_exact_mut(co) {
                        px.copy_from_slice(bias);
                    }
                    // piece[len × co] += colsᵀ · weightsᵀ
                    gemm_f32(
                        (len, co, k),
                        piece,
                        (co, 1),
                        true,
                        cols,
                        (1, len),
                        &weights,
                        (1, k),
                        serial,
                    );
                    if output.act {
                        gelu_in_place(piece);
                    }
                    return;
                }
                acc.resize(co * len, 0.0);
                for (plane, &v) in acc.chunks_exact_mut(len).zip(bias) {
                    plane.fill(v);
                }
                gemm_f32(
                    (co, len, k),
                    acc,
                    (len, 1),
                    true,
                    &weights,
                    (k, 1),
                    cols,
                    (len, 1),
                    serial,
                );
                if output.act {
                    gelu_in_place(acc);
                }
                for (o, values) in acc.chunks_exact(len).enumerate() {
                    let at = (img * co + o) * oh * ow + oy0 * ow;
                    // SAFETY: each (image, band) item writes only its own rows of each plane.
                    unsafe {
                        std::ptr::copy_nonoverlapping(values.as_ptr(), dst.get().add(at), len)
                    };
                }
            },
        )
    });
    if done.is_none() {
        candle_core::bail!("convolution: expected an f32 CPU tensor");
    }
    let shape = if output.channels_last {
        (b, oh, ow, co)
    } else {
        (b, co, oh, ow)
    };
    Tensor::from_vec(out, shape, x.device())
}

/// One output channel per image: `out[i] = sum_c k[i, c] (*) y[i, c]` (3x3, padding 1), for
/// contiguous f32 y [n, c, h, w] and k [n, c, 3, 3]. Returns [n, 1, h, w].
pub(crate) fn conv3x3_single(y: &Tensor, k: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = y.dims4()?;
    let ys = y.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let ks = k.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; n * h * w];
    // Work items: bands of rows of one image (an image's rows never share an item with the next).
    out.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(i, image)| {
            let (ys, ks) = (&ys[i * c * h * w..], &ks[i * c * 9..]);
            let shape = (c, h, w);
            image
                .par_chunks_mut(SINGLE_ROWS * w)
                .enumerate()
                .for_each(|(band, dst)| single_band(ys, ks, shape, band, dst));
        });
    Tensor::from_vec(out, (n, 1, h, w), y.device())
}

/// Output rows per work item of [`conv3x3_single`].
const SINGLE_ROWS: usize = 32;

widest_simd! {
    fn single_band(
        ys: &[f32],
        ks: &[f32],
        shape: (usize, usize, usize),
        band: usize,
        dst: &mut [f32],
    ) => single_band_generic
}

/// Rows `band * SINGLE_ROWS ..` of one image's output (`dst`), from its planes `ys` [c, h, w]
/// and kernels `ks` [c, 3, 3].
#[inline(always)]
fn single_band_generic(
    ys: &[f32],
    ks: &[f32],
    (c, h, w): (usize, usize, usize),
    band: usize,
    dst: &mut [f32],
) {
    let y0 = band * SINGLE_ROWS;
    let rows = dst.len() / w;
    for ch in 0..c {
        let plane = &ys[ch * h * w..(ch + 1) * h * w];
        let kk = &ks[ch * 9..(ch + 1) * 9];
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

/// A convolution's parameters as f32 values ([`Conv::f32_parameters`]).
pub(crate) struct ConvParameters {
    /// Flattened in PyTorch's order, [c_out, c_in / groups, k, k].
    pub(crate) weight: Vec<f32>,
    /// [c_out] (zeros when the layer has none).
    pub(crate) bias: Vec<f32>,
    /// The weight's dims.
    pub(crate) dims: (usize, usize, usize, usize),
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

impl Conv {
    /// `gelu(conv(x) + residual)`, the residual and the GELU optional. 1x1 and depthwise
    /// convolutions on f32 CPU tensors (TinyViT's inverted-residual blocks, on 64 MB maps) run it
    /// in one pass over the output: the bias and residual are the product's starting values and
    /// GELU is applied to each piece as it is finished. Others compose the operations. This is
    /// also [`Module::forward`] (no residual, no GELU).
    pub(crate) fn forward_fused(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        act: bool,
    ) -> Result<Tensor> {
        let (b, c_in, h, w) = x.dims4()?;
        let (c_out, _, kh, kw) = self.weight.dims4()?;
        let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
        let pointwise = kh == 1 && kw == 1 && self.stride == 1 && self.padding == 0;
        if pointwise && self.groups == 1 && f32_cpu(x) && residual.is_none_or(f32_cpu) {
            return self.pointwise_fused(x, (b, c_in, c_out, h * w), residual, act);
        }
        let depthwise_layer = self.groups > 1 && self.groups == c_in && c_in == c_out;
        if depthwise_layer && residual.is_none() && x.device().is_cpu() {
            // Reduced precisions are computed in f32 on the CPU (candle would run one group at
            // a time).
            let dt = x.dtype();
            let bias = match &self.bias {
                Some(b) => b.to_dtype(DType::F32)?,
                None => Tensor::zeros(c_out, DType::F32, x.device())?,
            };
            let w = self.weight.to_dtype(DType::F32)?;
            let x = x.to_dtype(DType::F32)?;
            return depthwise(&x, &w, &bias, self.stride, self.padding, act)?.to_dtype(dt);
        }
        if residual.is_none() && self.banded_fits(x) {
            let output = BandedOutput {
                act,
                channels_last: false,
            };
            return self.banded(x, output);
        }
        let y = self.plain(x)?;
        let y = match residual {
            Some(r) => (y + r)?,
            None => y,
        };
        if act { gelu(&y) } else { Ok(y) }
    }

    /// The weight and bias as f32 values, for kernels that pack them their own way.
    pub(crate) fn f32_parameters(&self) -> Result<ConvParameters> {
        let dims = self.weight.dims4()?;
        let weight = self.weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bias = match &self.bias {
            Some(b) => b.to_dtype(DType::F32)?.to_vec1()?,
            None => vec![0.0; dims.0],
        };
        Ok(ConvParameters { weight, bias, dims })
    }

    /// The layer's stride, padding and groups.
    pub(crate) fn geometry(&self) -> (usize, usize, usize) {
        (self.stride, self.padding, self.groups)
    }

    /// This depthwise 3x3 convolution (stride 1, padding 1) on channels-last tokens: `x` and
    /// the optional `plus` [1, h·w, C] (the convolution's input is their sum) → [1, h·w, C].
    /// TinyViT's blocks keep their maps as tokens; converting them to NCHW and back for this
    /// one convolution cost two transposing copies per block. `None` when the layer or the
    /// tensors do not fit (not depthwise 3x3, not contiguous f32 on the CPU).
    pub(crate) fn depthwise_tokens(
        &self,
        x: &Tensor,
        plus: Option<&Tensor>,
        (h, w): (usize, usize),
    ) -> Result<Option<Tensor>> {
        let (c_out, one, kh, kw) = self.weight.dims4()?;
        let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
        if one != 1
            || (kh, kw) != (3, 3)
            || self.groups != c_out
            || self.stride != 1
            || self.padding != 1
            || x.dims3()? != (1, h * w, c_out)
            || !f32_cpu(x)
            || !f32_cpu(&self.weight)
            || plus.is_some_and(|p| p.dims() != x.dims() || !f32_cpu(p))
        {
            return Ok(None);
        }
        let c = c_out;
        // Weights tap-major, [9][C], so each tap is one contiguous row over the channels.
        let wk: Vec<f32> = self.weight.flatten_all()?.to_vec1()?;
        let mut taps = vec![0f32; 9 * c];
        for ch in 0..c {
            for t in 0..9 {
                taps[t * c + ch] = wk[ch * 9 + t];
            }
        }
        let bias = match &self.bias {
            Some(b) => b.to_dtype(DType::F32)?.to_vec1()?,
            None => vec![0.0; c],
        };
        let x = x.contiguous()?;
        let plus = plus.map(|p| p.contiguous()).transpose()?;
        let mut out = vec![0f32; h * w * c];
        let done = crate::encoders::kernels::with_f32(&x, |xs| {
            let mut run = |ps: &[f32]| {
                out.par_chunks_mut(w * c)
                    .enumerate()
                    .for_each(|(y, row)| depthwise_token_row(xs, ps, &taps, &bias, (y, h, w), row))
            };
            match &plus {
                Some(p) => crate::encoders::kernels::with_f32(p, run),
                None => {
                    run(&[]);
                    Some(())
                }
            }
        });
        if done.flatten().is_none() {
            return Ok(None);
        }
        Ok(Some(Tensor::from_vec(out, (1, h * w, c), x.device())?))
    }

    /// `gelu(conv(x))` (GELU when `act`) from NCHW `x` to a channels-last `[B, OH, OW, C]`
    /// map, written in that layout where the banded kernel applies (TinyViT's patch
    /// embedding, whose output feeds channels-last blocks), else transposed at the end.
    pub(crate) fn forward_channels_last(&self, x: &Tensor, act: bool) -> Result<Tensor> {
        if self.banded_fits(x) {
            let output = BandedOutput {
                act,
                channels_last: true,
            };
            return self.banded(x, output);
        }
        self.forward_fused(x, None, act)?
            .permute((0, 2, 3, 1))?
            .contiguous()
    }

    /// Whether [`conv_banded`] computes this layer on `x`: groupless, f32 on the CPU, and not
    /// the 3x3 stride-1 case that [`conv3x3`] does faster.
    fn banded_fits(&self, x: &Tensor) -> bool {
        let Ok((_, _, kh, kw)) = self.weight.dims4() else {
            return false;
        };
        let three_by_three = kh == 3 && kw == 3 && self.stride == 1 && self.padding == 1;
        self.groups == 1
            && !three_by_three
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.weight.dtype() == DType::F32
    }

    /// This layer through [`conv_banded`], bias included.
    fn banded(&self, x: &Tensor, output: BandedOutput) -> Result<Tensor> {
        let bias = match &self.bias {
            Some(b) => b.to_dtype(DType::F32)?.to_vec1()?,
            None => vec![0.0; self.weight.dim(0)?],
        };
        let geometry = (self.stride, self.padding);
        conv_banded(x, &self.weight, &bias, geometry, output)
    }

    /// Convolutions without a fused path: 3x3 stride 1 and other groupless ones on f32 CPU
    /// tensors in bands, the rest (other devices and dtypes, grouped) by candle; then the bias.
    fn plain(&self, x: &Tensor) -> Result<Tensor> {
        let c_out = self.weight.dim(0)?;
        let (_, _, kh, kw) = self.weight.dims4()?;
        let banded = self.groups == 1 && x.device().is_cpu() && x.dtype() == DType::F32;
        let y = if banded && kh == 3 && kw == 3 && self.stride == 1 && self.padding == 1 {
            conv3x3(x, &self.weight)?
        } else if self.banded_fits(x) {
            let output = BandedOutput {
                act: false,
                channels_last: false,
            };
            let zeros = vec![0f32; c_out];
            conv_banded(x, &self.weight, &zeros, (self.stride, self.padding), output)?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?
        };
        match &self.bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, c_out, 1, 1))?),
            None => Ok(y),
        }
    }

    /// The 1x1 case of [`Self::forward_fused`]: per image, `out[co × HW] = W[co × ci] ·
    /// x[ci × HW]` accumulated onto bias + residual.
    fn pointwise_fused(
        &self,
        x: &Tensor,
        (b, c_in, c_out, hw): (usize, usize, usize, usize),
        residual: Option<&Tensor>,
        act: bool,
    ) -> Result<Tensor> {
        use crate::encoders::kernels::{gemm_f32, parallelism, with_f32};
        let (_, _, h, w) = x.dims4()?;
        let weight: Vec<f32> = self.weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut out = match residual {
            Some(r) => {
                if r.dims() != [b, c_out, h, w] {
                    candle_core::bail!("residual {:?} for output {:?}", r.dims(), (b, c_out, h, w));
                }
                r.flatten_all()?.to_vec1::<f32>()?
            }
            None => vec![0f32; b * c_out * hw],
        };
        if let Some(bias) = &self.bias {
            let bias: Vec<f32> = bias.to_dtype(DType::F32)?.to_vec1()?;
            out.par_chunks_mut(hw).enumerate().for_each(|(plane, o)| {
                let v = bias[plane % c_out];
                o.iter_mut().for_each(|x| *x += v);
            });
        }
        let accumulate = residual.is_some() || self.bias.is_some();
        let x = x.contiguous()?;
        let done = with_f32(&x, |xs| {
            for (i, dst) in out.chunks_exact_mut(c_out * hw).enumerate() {
                gemm_f32(
                    (c_out, hw, c_in),
                    dst,
                    (hw, 1),
                    accumulate,
                    &weight,
                    (c_in, 1),
                    &xs[i * c_in * hw..(i + 1) * c_in * hw],
                    (hw, 1),
                    parallelism(),
                );
            }
        });
        if done.is_none() {
            candle_core::bail!("1x1 convolution: expected an f32 CPU tensor");
        }
        if act {
            out.par_chunks_mut(16 * 1024).for_each(gelu_in_place);
        }
        Tensor::from_vec(out, (b, c_out, h, w), x.device())
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, None, false)
    }
}

/// Depthwise KxK convolution with bias on an f32 NCHW tensor, then GELU when `act`.
fn depthwise(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
    act: bool,
) -> Result<Tensor> {
    let (b, c, h, wd) = x.dims4()?;
    let (_, _, k, _) = w.dims4()?;
    let geometry = DepthwiseGeometry {
        h,
        wd,
        k,
        stride,
        pad,
        oh: (h + 2 * pad - k) / stride + 1,
        ow: (wd + 2 * pad - k) / stride + 1,
    };
    let ws = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let bs = bias.to_vec1::<f32>()?;
    let x = x.contiguous()?;
    let mut out = vec![0f32; b * c * geometry.oh * geometry.ow];
    let done = crate::encoders::kernels::with_f32(&x, |xs| {
        out.par_chunks_mut(geometry.oh * geometry.ow)
            .enumerate()
            .for_each(|(plane, o)| {
                let ch = plane % c;
                let src = &xs[plane * h * wd..(plane + 1) * h * wd];
                let ker = &ws[ch * k * k..(ch + 1) * k * k];
                depthwise_plane(src, ker, bs[ch], &geometry, act, o)
            })
    });
    if done.is_none() {
        candle_core::bail!("depthwise convolution: expected an f32 CPU tensor");
    }
    Tensor::from_vec(out, (b, c, geometry.oh, geometry.ow), x.device())
}

widest_simd! {
    /// Output row `y` of [`Conv::depthwise_tokens`]: `x` (+ `plus` when not empty) through
    /// the taps, onto the bias.
    fn depthwise_token_row(
        x: &[f32],
        plus: &[f32],
        taps: &[f32],
        bias: &[f32],
        geometry: (usize, usize, usize),
        row: &mut [f32],
    ) => depthwise_token_row_generic
}

#[inline(always)]
fn depthwise_token_row_generic(
    x: &[f32],
    plus: &[f32],
    taps: &[f32],
    bias: &[f32],
    (y, h, w): (usize, usize, usize),
    row: &mut [f32],
) {
    let c = bias.len();
    for (px, o) in row.chunks_exact_mut(c).enumerate() {
        o.copy_from_slice(bias);
        for dy in 0..3 {
            let Some(yy) = (y + dy).checked_sub(1).filter(|&yy| yy < h) else {
                continue;
            };
            for dx in 0..3 {
                let Some(xx) = (px + dx).checked_sub(1).filter(|&xx| xx < w) else {
                    continue;
                };
                let at = (yy * w + xx) * c;
                let tap = &taps[(dy * 3 + dx) * c..][..c];
                let src = &x[at..at + c];
                if plus.is_empty() {
                    for ((o, t), s) in o.iter_mut().zip(tap).zip(src) {
                        *o += t * s;
                    }
                } else {
                    for (((o, t), s), p) in o.iter_mut().zip(tap).zip(src).zip(&plus[at..at + c]) {
                        *o += t * (s + p);
                    }
                }
            }
        }
    }
}

/// Sizes of one depthwise convolution: input `h x wd`, kernel `k`, output `oh x ow`.
struct DepthwiseGeometry {
    h: usize,
    wd: usize,
    k: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

widest_simd! {
    fn depthwise_plane(
        src: &[f32],
        ker: &[f32],
        bias: f32,
        g: &DepthwiseGeometry,
        act: bool,
        o: &mut [f32],
    ) => depthwise_plane_generic
}

/// One output plane.
#[inline(always)]
fn depthwise_plane_generic(
    src: &[f32],
    ker: &[f32],
    bias: f32,
    g: &DepthwiseGeometry,
    act: bool,
    o: &mut [f32],
) {
    let DepthwiseGeometry {
        h,
        wd,
        k,
        stride,
        pad,
        oh,
        ow,
    } = *g;
    o.fill(bias);
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
                    for (r, &v) in row[lo..hi_excl].iter_mut().zip(&srow[off..]) {
                        *r += wv * v;
                    }
                } else {
                    for (ox, r) in row.iter_mut().enumerate().take(hi_excl).skip(lo) {
                        *r += wv * srow[ox * stride + kx - pad];
                    }
                }
            }
        }
    }
    if act {
        gelu_in_place(o);
    }
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

/// `x·Wᵀ + b` over the last dimension of `x` (any leading dimensions), through the encoders'
/// GEMM (one call for all rows, both cores) where `x` is contiguous `f32` on the CPU; candle's
/// batched matmul elsewhere.
pub(crate) fn linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (k, rows) = match dims.split_last() {
        Some((k, lead)) => (*k, lead.iter().product::<usize>()),
        None => return layer.forward(x),
    };
    let w = layer.weight();
    let n = w.dim(0)?;
    if x.is_contiguous() && rows > 0 {
        let x2 = x.reshape((rows, k))?;
        if let Some(out) = crate::encoders::kernels::linear_vec(&x2, w, layer.bias(), None, None) {
            let mut shape = dims;
            *shape.last_mut().expect("a last dimension") = n;
            return Tensor::from_vec(out, shape, x.device());
        }
    }
    layer.forward(x)
}

/// LayerNorm over the last dimension with the encoders' two-pass kernel where it applies.
pub(crate) fn layer_norm(norm: &candle_nn::LayerNorm, x: &Tensor) -> Result<Tensor> {
    if let Some(bias) = norm.bias()
        && norm.remove_mean()
        && let Some(out) =
            crate::encoders::kernels::layer_norm(x, norm.weight(), bias, norm.eps() as f32)
    {
        return out;
    }
    norm.forward(x)
}

/// `[B, C, N]` → `[B, N, C]` (image channels to tokens), in cache-sized tiles where `x` is
/// contiguous `f32` on the CPU: candle's strided copy takes milliseconds for a 64x64x256 map.
pub(crate) fn channels_last(x: &Tensor) -> Result<Tensor> {
    const TILE: usize = 32;
    let (b, c, n) = x.dims3()?;
    // Whole tiles only, so that no tile spans two images of the batch.
    if x.dtype() == DType::F32 && x.device().is_cpu() && x.is_contiguous() && n % TILE == 0 {
        let (storage, layout) = x.storage_and_layout();
        if let candle_core::Storage::Cpu(CpuStorage::F32(all)) = &*storage {
            let src = &all[layout.start_offset()..layout.start_offset() + b * c * n];
            let mut dst = vec![0f32; src.len()];
            // Tiles of output rows in parallel: each task reads a `c x TILE` strip of the source.
            dst.par_chunks_mut(TILE * c).enumerate().for_each(|(t, d)| {
                let rows = d.len() / c;
                let (batch, n0) = ((t * TILE) / n, (t * TILE) % n);
                let s = &src[batch * c * n..(batch + 1) * c * n];
                for ci in 0..c {
                    let from = &s[ci * n + n0..ci * n + n0 + rows];
                    for (r, v) in from.iter().enumerate() {
                        d[r * c + ci] = *v;
                    }
                }
            });
            drop(storage);
            return Tensor::from_vec(dst, (b, n, c), x.device());
        }
    }
    x.transpose(1, 2)?.contiguous()
}

/// Softmax over the last dimension, with the encoders' vectorised kernel where it applies.
pub(crate) fn softmax(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    match crate::encoders::kernels::softmax_last_dim(&x) {
        Some(out) => out,
        None => candle_nn::ops::softmax_last_dim(&x),
    }
}

/// The largest absolute difference between two tensors of one shape (for tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("f32 tensors of one shape")
}

/// Asserts that a reduced-precision result `got` differs from the f32 `want` (the bf16 path
/// ran) by less than `tolerance` times `want`'s largest magnitude, and prints both (for tests).
#[cfg(test)]
pub(crate) fn assert_within_rounding(got: &Tensor, want: &Tensor, tolerance: f32, what: &str) {
    let diff = max_abs_diff(got, want);
    let scale = (want.abs())
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>())
        .expect("an f32 tensor");
    eprintln!("{what}: {diff:.2e} of {scale:.2}");
    assert!(
        diff > 0.0 && diff < tolerance * scale,
        "{what}: {diff} (outputs up to {scale})"
    );
}

#[cfg(test)]
mod tests {
    use super::{channels_last, gelu_slice};
    use candle_core::Tensor;

    #[test]
    fn banded_conv3x3_equals_candles_convolution() {
        use candle_core::{Device, Tensor};
        // Odd sizes, several images and channels: every border and tap is exercised; 19 rows
        // make two whole bands and a partial one, 7 rows a single partial band.
        for (b, c, h, w) in [(2, 5, 7, 9), (2, 3, 19, 6)] {
            let x = Tensor::randn(0f32, 1.0, (b, c, h, w), &Device::Cpu).unwrap();
            let k = Tensor::randn(0f32, 1.0, (4, c, 3, 3), &Device::Cpu).unwrap();
            let ours = super::conv3x3(&x, &k).unwrap();
            let theirs = x.conv2d(&k, 1, 1, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let diff = super::max_abs_diff(&ours, &theirs);
            assert!(diff < 1e-4, "{b}x{c}x{h}x{w}: max difference {diff}");
        }
    }

    #[test]
    fn pointwise_and_depthwise_convolutions_fused_or_not_equal_candles_convolution() {
        use candle_core::{Device, Module};
        let dev = Device::Cpu;
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let conv = |weight: Tensor, stride, padding, groups| super::Conv {
            bias: Some(randn(&[weight.dim(0).unwrap()])),
            weight,
            stride,
            padding,
            groups,
        };
        let close = |a: Tensor, b: Tensor, what: &str| {
            assert_eq!(a.dims(), b.dims(), "{what}");
            let diff = super::max_abs_diff(&a, &b);
            assert!(diff < 1e-4, "{what}: max difference {diff}");
        };
        // candle's own convolution plus the bias is the reference for both kernels.
        let reference = |conv: &super::Conv, x: &Tensor| {
            let c_out = conv.weight.dim(0).unwrap();
            let bias = conv
                .bias
                .clone()
                .unwrap()
                .reshape((1, c_out, 1, 1))
                .unwrap();
            x.conv2d(&conv.weight, conv.padding, conv.stride, 1, conv.groups)
                .unwrap()
                .broadcast_add(&bias)
                .unwrap()
        };
        let pointwise = conv(randn(&[10, 6, 1, 1]), 1, 0, 1);
        let x = randn(&[2, 6, 9, 7]);
        let residual = randn(&[2, 10, 9, 7]);
        let want = reference(&pointwise, &x);
        close(
            pointwise.forward_fused(&x, Some(&residual), true).unwrap(),
            super::gelu(&(&want + &residual).unwrap()).unwrap(),
            "1x1 + residual + GELU",
        );
        close(pointwise.forward(&x).unwrap(), want, "1x1");
        // Stride 2 on odd sizes exercises the depthwise kernel's border arithmetic; candle's own
        // grouped convolution is the reference.
        let depthwise = conv(randn(&[10, 1, 3, 3]), 2, 1, 10);
        let y = randn(&[2, 10, 9, 7]);
        let want = reference(&depthwise, &y);
        close(
            depthwise.forward_fused(&y, None, true).unwrap(),
            super::gelu(&want).unwrap(),
            "depthwise + GELU",
        );
        close(depthwise.forward(&y).unwrap(), want, "depthwise");

        // Channels-last depthwise 3x3 (TinyViT's local convolution) on the sum of two token
        // maps, against candle on the NCHW sum; odd sides exercise every border.
        let local = conv(randn(&[32, 1, 3, 3]), 1, 1, 32);
        let (h, w) = (7, 9);
        let a = randn(&[1, h * w, 32]);
        let b = randn(&[1, h * w, 32]);
        let nchw = |t: &Tensor| {
            t.transpose(1, 2)
                .unwrap()
                .reshape((1, 32, h, w))
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let tokens = |t: Tensor| {
            t.reshape((1, 32, h * w))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let sum = (&a + &b).unwrap();
        close(
            local
                .depthwise_tokens(&a, Some(&b), (h, w))
                .unwrap()
                .unwrap(),
            tokens(reference(&local, &nchw(&sum))),
            "depthwise on tokens, two inputs",
        );
        close(
            local.depthwise_tokens(&a, None, (h, w)).unwrap().unwrap(),
            tokens(reference(&local, &nchw(&a))),
            "depthwise on tokens",
        );
        // Layers it does not fit are declined, for the caller's general path.
        assert!(
            depthwise
                .depthwise_tokens(&a, None, (h, w))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn banded_strided_convolution_equals_candles_convolution() {
        use candle_core::Device;
        // Stride 2 and 1, odd sizes (partial bands, borders on every side), kernel 3 and 2.
        for (b, c, h, w, co, k, stride, pad) in [
            (2, 3, 21, 13, 5, 3, 2, 1),
            (1, 4, 9, 10, 3, 3, 1, 1),
            (1, 2, 8, 8, 4, 2, 2, 0),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, c, h, w), &Device::Cpu).unwrap();
            let kern = Tensor::randn(0f32, 1.0, (co, c, k, k), &Device::Cpu).unwrap();
            let bias: Vec<f32> = (0..co).map(|i| i as f32 * 0.3 - 0.5).collect();
            let bias_t = Tensor::from_slice(&bias, (1, co, 1, 1), &Device::Cpu).unwrap();
            let theirs = x
                .conv2d(&kern, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bias_t)
                .unwrap();
            // Planes or channels-last, with or without GELU, against candle's ops.
            for (act, channels_last) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let output = super::BandedOutput { act, channels_last };
                let ours = super::conv_banded(&x, &kern, &bias, (stride, pad), output).unwrap();
                let mut want = if act {
                    theirs.gelu_erf().unwrap()
                } else {
                    theirs.clone()
                };
                if channels_last {
                    want = want.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap();
                }
                assert_eq!(ours.dims(), want.dims());
                let diff = super::max_abs_diff(&ours, &want);
                assert!(
                    diff < 1e-4,
                    "{b}x{c}x{h}x{w} k{k} s{stride} {output:?}: max difference {diff}"
                );
            }
        }
    }

    #[test]
    fn single_channel_conv3x3_equals_candles_convolution() {
        use candle_core::Device;
        // 70 rows: two whole bands of rows and a partial one; each image its own kernel.
        let (n, c, h, w) = (3, 6, 70, 19);
        let y = Tensor::randn(0f32, 1.0, (n, c, h, w), &Device::Cpu).unwrap();
        let k = Tensor::randn(0f32, 1.0, (n, c, 3, 3), &Device::Cpu).unwrap();
        let ours = super::conv3x3_single(&y, &k).unwrap();
        assert_eq!(ours.dims(), &[n, 1, h, w]);
        for i in 0..n {
            let want = y
                .narrow(0, i, 1)
                .unwrap()
                .conv2d(&k.narrow(0, i, 1).unwrap(), 1, 1, 1, 1)
                .unwrap();
            let diff = super::max_abs_diff(&ours.narrow(0, i, 1).unwrap(), &want);
            assert!(diff < 1e-4, "image {i}: max difference {diff}");
        }
    }

    #[test]
    fn channels_last_equals_candles_transpose() {
        let dev = candle_core::Device::Cpu;
        for (b, c, n) in [(2, 5, 64), (1, 256, 4096), (1, 3, 10)] {
            let x = Tensor::arange(0f32, (b * c * n) as f32, &dev)
                .unwrap()
                .reshape((b, c, n))
                .unwrap();
            let ours: Vec<f32> = channels_last(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let want: Vec<f32> = x
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(ours, want, "{b}x{c}x{n}");
        }
    }

    #[test]
    fn fast_gelu_matches_exact_gelu() {
        let xs: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
        let mut out = vec![0f32; xs.len()];
        gelu_slice(&xs, &mut out);
        let mut worst = 0f64;
        for (&x, &g) in xs.iter().zip(&out) {
            let x = x as f64;
            let want = 0.5 * x * (1.0 + candle_core::cpu::erf::erf_f64(x / 2f64.sqrt()));
            // Absolute error near 0, relative (to f32 rounding of x) for large |x|.
            worst = worst.max((g as f64 - want).abs() / x.abs().max(1.0));
        }
        assert!(worst < 2e-7, "gelu error {worst}");
    }
}
