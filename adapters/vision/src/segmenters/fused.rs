//! The first half of SAM-HQ's `embedding_maskfeature` (3x3 convolution C/8 → C/4 channels,
//! channel LayerNorm, exact GELU) as one CPU kernel. It runs once per prompt on a [32, 256, 256]
//! map (2.4 GFLOP), and as three separate passes it was over a quarter of a click's time: a
//! banded im2col convolution, then two more passes over its 16 MB output.
//!
//! The kernel keeps a strip of 16 pixels of 16 output channels in sixteen AVX-512 registers
//! (lane = pixel, register = channel) while it sums the 9 taps of every input channel, from a
//! band of input rows copied into a small zero-bordered buffer that stays in cache. A strip's
//! channel groups go into a small tile, which is normalised there (the channel LayerNorm is
//! lane-wise arithmetic across the tile's rows), passed through GELU and written out once.
//! Bands of rows run in parallel.
//!
//! In the reduced-precision mode ([`ConvNormGelu::pack_bf16`]) the band's input channels are
//! rounded to bf16 and stored in pairs, and each AVX-512 BF16 `vdpbf16ps` adds the products of
//! two input channels for 16 pixels: half the instructions of the f32 kernel, sums in f32.
//!
//! Other shapes, dtypes, devices and CPUs without AVX-512 take the unfused path (the same three
//! operations from `ops`), which is also what the tests compare the kernel against.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::ops::{Conv, LayerNorm2d, SendPtr, conv3x3_single, gelu};
use crate::encoders::bf16::{interleave_bf16, to_bf16};

/// Pixels per strip and output channels per group: one AVX-512 register holds 16 f32 lanes.
const LANES: usize = 16;
/// Output rows per parallel work item.
const BAND: usize = 8;
/// Groups of output channels the AMX kernel computes at once (one sum tile each).
const AMX_GROUPS: usize = 4;

/// Conv 3x3 (padding 1, bias) → LayerNorm2d → GELU, weights in PyTorch names under `conv`
/// and `norm` (`embedding_maskfeature.0` and `.1`).
#[derive(Debug, Clone)]
pub(crate) struct ConvNormGelu {
    conv: Conv,
    norm: LayerNorm2d,
    /// Present when the output channels come in whole groups of [`LANES`]: the weights
    /// reordered for the kernel ([group][c_in][tap][16]) and the per-channel constants.
    packed: Option<Packed>,
}

#[derive(Debug, Clone)]
struct Packed {
    c_in: usize,
    c_out: usize,
    weights: Vec<f32>,
    /// The reduced-precision mode's weights: [group][c_in / 2][tap][16] pairs of bf16 (input
    /// channels 2j and 2j + 1), or `None` in f32.
    bf16_pairs: Option<Vec<u32>>,
    /// The same weights as AMX A tiles where the CPU has them, for exactly [`AMX_GROUPS`]
    /// groups and whole steps of 32 input channels: [group][tap][step][16 outputs][32 inputs]
    /// bf16, or `None`.
    amx_tiles: Option<Vec<u16>>,
    bias: Vec<f32>,
    norm_weight: Vec<f32>,
    norm_bias: Vec<f32>,
    eps: f32,
}

/// A batch of maps with their channels in bf16 pairs, as the bf16 kernel reads its input: for
/// image i and pair j (channels 2j and 2j + 1), a plane of h + 2 rows of [`Self::row_len`]
/// words, each word two bf16 values (channel 2j in the low half), with a zero border (the
/// first and last rows, the first column and the columns past w + 1). The convolution's zero
/// padding is that border, so the kernel reads the planes in place. The HQ decoder's
/// upscaling writes its output this way (`upscale`), which spares it the f32 map and this
/// kernel the copy into bf16 pairs.
pub(crate) struct PairPlanes {
    pub(crate) data: Vec<u32>,
    pub(crate) n: usize,
    pub(crate) pairs: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
}

impl PairPlanes {
    /// Words per stored row: whole strips of [`LANES`] pixels plus the border column each side,
    /// so that every 16-wide load of every tap stays inside the row.
    pub(crate) fn row_len(w: usize) -> usize {
        w.div_ceil(LANES) * LANES + 2
    }

    /// Words per plane.
    pub(crate) fn plane_len(h: usize, w: usize) -> usize {
        (h + 2) * Self::row_len(w)
    }

    /// Every plane's words, from the first image's first plane on.
    pub(crate) fn len(n: usize, pairs: usize, h: usize, w: usize) -> usize {
        n * pairs * Self::plane_len(h, w)
    }
}

impl ConvNormGelu {
    pub(crate) fn new(
        conv: VarBuilder,
        norm: VarBuilder,
        c_in: usize,
        c_out: usize,
    ) -> Result<Self> {
        let packed = if c_out.is_multiple_of(LANES) {
            let w: Vec<f32> = conv
                .get((c_out, c_in, 3, 3), "weight")?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            let mut weights = vec![0f32; c_out * c_in * 9];
            for o in 0..c_out {
                let (g, lane) = (o / LANES, o % LANES);
                for ci in 0..c_in {
                    for t in 0..9 {
                        weights[((g * c_in + ci) * 9 + t) * LANES + lane] =
                            w[(o * c_in + ci) * 9 + t];
                    }
                }
            }
            let lanes = |vb: &VarBuilder, name: &str| -> Result<Vec<f32>> {
                vb.get(c_out, name)?.to_dtype(DType::F32)?.to_vec1()
            };
            Some(Packed {
                c_in,
                c_out,
                weights,
                bf16_pairs: None,
                amx_tiles: None,
                bias: lanes(&conv, "bias")?,
                norm_weight: lanes(&norm, "weight")?,
                norm_bias: lanes(&norm, "bias")?,
                eps: LayerNorm2d::EPS as f32,
            })
        } else {
            None
        };
        Ok(Self {
            conv: Conv::new(conv, c_in, c_out, 3, 1, 1, true)?,
            norm: LayerNorm2d::new(c_out, norm)?,
            packed,
        })
    }

    /// Switches the fused kernel to bf16 operands (weights and input channels rounded to
    /// bf16, products summed in f32). A no-op where the kernel does not apply: an odd number of
    /// input channels, or a CPU without AVX-512 BF16.
    pub(crate) fn pack_bf16(&mut self) {
        let Some(p) = &mut self.packed else { return };
        if !p.c_in.is_multiple_of(2) || !crate::encoders::bf16::available() {
            return;
        }
        let (c_in, groups) = (p.c_in, p.c_out / LANES);
        let mut pairs = vec![0u32; groups * c_in / 2 * 9 * LANES];
        for g in 0..groups {
            for j in 0..c_in / 2 {
                for t in 0..9 {
                    for lane in 0..LANES {
                        let at = |ci: usize| p.weights[((g * c_in + ci) * 9 + t) * LANES + lane];
                        let (lo, hi) = (to_bf16(at(2 * j)), to_bf16(at(2 * j + 1)));
                        pairs[((g * c_in / 2 + j) * 9 + t) * LANES + lane] =
                            lo as u32 | (hi as u32) << 16;
                    }
                }
            }
        }
        p.bf16_pairs = Some(pairs);
        if crate::encoders::amx::ready() && groups == AMX_GROUPS && c_in.is_multiple_of(32) {
            let steps = c_in / 32;
            let mut tiles = vec![0u16; groups * 9 * steps * LANES * 32];
            for g in 0..groups {
                for t in 0..9 {
                    for step in 0..steps {
                        let tile = ((g * 9 + t) * steps + step) * LANES * 32;
                        for o in 0..LANES {
                            for i in 0..32 {
                                let ci = step * 32 + i;
                                tiles[tile + o * 32 + i] =
                                    to_bf16(p.weights[((g * c_in + ci) * 9 + t) * LANES + o]);
                            }
                        }
                    }
                }
            }
            p.amx_tiles = Some(tiles);
        }
    }

    /// The three operations one after the other.
    fn unfused(&self, x: &Tensor) -> Result<Tensor> {
        gelu(&self.norm.forward(&self.conv.forward(x)?)?)
    }
}

impl ConvNormGelu {
    /// `conv3x3(self(x), k)` with one output channel per image: x [n, c_in, h, w], k
    /// [n, c_out, 3, 3] (padding 1, no bias) → [n, 1, h, w]. This is how the HQ decoder uses
    /// the block (its last convolution contracted with the HQ token's vector, see
    /// `mask_decoder`): the fused kernel then applies `k` to each strip while it is in
    /// registers, and the [n, c_out, h, w] map is never written out.
    pub(crate) fn forward_contracted(&self, x: &Tensor, k: &Tensor) -> Result<Tensor> {
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = &self.packed
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && x.dim(1)? == p.c_in
            && k.dims4()? == (x.dim(0)?, p.c_out, 3, 3)
            && std::arch::is_x86_feature_detected!("avx512f")
        {
            let taps: Vec<f32> = k.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            return fused(Input::Map(x), p, Some(&taps));
        }
        self.contract_unfused(&self.forward(x)?, k)
    }

    /// Whether [`Self::forward_contracted_pairs`] takes `c_in` input channels: the kernel is
    /// in bf16 mode for that many channels.
    pub(crate) fn takes_pairs(&self, c_in: usize) -> bool {
        cfg!(target_arch = "x86_64")
            && self
                .packed
                .as_ref()
                .is_some_and(|p| p.c_in == c_in && p.bf16_pairs.is_some() && c_in.is_multiple_of(2))
    }

    /// [`Self::forward_contracted`] on input already in bf16 pairs (the reduced-precision mode,
    /// where the kernel would round its input to such pairs itself). Needs
    /// [`Self::takes_pairs`]; k [n, c_out, 3, 3].
    pub(crate) fn forward_contracted_pairs(&self, x: &PairPlanes, k: &Tensor) -> Result<Tensor> {
        let Some(p) = self
            .packed
            .as_ref()
            .filter(|_| self.takes_pairs(2 * x.pairs))
        else {
            candle_core::bail!(
                "conv-norm-gelu: no bf16 kernel for {} channel pairs",
                x.pairs
            );
        };
        if k.dims4()? != (x.n, p.c_out, 3, 3) {
            candle_core::bail!("conv-norm-gelu: contraction weights {:?}", k.dims());
        }
        let taps: Vec<f32> = k.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        #[cfg(target_arch = "x86_64")]
        return fused(Input::Pairs(x), p, Some(&taps));
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("takes_pairs() is false off x86_64 ({taps:?})")
    }

    /// `conv3x3(y, k)`, one output channel per image, from a computed `y`.
    fn contract_unfused(&self, y: &Tensor, k: &Tensor) -> Result<Tensor> {
        if y.device().is_cpu() && y.dtype() == DType::F32 {
            return conv3x3_single(y, k);
        }
        let mut per = Vec::with_capacity(y.dim(0)?);
        for i in 0..y.dim(0)? {
            per.push(y.narrow(0, i, 1)?.conv2d(&k.narrow(0, i, 1)?, 1, 1, 1, 1)?);
        }
        Tensor::cat(&per, 0)
    }
}

impl Module for ConvNormGelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = &self.packed
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && x.dim(1)? == p.c_in
            && std::arch::is_x86_feature_detected!("avx512f")
        {
            return fused(Input::Map(x), p, None);
        }
        self.unfused(x)
    }
}

/// The fused kernel's input.
#[cfg(target_arch = "x86_64")]
enum Input<'a> {
    /// An f32 map [n, c, h, w], copied band by band into zero-bordered rows.
    Map(&'a Tensor),
    /// Channel pairs in bf16, bordered already (the bf16 mode only).
    Pairs(&'a PairPlanes),
}

/// The block on the input, or with `taps` ([n, c_out, 9] per image) its contraction to one
/// channel.
#[cfg(target_arch = "x86_64")]
fn fused(input: Input<'_>, p: &Packed, taps: Option<&[f32]>) -> Result<Tensor> {
    let (x, planes) = match input {
        Input::Map(x) => (Some(x.contiguous()?), None),
        Input::Pairs(planes) => (None, Some(planes)),
    };
    let (n, c, h, w) = match (&x, planes) {
        (Some(x), _) => x.dims4()?,
        (None, Some(pp)) => (pp.n, 2 * pp.pairs, pp.h, pp.w),
        (None, None) => unreachable!("one input or the other"),
    };
    let storage = x.as_ref().map(|x| x.storage_and_layout());
    let src: &[f32] = match &storage {
        Some((storage, layout)) => match &**storage {
            candle_core::Storage::Cpu(cpu) => super::ops::contiguous_f32(cpu, layout)?,
            _ => candle_core::bail!("conv-norm-gelu: expected a CPU tensor"),
        },
        None => &[],
    };
    // Padded rows: one zero column left, then the row, then zeros up to a whole number of
    // strips plus the right border, so every 16-wide load of every tap stays inside the row.
    let strips = w.div_ceil(LANES);
    let pw = PairPlanes::row_len(w);
    let co = p.c_out;
    let bands = h.div_ceil(BAND);
    // The block's output, or per band the contracted output of rows y0-1 ..= y0+BAND with a
    // border column each side (neighbouring bands overlap by two rows; summed afterwards).
    let out_len = match taps {
        None => n * co * h * w,
        Some(_) => n * bands * (BAND + 2) * pw,
    };
    let mut out = vec![0f32; out_len];
    let dst = SendPtr(out.as_mut_ptr());
    // The bf16 kernel reads pairs of channels: half as many planes of u32 pairs.
    let bf16 = p.bf16_pairs.as_deref().filter(|_| c.is_multiple_of(2));
    let bf16 = bf16
        .filter(|_| planes.is_none())
        .or(planes.and(p.bf16_pairs.as_deref()));
    (0..n * bands).into_par_iter().for_each_init(
        || {
            let (f32_planes, pair_planes) = match (planes, bf16) {
                (Some(_), _) => (0, 0),
                (None, Some(_)) => (0, c / 2),
                (None, None) => (c, 0),
            };
            (
                vec![0f32; f32_planes * (BAND + 2) * pw],
                vec![0u32; pair_planes * (BAND + 2) * pw],
                vec![0f32; co * LANES],
            )
        },
        |(padded, band_pairs, tile), item| {
            let (img, band) = (item / bands, item % bands);
            let y0 = band * BAND;
            let rows = BAND.min(h - y0);
            let plane = (BAND + 2) * pw;
            // Input rows y0-1 ..= y0+rows, zero outside the image.
            let input_row = |ci: usize, r: usize| -> Option<&[f32]> {
                let y = (y0 + r) as isize - 1;
                (y >= 0 && (y as usize) < h).then(|| {
                    let from = ((img * c + ci) * h + y as usize) * w;
                    &src[from..from + w]
                })
            };
            if planes.is_some() {
                // Bordered bf16 pairs already: read in place.
            } else if bf16.is_some() {
                for j in 0..c / 2 {
                    for r in 0..rows + 2 {
                        let row = &mut band_pairs[j * plane + r * pw..][..pw];
                        row.fill(0);
                        if let (Some(a), Some(b)) = (input_row(2 * j, r), input_row(2 * j + 1, r)) {
                            interleave_bf16(a, b, &mut row[1..1 + w]);
                        }
                    }
                }
            } else {
                for ci in 0..c {
                    for r in 0..rows + 2 {
                        let row = &mut padded[ci * plane + r * pw..][..pw];
                        row.fill(0.0);
                        if let Some(values) = input_row(ci, r) {
                            row[1..1 + w].copy_from_slice(values);
                        }
                    }
                }
            }
            // The pair planes the strips read, from input row y0 - 1 on, and their stride.
            let (pairs, plane): (&[u32], usize) = match planes {
                Some(pp) => {
                    let image_plane = PairPlanes::plane_len(h, w);
                    (
                        &pp.data[img * pp.pairs * image_plane + y0 * pw..],
                        image_plane,
                    )
                }
                None => (band_pairs, plane),
            };
            // The AMX tiles where the weights were packed for them (bf16 mode only).
            let amx = bf16.and(p.amx_tiles.as_deref()).map(|weights| {
                // SAFETY: `amx_tiles` is packed only where `amx::ready()` said so.
                (unsafe { crate::encoders::amx::Tiles::configure() }, weights)
            });
            for r in 0..rows {
                for s in 0..strips {
                    let x0 = s * LANES;
                    // SAFETY: AVX-512F was detected by the caller (and BF16 where `bf16` is
                    // set, AMX where `amx` is); every load stays inside `padded` or `pairs` (see
                    // `pw`), the weights hold c_out * c_in * 9 values and `tile` c_out * LANES.
                    unsafe {
                        match (&amx, bf16) {
                            (Some((tiles, weights)), _) => {
                                strip_amx(tiles, pairs, weights, plane, pw, r, x0, p.c_in, tile)
                            }
                            (None, Some(weights)) => {
                                strip_bf16(pairs, weights, plane, pw, r, x0, p, tile)
                            }
                            (None, None) => strip(padded, plane, pw, r, x0, p, tile),
                        }
                    }
                    let valid = LANES.min(w - x0);
                    match taps {
                        None => {
                            // SAFETY: AVX-512F, as above.
                            unsafe { normalise_tile(p, tile) };
                            for (o, values) in tile.chunks_exact(LANES).enumerate() {
                                let at = ((img * co + o) * h + y0 + r) * w + x0;
                                // SAFETY: each (image, band) item writes only its own rows.
                                unsafe {
                                    std::ptr::copy_nonoverlapping(
                                        values.as_ptr(),
                                        dst.get().add(at),
                                        valid,
                                    )
                                };
                            }
                        }
                        Some(taps) => {
                            let k = &taps[img * co * 9..(img + 1) * co * 9];
                            let base = item * (BAND + 2) * pw;
                            // SAFETY: each item writes only its own (BAND + 2) x pw region, and
                            // the taps stay inside rows r..r+2, columns x0..x0+valid+1.
                            unsafe {
                                let out = dst.get().add(base);
                                normalise_and_contract(p, tile, k, valid, out, r, x0, pw)
                            };
                        }
                    }
                }
            }
        },
    );
    let Some(_) = taps else {
        return Tensor::from_vec(out, (n, co, h, w), &candle_core::Device::Cpu);
    };
    // Sum the bands' rows into the image, dropping the rows and columns outside it.
    let mut image = vec![0f32; n * h * w];
    for item in 0..n * bands {
        let (img, band) = (item / bands, item % bands);
        let part = &out[item * (BAND + 2) * pw..(item + 1) * (BAND + 2) * pw];
        for (i, row) in part.chunks_exact(pw).enumerate() {
            let y = (band * BAND + i) as isize - 1;
            if y < 0 || y as usize >= h {
                continue;
            }
            let dst = &mut image[(img * h + y as usize) * w..][..w];
            for (d, v) in dst.iter_mut().zip(&row[1..1 + w]) {
                *d += v;
            }
        }
    }
    Tensor::from_vec(image, (n, 1, h, w), &candle_core::Device::Cpu)
}

/// Adds one strip's contribution to the contracted output: pixel (r, x0 + px) of the block's
/// output, through tap (ky, kx), lands on output (r + 1 − ky, x0 + px + 1 − kx), stored one row
/// and one column further in (`out` starts at output row y0 − 1, column −1). The kernel runs
/// it fused with the normalisation ([`normalise_and_contract`]); this is the step on its own,
/// which the test holds the fused one to.
#[cfg(all(test, target_arch = "x86_64"))]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn contract(
    tile: &[f32],
    k: &[f32],
    channels: usize,
    valid: usize,
    out: *mut f32,
    r: usize,
    x0: usize,
    pw: usize,
) {
    use std::arch::x86_64::*;
    let rows = tile.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 9];
    for (t, a) in acc.iter_mut().enumerate() {
        for ch in 0..channels {
            let y = unsafe { _mm512_loadu_ps(rows.add(ch * LANES)) };
            *a = _mm512_fmadd_ps(y, _mm512_set1_ps(k[ch * 9 + t]), *a);
        }
    }
    // SAFETY: the caller's bounds (see `add_taps`).
    unsafe { add_taps(&acc, valid, out, r, x0, pw) };
}

/// Adds the nine taps' sums of one strip to the contracted output (see [`contract`]), the
/// lanes past the image's right edge left out.
///
/// # Safety
/// AVX-512F; `out` holds stored rows r..r+2, columns x0..x0+valid+1 of width `pw`, which no
/// other thread writes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add_taps(
    acc: &[std::arch::x86_64::__m512; 9],
    valid: usize,
    out: *mut f32,
    r: usize,
    x0: usize,
    pw: usize,
) {
    use std::arch::x86_64::*;
    // Lanes past the image's right edge hold no pixel: they must add nothing.
    let keep: __mmask16 = if valid == LANES {
        !0
    } else {
        (1u16 << valid) - 1
    };
    for (t, &sum) in acc.iter().enumerate() {
        let (ky, kx) = (t / 3, t % 3);
        // Output row r + 1 − ky → stored row r + 2 − ky; column x0 + px + 1 − kx → stored
        // column x0 + px + 2 − kx.
        // SAFETY: inside the stored rows and columns the caller guarantees; AVX-512F in
        // every caller.
        unsafe {
            let at = out.add((r + 2 - ky) * pw + x0 + 2 - kx);
            let total = _mm512_add_ps(
                _mm512_maskz_loadu_ps(keep, at),
                _mm512_maskz_mov_ps(keep, sum),
            );
            _mm512_mask_storeu_ps(at, keep, total);
        }
    }
}

/// One strip: the convolution (without its bias) for 16 pixels of output row `r` of the band
/// starting at column `x0`, all channels, into `tile[channel * 16 + pixel]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn strip(
    padded: &[f32],
    plane: usize,
    pw: usize,
    r: usize,
    x0: usize,
    p: &Packed,
    tile: &mut [f32],
) {
    use std::arch::x86_64::*;
    let base = padded.as_ptr();
    let rows = tile.as_mut_ptr();
    for g in 0..p.c_out / LANES {
        let mut acc = [_mm512_setzero_ps(); LANES];
        let weights = unsafe { p.weights.as_ptr().add(g * p.c_in * 9 * LANES) };
        for ci in 0..p.c_in {
            // Output (r, x) reads padded rows r..r+2, columns x..x+2 (the border shifts by one).
            let input = unsafe { base.add(ci * plane + r * pw + x0) };
            for t in 0..9 {
                let v = unsafe { _mm512_loadu_ps(input.add((t / 3) * pw + t % 3)) };
                let wt = unsafe { weights.add((ci * 9 + t) * LANES) };
                for (o, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(v, _mm512_set1_ps(unsafe { *wt.add(o) }), *a);
                }
            }
        }
        for (o, a) in acc.iter().enumerate() {
            unsafe { _mm512_storeu_ps(rows.add((g * LANES + o) * LANES), *a) };
        }
    }
}

/// [`strip`] on bf16 operands: `pairs` holds the band's input channels in pairs
/// ([c_in / 2][BAND + 2][pw] of two bf16 each), `weights` the matching weight pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn strip_bf16(
    pairs: &[u32],
    weights: &[u32],
    plane: usize,
    pw: usize,
    r: usize,
    x0: usize,
    p: &Packed,
    tile: &mut [f32],
) {
    use std::arch::x86_64::*;
    let base = pairs.as_ptr();
    let rows = tile.as_mut_ptr();
    let half = p.c_in / 2;
    for g in 0..p.c_out / LANES {
        let mut acc = [_mm512_setzero_ps(); LANES];
        let weights = unsafe { weights.as_ptr().add(g * half * 9 * LANES) };
        for j in 0..half {
            let input = unsafe { base.add(j * plane + r * pw + x0) };
            for t in 0..9 {
                // 16 pixels × (channel 2j, 2j + 1); each weight word the same two channels.
                let v: __m512bh = unsafe {
                    std::mem::transmute(_mm512_loadu_si512(input.add((t / 3) * pw + t % 3).cast()))
                };
                let wt = unsafe { weights.add((j * 9 + t) * LANES) };
                for (o, a) in acc.iter_mut().enumerate() {
                    let w: __m512bh =
                        unsafe { std::mem::transmute(_mm512_set1_epi32(*wt.add(o) as i32)) };
                    *a = _mm512_dpbf16_ps(*a, v, w);
                }
            }
        }
        for (o, a) in acc.iter().enumerate() {
            unsafe { _mm512_storeu_ps(rows.add((g * LANES + o) * LANES), *a) };
        }
    }
}

/// [`strip_bf16`] on the AMX tiles, for [`AMX_GROUPS`] groups of 16 output channels. With the
/// weights as the A tiles (16 outputs x 32 inputs of one tap) and the band's pair planes as
/// the B tiles (16 pairs of input channels, one plane apart, x 16 pixels) the sums come out
/// channel by channel, 16 pixels each: the layout of `tile` that the epilogue takes.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn strip_amx(
    _tiles: &crate::encoders::amx::Tiles,
    pairs: &[u32],
    weights: &[u16],
    plane: usize,
    pw: usize,
    r: usize,
    x0: usize,
    c_in: usize,
    tile: &mut [f32],
) {
    use std::arch::asm;
    let steps = c_in / 32;
    let group = 9 * steps * LANES * 32;
    let b_stride = plane * 4;
    // SAFETY (all asm): the tiles are configured on this thread (`_tiles`); each B tile reads
    // 16 pair planes of the band from row r + ky, columns x0 + kx .. x0 + kx + 16 ≤ pw, each A
    // tile 1 KB of `weights`, and the stores write `tile`'s 4 x 16 x 16 values.
    unsafe {
        crate::encoders::amx::zero_sums(_tiles);
        for t in 0..9 {
            for step in 0..steps {
                let b = pairs
                    .as_ptr()
                    .add(step * 16 * plane + (r + t / 3) * pw + x0 + t % 3);
                let a = weights.as_ptr().add((t * steps + step) * LANES * 32);
                asm!(
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm4, [{a2} + {sa}*1]",
                    "tdpbf16ps tmm1, tmm5, tmm6",
                    "tileloadd tmm5, [{a3} + {sa}*1]",
                    "tdpbf16ps tmm2, tmm4, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm6",
                    b = in(reg) b, sb = in(reg) b_stride,
                    a0 = in(reg) a, a1 = in(reg) a.add(group),
                    a2 = in(reg) a.add(2 * group), a3 = in(reg) a.add(3 * group),
                    sa = in(reg) 64usize,
                    options(nostack, readonly),
                );
            }
        }
        let out = tile.as_mut_ptr();
        asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c3} + {s}*1], tmm3",
            c0 = in(reg) out, c1 = in(reg) out.add(256),
            c2 = in(reg) out.add(512), c3 = in(reg) out.add(768),
            s = in(reg) 64usize,
            options(nostack),
        );
    }
}

/// The conv outputs in `tile` ([channel][16 pixels]) → plus the bias, channel LayerNorm, then
/// GELU.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn normalise_tile(p: &Packed, tile: &mut [f32]) {
    use std::arch::x86_64::*;
    let rows = tile.as_mut_ptr();
    // SAFETY: `tile` holds c_out rows of 16 lanes.
    unsafe {
        let (mean, inv) = moments(p, rows);
        for c in 0..p.c_out {
            _mm512_storeu_ps(rows.add(c * LANES), normalised(p, rows, c, mean, inv));
        }
        // This kernel runs with AVX-512F enabled, as the GELU pass needs.
        crate::encoders::kernels::avx512_math::gelu_in_place(tile);
    }
}

/// [`normalise_tile`] and then [`contract`] in one pass over the channels: each channel's
/// normalised, GELU'd lane vector goes straight into the nine taps' sums instead of being
/// stored and read back nine times. The same operations in the same order as the two steps.
///
/// # Safety
/// As [`contract`]; `tile` holds c_out rows of 16 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn normalise_and_contract(
    p: &Packed,
    tile: &[f32],
    k: &[f32],
    valid: usize,
    out: *mut f32,
    r: usize,
    x0: usize,
    pw: usize,
) {
    use crate::encoders::kernels::avx512_math::gelu;
    use std::arch::x86_64::*;
    let rows = tile.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 9];
    // SAFETY: `tile` holds c_out rows of 16 lanes and `k` c_out · 9 taps.
    unsafe {
        let (mean, inv) = moments(p, rows);
        for c in 0..p.c_out {
            let y = gelu(normalised(p, rows, c, mean, inv));
            for (t, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(y, _mm512_set1_ps(k[c * 9 + t]), *a);
            }
        }
        add_taps(&acc, valid, out, r, x0, pw);
    }
}

/// Per lane, the channel LayerNorm's mean and 1/σ of the strip's conv outputs plus the bias
/// (a two-pass variance, as the encoders' LayerNorm).
///
/// # Safety
/// AVX-512F; `rows` points at c_out rows of 16 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn moments(
    p: &Packed,
    rows: *const f32,
) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's bounds; AVX-512F in every caller (all inline into AVX-512 kernels).
    unsafe {
        let inv_c = _mm512_set1_ps(1.0 / p.c_out as f32);
        let with_bias = |c: usize| {
            _mm512_add_ps(
                _mm512_loadu_ps(rows.add(c * LANES)),
                _mm512_set1_ps(p.bias[c]),
            )
        };
        let mut sum = _mm512_setzero_ps();
        for c in 0..p.c_out {
            sum = _mm512_add_ps(sum, with_bias(c));
        }
        let mean = _mm512_mul_ps(sum, inv_c);
        let mut var = _mm512_setzero_ps();
        for c in 0..p.c_out {
            let d = _mm512_sub_ps(with_bias(c), mean);
            var = _mm512_fmadd_ps(d, d, var);
        }
        let var = _mm512_fmadd_ps(var, inv_c, _mm512_set1_ps(p.eps));
        (
            mean,
            _mm512_div_ps(_mm512_set1_ps(1.0), _mm512_sqrt_ps(var)),
        )
    }
}

/// Channel `c` of the strip, plus its bias, normalised with the strip's `mean` and `inv`, then
/// scaled and shifted by the norm's weight and bias.
///
/// # Safety
/// AVX-512F; `rows` points at more than `c` rows of 16 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn normalised(
    p: &Packed,
    rows: *const f32,
    c: usize,
    mean: std::arch::x86_64::__m512,
    inv: std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // SAFETY: row c is inside the strip, as the caller guarantees; AVX-512F in every caller.
    unsafe {
        let y = _mm512_add_ps(
            _mm512_loadu_ps(rows.add(c * LANES)),
            _mm512_set1_ps(p.bias[c]),
        );
        let d = _mm512_sub_ps(y, mean);
        _mm512_fmadd_ps(
            _mm512_mul_ps(d, inv),
            _mm512_set1_ps(p.norm_weight[c]),
            _mm512_set1_ps(p.norm_bias[c]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    fn layer(c_in: usize, c_out: usize) -> ConvNormGelu {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        // A first build creates the variables; they are then set to random values (the norm
        // constants too) and the layer built again from them.
        ConvNormGelu::new(vb.pp("conv"), vb.pp("norm"), c_in, c_out).unwrap();
        let mut data = map.data().lock().unwrap();
        for (name, var) in data.iter_mut() {
            let shape = var.shape().clone();
            let scale = if name.starts_with("conv.weight") {
                0.3
            } else {
                1.0
            };
            var.set(&Tensor::randn(0f32, scale, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
        drop(data);
        ConvNormGelu::new(vb.pp("conv"), vb.pp("norm"), c_in, c_out).unwrap()
    }

    #[test]
    fn fused_kernel_equals_the_three_operations() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            panic!("this test needs a CPU with AVX-512F, which the fused kernel is written for");
        }
        // Odd widths (a partial strip), heights that leave a partial band, several images, and
        // the decoder's real shape.
        for (n, c, co, h, w) in [
            (2, 5, 16, 11, 21),
            (1, 3, 32, 8, 16),
            (1, 32, 64, 64, 64),
            (2, 7, 48, 3, 40),
        ] {
            let block = layer(c, co);
            assert!(block.packed.is_some());
            let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &Device::Cpu).unwrap();
            let ours = block.forward(&x).unwrap();
            let want = block.unfused(&x).unwrap();
            assert_eq!(ours.dims(), want.dims());
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            // The two paths sum the 9·c products in different orders: f32 rounding of outputs
            // of a few units differs by ~1e-5 at the real size; a wrong tap or lane would be
            // off by whole units.
            assert!(
                diff < 1e-4,
                "{n}x{c}x{h}x{w} -> {co}: max difference {diff}"
            );
        }
    }

    #[test]
    fn contracted_kernel_equals_the_block_then_the_convolution() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            panic!("this test needs a CPU with AVX-512F, which the fused kernel is written for");
        }
        // Partial strips and bands, one row, several images, and the decoder's real shape.
        for (n, c, co, h, w) in [
            (2, 5, 16, 11, 21),
            (1, 3, 32, 1, 16),
            (3, 4, 16, 17, 33),
            (1, 32, 64, 256, 256),
        ] {
            let block = layer(c, co);
            let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &Device::Cpu).unwrap();
            let k = Tensor::randn(0f32, 0.3, (n, co, 3, 3), &Device::Cpu).unwrap();
            let ours = block.forward_contracted(&x, &k).unwrap();
            let y = block.unfused(&x).unwrap();
            let mut per = Vec::new();
            for i in 0..n {
                let yi = y.narrow(0, i, 1).unwrap();
                per.push(yi.conv2d(&k.narrow(0, i, 1).unwrap(), 1, 1, 1, 1).unwrap());
            }
            let want = Tensor::cat(&per, 0).unwrap();
            assert_eq!(ours.dims(), &[n, 1, h, w]);
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            // 9·co products per output, summed in another order; a lost border or a lane past
            // the edge would be off by whole units.
            assert!(
                diff < 1e-4,
                "{n}x{c}x{h}x{w} -> {co}: max difference {diff}"
            );
        }
    }

    #[test]
    fn contracted_kernel_reads_bordered_pair_planes_as_it_reads_the_map() {
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        // A partial strip and band, and the decoder's shape (on the AMX tiles where the CPU
        // has them).
        for (n, c, co, h, w) in [(2, 6, 16, 11, 21), (1, 32, 64, 24, 40)] {
            let mut block = layer(c, co);
            block.pack_bf16();
            assert!(block.takes_pairs(c) && !block.takes_pairs(c + 2));
            let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &Device::Cpu).unwrap();
            let k = Tensor::randn(0f32, 0.3, (n, co, 3, 3), &Device::Cpu).unwrap();
            let values: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let (pw, plane) = (PairPlanes::row_len(w), PairPlanes::plane_len(h, w));
            let mut data = vec![0u32; PairPlanes::len(n, c / 2, h, w)];
            for img in 0..n {
                for j in 0..c / 2 {
                    for y in 0..h {
                        let row = |ch: usize| &values[((img * c + ch) * h + y) * w..][..w];
                        let at = (img * c / 2 + j) * plane + (y + 1) * pw + 1;
                        interleave_bf16(row(2 * j), row(2 * j + 1), &mut data[at..at + w]);
                    }
                }
            }
            let planes = PairPlanes {
                data,
                n,
                pairs: c / 2,
                h,
                w,
            };
            let ours = block.forward_contracted_pairs(&planes, &k).unwrap();
            let want = block.forward_contracted(&x, &k).unwrap();
            // The same bf16 operands through the same kernel: the same values.
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            assert_eq!(diff, 0.0, "{n}x{c}x{h}x{w} -> {co}");
        }
    }

    #[test]
    fn normalising_and_contracting_in_one_pass_equals_the_two_steps() {
        assert!(
            std::arch::is_x86_feature_detected!("avx512f"),
            "this test needs a CPU with AVX-512F, which the fused kernel is written for"
        );
        let block = layer(32, 64);
        let p = block.packed.as_ref().unwrap();
        let tile: Vec<f32> = Tensor::randn(0f32, 2.0, 64 * LANES, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        let k: Vec<f32> = Tensor::randn(0f32, 0.3, 64 * 9, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        let pw = 40;
        // A whole strip and one cut by the image's edge, at an offset inside the rows.
        for valid in [LANES, 5] {
            let (mut fused, mut steps) = (vec![0.5f32; 4 * pw], vec![0.5f32; 4 * pw]);
            let mut normalised = tile.clone();
            // SAFETY: AVX-512F was asserted; the outputs hold rows 1..=3 of `pw` columns, and
            // the taps reach columns 3..3 + valid + 1 < pw.
            unsafe {
                normalise_and_contract(p, &tile, &k, valid, fused.as_mut_ptr(), 1, 3, pw);
                normalise_tile(p, &mut normalised);
                contract(&normalised, &k, 64, valid, steps.as_mut_ptr(), 1, 3, pw);
            }
            assert_eq!(fused, steps, "{valid} valid lanes");
            assert!(fused.iter().any(|v| *v != 0.5), "the taps were added");
        }
    }

    #[test]
    fn other_channel_counts_take_the_unfused_path() {
        let block = layer(4, 24);
        assert!(block.packed.is_none());
        let x = Tensor::randn(0f32, 1.0, (1, 4, 5, 6), &Device::Cpu).unwrap();
        assert_eq!(block.forward(&x).unwrap().dims(), &[1, 24, 5, 6]);
    }

    /// The bf16 kernel: the block (and its contraction) on bf16-rounded weights and inputs,
    /// within that rounding of the f32 operations: 2 % of the largest output allowed, 0.2-0.4 %
    /// measured (a wrong pair or lane would be off by whole units).
    #[test]
    fn bf16_kernel_stays_within_bf16_rounding_of_the_operations() {
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        for (n, c, co, h, w) in [(2, 6, 16, 11, 21), (1, 32, 64, 40, 37), (2, 32, 64, 9, 16)] {
            let mut block = layer(c, co);
            let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &Device::Cpu).unwrap();
            let k = Tensor::randn(0f32, 0.3, (n, co, 3, 3), &Device::Cpu).unwrap();
            let want = block.unfused(&x).unwrap();
            let mut per = Vec::new();
            for i in 0..n {
                let yi = want.narrow(0, i, 1).unwrap();
                per.push(yi.conv2d(&k.narrow(0, i, 1).unwrap(), 1, 1, 1, 1).unwrap());
            }
            let want_contracted = Tensor::cat(&per, 0).unwrap();
            block.pack_bf16();
            let packed = block.packed.as_ref().unwrap();
            assert!(packed.bf16_pairs.is_some());
            // The decoder's shape (32 -> 64) takes the AMX tiles where the CPU has them.
            assert_eq!(
                packed.amx_tiles.is_some(),
                crate::encoders::amx::ready() && c == 32 && co == 64
            );
            for (name, ours, want) in [
                ("block", block.forward(&x).unwrap(), &want),
                (
                    "contracted",
                    block.forward_contracted(&x, &k).unwrap(),
                    &want_contracted,
                ),
            ] {
                let what = format!("bf16 {name} {n}x{c}x{h}x{w} -> {co}");
                crate::segmenters::ops::assert_within_rounding(&ours, want, 0.02, &what);
            }
        }
    }
}
