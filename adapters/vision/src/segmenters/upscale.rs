//! The mask decoder's output upscaling (2x2 stride-2 transposed convolution C → C/4, channel
//! LayerNorm, GELU, 2x2 stride-2 transposed convolution C/4 → C/8, GELU) as one CPU pass per
//! row of image tokens. It runs once per prompt on the transformer's [4096, 256] image tokens;
//! the HQ decoder's `embedding_encoder` and `compress_vit_feat` are the same chain with other
//! widths and no final GELU, once per image.
//!
//! A 2x2 transposed convolution with stride 2 has no overlapping outputs: every input pixel
//! owns its own 2x2 block of output pixels. Two of them in a row give every input pixel a 4x4
//! block of its own, so the whole chain is a small per-pixel network:
//!
//! - one GEMM takes a row of input pixels (channels-last, as the transformer leaves them) to
//!   their four sub-pixels' C/4 channels, with the weights reordered so that each sub-pixel's
//!   channels are contiguous and the LayerNorm and GELU run on rows in place;
//! - a second GEMM takes those sub-pixels to their own four sub-pixels' C/8 channels, GELU in
//!   place;
//! - the 4 output rows the input row owns are written into the NCHW result once.
//!
//! Composed from separate operations the chain took a transposed copy of the tokens, two
//! GEMMs into layouts that then needed a permuted copy each, and four more passes over maps of
//! 4–8 MB per prompt. Other dtypes and devices take that composed path, which the test
//! compares the fused one against.
//!
//! The two GEMMs are [`Dense`] layers: packed f32 where the CPU has AVX-512, and bf16 in the
//! reduced-precision mode ([`Upscaling::pack_bf16`]).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::fused::PairPlanes;
use super::ops::{ConvTranspose2x2, LayerNorm2d, SendPtr, contiguous_f32, gelu};
use crate::encoders::dense::Dense;
use crate::encoders::kernels::{gelu_in_place, layer_norm_rows};

/// `GELU(up2(GELU(norm(up1(x)))))` with weights in PyTorch names (`output_upscaling.0`, `.1`,
/// `.3`).
#[derive(Debug, Clone)]
pub(crate) struct Upscaling {
    first: ConvTranspose2x2,
    norm: LayerNorm2d,
    second: ConvTranspose2x2,
    /// GELU after the second convolution (the output upscaling has it, the HQ chains not).
    final_gelu: bool,
    packed: Packed,
}

/// The weights as the fused pass reads them: linear layers whose outputs run over
/// (sub-pixel, channel), and the biases repeated per sub-pixel.
#[derive(Debug, Clone)]
struct Packed {
    c_in: usize,
    c_mid: usize,
    c_out: usize,
    /// c_in → 4·c_mid, output (ky·2 + kx)·c_mid + channel.
    first: Dense,
    b1: Vec<f32>,
    norm_weight: Vec<f32>,
    norm_bias: Vec<f32>,
    /// c_mid → 4·c_out, output (ky·2 + kx)·c_out + channel.
    second: Dense,
    b2: Vec<f32>,
}

/// A `[k, n]` right-hand side (`y = x·W`) as a linear layer, packed for the CPU's kernel.
fn dense_layer(w: Vec<f32>, k: usize, n: usize) -> Result<Dense> {
    let w = Tensor::from_vec(w, (k, n), &Device::Cpu)?
        .t()?
        .contiguous()?;
    let mut layer = Dense::new(w, None);
    layer.pack_for_cpu()?;
    Ok(layer)
}

/// PyTorch's ConvTranspose2d weight [c_in, c_out, 2, 2] → [c_in, 4·c_out] with columns ordered
/// (ky, kx, c_out), and the bias repeated for the four sub-pixels.
fn reorder(vb: &VarBuilder, c_in: usize, c_out: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let w: Vec<f32> = vb
        .get((c_in, c_out, 2, 2), "weight")?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut out = vec![0f32; c_in * 4 * c_out];
    for ci in 0..c_in {
        for co in 0..c_out {
            for k in 0..4 {
                out[ci * 4 * c_out + k * c_out + co] = w[(ci * c_out + co) * 4 + k];
            }
        }
    }
    let b: Vec<f32> = vb.get(c_out, "bias")?.to_dtype(DType::F32)?.to_vec1()?;
    Ok((out, b.repeat(4)))
}

impl Upscaling {
    /// `vb` is `output_upscaling`; `dim` the transformer's width C (C → C/4 → C/8, GELU at
    /// the end).
    pub(crate) fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        Self::with_widths(vb, (dim, dim / 4, dim / 8), true)
    }

    /// The same chain with other widths, and without the last GELU when `final_gelu` is
    /// false: the HQ decoder's `embedding_encoder` and `compress_vit_feat`.
    pub(crate) fn with_widths(
        vb: VarBuilder,
        (dim, c_mid, c_out): (usize, usize, usize),
        final_gelu: bool,
    ) -> Result<Self> {
        let (w1, b1) = reorder(&vb.pp("0"), dim, c_mid)?;
        let (w2, b2) = reorder(&vb.pp("3"), c_mid, c_out)?;
        let norm_vb = vb.pp("1");
        let lanes = |name: &str| -> Result<Vec<f32>> {
            norm_vb.get(c_mid, name)?.to_dtype(DType::F32)?.to_vec1()
        };
        Ok(Self {
            first: ConvTranspose2x2::new(vb.pp("0"), dim, c_mid)?,
            norm: LayerNorm2d::new(c_mid, vb.pp("1"))?,
            second: ConvTranspose2x2::new(vb.pp("3"), c_mid, c_out)?,
            final_gelu,
            packed: Packed {
                c_in: dim,
                c_mid,
                c_out,
                first: dense_layer(w1, dim, 4 * c_mid)?,
                b1,
                norm_weight: lanes("weight")?,
                norm_bias: lanes("bias")?,
                second: dense_layer(w2, c_mid, 4 * c_out)?,
                b2,
            },
        })
    }

    /// Puts the fused pass's two GEMMs in bf16 (weights and inputs rounded to bf16, sums in
    /// f32): the reduced-precision mode of the mask decoder.
    pub(crate) fn pack_bf16(&mut self) -> Result<()> {
        self.packed.first.pack_bf16()?;
        self.packed.second.pack_bf16()
    }

    /// Image tokens [n, g·g, C] (row-major over the g x g grid) → [n, c_out, 4g, 4g].
    pub(crate) fn forward(&self, tokens: &Tensor, g: usize) -> Result<Tensor> {
        if tokens.device().is_cpu() && tokens.dtype() == DType::F32 {
            self.fused(tokens, g)
        } else {
            self.composed(tokens, g)
        }
    }

    /// The five operations one after the other.
    fn composed(&self, tokens: &Tensor, g: usize) -> Result<Tensor> {
        let (n, _, c) = tokens.dims3()?;
        let x = tokens.transpose(1, 2)?.reshape((n, c, g, g))?;
        let y = gelu(&self.norm.forward(&self.first.forward(&x)?)?)?;
        let y = self.second.forward(&y)?;
        if self.final_gelu { gelu(&y) } else { Ok(y) }
    }

    /// One input row of image tokens (g pixels of c_in channels) through the whole chain:
    /// returns its sub-pixels' output channels, `[x·4 + ky·2 + kx][(ky2·2 + kx2)·c_out + ch]`
    /// being output pixel (4y + 2ky + ky2, 4x + 2kx + kx2) of channel ch.
    fn fine_row<'b>(&self, row: &[f32], g: usize, bufs: &'b mut RowBuffers) -> Result<&'b [f32]> {
        let p = &self.packed;
        let RowBuffers {
            mid,
            normed,
            fine,
            scratch,
        } = bufs;
        // mid[x][sub][ch] = bias + Σ_ci row[x][ci] · w1[ci][sub][ch]
        for px in mid.chunks_exact_mut(4 * p.c_mid) {
            px.copy_from_slice(&p.b1);
        }
        p.first.matmul_acc_serial(row, g, mid, scratch)?;
        // Each of the 4g sub-pixels is a row of c_mid channels.
        let eps = LayerNorm2d::EPS as f32;
        layer_norm_rows(mid, normed, &p.norm_weight, &p.norm_bias, eps);
        gelu_in_place(normed);
        for px in fine.chunks_exact_mut(4 * p.c_out) {
            px.copy_from_slice(&p.b2);
        }
        p.second.matmul_acc_serial(normed, 4 * g, fine, scratch)?;
        if self.final_gelu {
            gelu_in_place(fine);
        }
        Ok(fine)
    }

    /// The upscaled map as the HQ decoder uses it in the reduced-precision mode, without
    /// writing it out in f32: each prompt's masks `hyper` [n, k, c_out] · map, [n, k, 4g, 4g],
    /// and the map in bordered bf16 channel pairs for the HQ mask-feature convolution.
    /// `None` where that path does not apply (then [`Self::forward`] and the product): tokens
    /// not f32 on the CPU, a CPU without AVX-512 BF16, g not a multiple of 4, c_out not a
    /// multiple of 16, or more than [`MAX_MASKS`] masks a prompt.
    pub(crate) fn forward_masks_and_pairs(
        &self,
        tokens: &Tensor,
        g: usize,
        hyper: &Tensor,
    ) -> Result<Option<(Tensor, PairPlanes)>> {
        let p = &self.packed;
        let (n, pixels, c) = tokens.dims3()?;
        let (_, k, _) = hyper.dims3()?;
        let applies = tokens.device().is_cpu()
            && tokens.dtype() == DType::F32
            && crate::encoders::bf16::available()
            && g.is_multiple_of(4)
            && p.c_out.is_multiple_of(16)
            && pixels == g * g
            && c == p.c_in
            && (1..=MAX_MASKS).contains(&k)
            && hyper.dims3()? == (n, k, p.c_out);
        if !applies {
            return Ok(None);
        }
        #[cfg(target_arch = "x86_64")]
        {
            let tokens = tokens.contiguous()?;
            let (storage, layout) = tokens.storage_and_layout();
            let src = match &*storage {
                candle_core::Storage::Cpu(cpu) => contiguous_f32(cpu, layout)?,
                _ => candle_core::bail!("upscaling: expected a CPU tensor"),
            };
            let hyper: Vec<f32> = hyper.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let (side, pairs) = (4 * g, p.c_out / 2);
            let (pw, plane) = (PairPlanes::row_len(side), PairPlanes::plane_len(side, side));
            let mut logits: Vec<f32> = Vec::with_capacity(n * k * side * side);
            let mut planes: Vec<u32> = Vec::with_capacity(PairPlanes::len(n, pairs, side, side));
            // The border rows of every plane here; the items write all the other words.
            for plane_start in (0..n * pairs).map(|i| i * plane) {
                let spare = &mut planes.spare_capacity_mut()[plane_start..plane_start + plane];
                let (top, rest) = spare.split_at_mut(pw);
                for word in top.iter_mut().chain(&mut rest[side * pw..]) {
                    word.write(0);
                }
            }
            let (to_logits, to_planes) =
                (SendPtr(logits.as_mut_ptr()), SendPtr(planes.as_mut_ptr()));
            (0..n * g).into_par_iter().try_for_each_init(
                || RowBuffers::new(p, g),
                |bufs, item| -> Result<()> {
                    let (img, y) = (item / g, item % g);
                    let fine = self.fine_row(&src[(img * g + y) * g * c..][..g * c], g, bufs)?;
                    // SAFETY: AVX-512F and BF16 (`bf16::available`); the item (img, y) alone
                    // writes output rows 4y..4y+3 of its image's k logit planes and its pair
                    // planes' stored rows 4y+1..4y+4, inside both buffers.
                    unsafe {
                        mask_and_pair_rows(
                            fine,
                            (p.c_out, g, y),
                            &hyper[img * k * p.c_out..][..k * p.c_out],
                            to_logits.get().add(img * k * side * side),
                            to_planes.get().add(img * pairs * plane),
                        )
                    };
                    Ok(())
                },
            )?;
            // SAFETY: every logit row of every prompt was written by the item owning it, and
            // every word of every plane by an item or by the border loop above.
            unsafe {
                logits.set_len(n * k * side * side);
                planes.set_len(PairPlanes::len(n, pairs, side, side));
            }
            let logits = Tensor::from_vec(logits, (n, k, side, side), tokens.device())?;
            let planes = PairPlanes {
                data: planes,
                n,
                pairs,
                h: side,
                w: side,
            };
            Ok(Some((logits, planes)))
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("bf16::available() is false off x86_64")
    }

    fn fused(&self, tokens: &Tensor, g: usize) -> Result<Tensor> {
        let p = &self.packed;
        let (n, pixels, c) = tokens.dims3()?;
        if pixels != g * g || c != p.c_in {
            candle_core::bail!(
                "upscaling: expected [n, {}, {}] image tokens, got {:?}",
                g * g,
                p.c_in,
                tokens.dims()
            );
        }
        let tokens = tokens.contiguous()?;
        let (storage, layout) = tokens.storage_and_layout();
        let src = match &*storage {
            candle_core::Storage::Cpu(cpu) => contiguous_f32(cpu, layout)?,
            _ => candle_core::bail!("upscaling: expected a CPU tensor"),
        };
        let side = 4 * g;
        let c_out = p.c_out;
        // Every value is written once, by the item that owns its row: the buffer is not zeroed
        // first (at 8 MB a prompt that was a pass of its own).
        let len = n * c_out * side * side;
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let dst = SendPtr(out.as_mut_ptr());
        #[cfg(target_arch = "x86_64")]
        let gather = std::arch::is_x86_feature_detected!("avx512f");
        // Work items are (prompt, input row); each writes only the four output rows it owns.
        (0..n * g).into_par_iter().try_for_each_init(
            || RowBuffers::new(p, g),
            |bufs, item| -> Result<()> {
                let (img, y) = (item / g, item % g);
                let fine = self.fine_row(&src[(img * g + y) * g * c..][..g * c], g, bufs)?;
                // fine[(x·4 + ky·2 + kx)][(ky2·2 + kx2)·c_out + ch] is output pixel
                // (4y + 2ky + ky2, 4x + 2kx + kx2) of channel ch.
                #[cfg(target_arch = "x86_64")]
                if gather && g.is_multiple_of(4) {
                    // SAFETY: AVX-512F was detected; the item (img, y) alone writes output rows
                    // 4y..4y+3 of its image's planes.
                    unsafe {
                        scatter_rows(fine, c_out, g, dst.get().add(img * c_out * side * side), y)
                    };
                    return Ok(());
                }
                let mut line = vec![0f32; side];
                for ch in 0..c_out {
                    for (oy, (ky, ky2)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate()
                    {
                        for x in 0..g {
                            for kx in 0..2 {
                                let sub = &fine[(x * 4 + ky * 2 + kx) * 4 * c_out..];
                                for kx2 in 0..2 {
                                    line[4 * x + 2 * kx + kx2] = sub[(ky2 * 2 + kx2) * c_out + ch];
                                }
                            }
                        }
                        let at = ((img * c_out + ch) * side + 4 * y + oy) * side;
                        // SAFETY: the item (img, y) alone writes output rows 4y..4y+3 of its
                        // image, and `at + side` lies inside `out`.
                        unsafe {
                            std::ptr::copy_nonoverlapping(line.as_ptr(), dst.get().add(at), side)
                        };
                    }
                }
                Ok(())
            },
        )?;
        // SAFETY: the items (img, y) for every image and input row each wrote output rows
        // 4y..4y+3 of every channel plane of their image: all `len` values.
        unsafe { out.set_len(len) };
        Tensor::from_vec(out, (n, c_out, side, side), tokens.device())
    }
}

/// Masks per prompt [`Upscaling::forward_masks_and_pairs`] computes at once (SAM's three, or
/// the HQ decoder's one).
const MAX_MASKS: usize = 4;

/// Per-thread buffers of one input row's pass.
struct RowBuffers {
    mid: Vec<f32>,
    normed: Vec<f32>,
    fine: Vec<f32>,
    scratch: Vec<u16>,
}

impl RowBuffers {
    fn new(p: &Packed, g: usize) -> Self {
        Self {
            mid: vec![0f32; g * 4 * p.c_mid],
            normed: vec![0f32; g * 4 * p.c_mid],
            fine: vec![0f32; g * 16 * p.c_out],
            scratch: Vec::new(),
        }
    }
}

/// The four output rows of input row `y` from its sub-pixels' channels `fine` (as
/// [`scatter_rows`] reads them), as `k` mask logits per pixel (`hyper` [k, c_out] · the
/// pixel's channels) into the image's k planes at `logits`, and as bf16 channel pairs into its
/// bordered pair planes at `planes` (see [`PairPlanes`]; this writes the stored rows
/// 4y+1..4y+4 whole, border columns included). Per 16 output pixels, the pixels' channel rows
/// are transposed in registers into one vector per channel.
///
/// # Safety
/// AVX-512F and BF16; g is a multiple of 4 and c_out of 16; `fine` holds g·16·c_out values;
/// `logits` points at k planes of (4g)² values and `planes` at c_out/2 planes of
/// [`PairPlanes::plane_len`] words, whose rows named above no other thread writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn mask_and_pair_rows(
    fine: &[f32],
    (c_out, g, y): (usize, usize, usize),
    hyper: &[f32],
    logits: *mut f32,
    planes: *mut u32,
) {
    use crate::encoders::kernels::avx512_math::transpose_16x16;
    use std::arch::x86_64::*;
    assert!(fine.len() >= g * 16 * c_out && g.is_multiple_of(4) && c_out.is_multiple_of(16));
    let (side, k) = (4 * g, hyper.len() / c_out);
    let (pw, plane) = (PairPlanes::row_len(side), PairPlanes::plane_len(side, side));
    for oy in 0..4 {
        let (ky, ky2) = (oy / 2, oy % 2);
        let out_row = 4 * y + oy;
        for j in 0..c_out / 2 {
            // SAFETY: stored row out_row + 1 of plane j: its border columns.
            unsafe {
                let row = planes.add(j * plane + (out_row + 1) * pw);
                *row = 0;
                std::ptr::write_bytes(row.add(side + 1), 0, pw - side - 1);
            }
        }
        for x0 in (0..g).step_by(4) {
            // Output pixel 4·x0 + i comes from input pixel x0 + i/4, sub-pixel column
            // (i % 4) / 2 of the first transposed convolution and i % 2 of the second.
            let pixel = |i: usize| {
                ((4 * (x0 + i / 4) + 2 * ky + (i % 4) / 2) * 4 + 2 * ky2 + i % 2) * c_out
            };
            let mut acc = [_mm512_setzero_ps(); MAX_MASKS];
            for half in 0..c_out / 16 {
                let mut v = [_mm512_setzero_ps(); 16];
                for (i, lane) in v.iter_mut().enumerate() {
                    // SAFETY: pixel i's channels 16·half .. 16·half + 16 lie inside `fine`.
                    *lane = unsafe { _mm512_loadu_ps(fine.as_ptr().add(pixel(i) + 16 * half)) };
                }
                transpose_16x16(&mut v);
                // v[ch] now holds channel 16·half + ch of the 16 pixels.
                for (kk, a) in acc.iter_mut().enumerate().take(k) {
                    for (ch, lane) in v.iter().enumerate() {
                        let w = _mm512_set1_ps(hyper[kk * c_out + 16 * half + ch]);
                        *a = _mm512_fmadd_ps(*lane, w, *a);
                    }
                }
                for jj in 0..8 {
                    let lo: __m256i = unsafe { std::mem::transmute(_mm512_cvtneps_pbh(v[2 * jj])) };
                    let hi: __m256i =
                        unsafe { std::mem::transmute(_mm512_cvtneps_pbh(v[2 * jj + 1])) };
                    let words = _mm512_or_si512(
                        _mm512_cvtepu16_epi32(lo),
                        _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)),
                    );
                    let j = 8 * half + jj;
                    // SAFETY: stored row out_row + 1 of plane j, columns 1 + 4·x0 .. + 16.
                    unsafe {
                        let at = planes.add(j * plane + (out_row + 1) * pw + 1 + 4 * x0);
                        _mm512_storeu_si512(at.cast(), words);
                    }
                }
            }
            for (kk, a) in acc.iter().enumerate().take(k) {
                // SAFETY: row out_row of logit plane kk, pixels 4·x0 .. 4·x0 + 16.
                unsafe {
                    _mm512_storeu_ps(logits.add((kk * side + out_row) * side + 4 * x0), *a);
                }
            }
        }
    }
}

/// The four output rows of input row `y` from its sub-pixels' channels `fine`
/// ([x·4 + ky·2 + kx][(ky2·2 + kx2)·c_out + ch]) into the image's NCHW planes at `out`, 16
/// output pixels (four input pixels) per gather.
///
/// # Safety
/// AVX-512F; `fine` holds g·16·c_out values, g is a multiple of 4, and `out` points at an
/// image's c_out planes of (4g)² values whose rows 4y..4y+3 no other thread writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scatter_rows(fine: &[f32], c_out: usize, g: usize, out: *mut f32, y: usize) {
    use std::arch::x86_64::*;
    assert!(fine.len() >= g * 16 * c_out && g.is_multiple_of(4));
    let side = 4 * g;
    // Output pixel 4·x0 + i of a row comes from input pixel x0 + i/4, sub-pixel column
    // (i % 4) / 2 of the first transposed convolution and i % 2 of the second.
    let offsets: [i32; 16] =
        std::array::from_fn(|i| ((4 * (i / 4) + (i % 4) / 2) * 4 * c_out + (i % 2) * c_out) as i32);
    let offsets = unsafe { _mm512_loadu_si512(offsets.as_ptr().cast()) };
    for ch in 0..c_out {
        for (oy, (ky, ky2)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
            let row = unsafe { out.add((ch * side + 4 * y + oy) * side) };
            for x0 in (0..g).step_by(4) {
                let base = (4 * x0 + 2 * ky) * 4 * c_out + 2 * ky2 * c_out + ch;
                // SAFETY: every offset stays inside the sub-pixels of input pixels x0..x0+4,
                // inside `fine`; the 16 outputs are pixels 4·x0 .. 4·x0 + 16 of the row.
                unsafe {
                    let v = _mm512_i32gather_ps::<4>(offsets, fine.as_ptr().add(base).cast());
                    _mm512_storeu_ps(row.add(4 * x0), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::bf16;
    use candle_core::Device;
    use candle_nn::VarMap;

    fn upscaling(dim: usize) -> Upscaling {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        // A first build creates the variables; they are then set to random values (the norm
        // constants too) and the module built again from them.
        Upscaling::new(vb.clone(), dim).unwrap();
        let mut data = map.data().lock().unwrap();
        for (name, var) in data.iter_mut() {
            let shape = var.shape().clone();
            let scale = if name.ends_with("weight") && !name.starts_with("1.") {
                0.2
            } else {
                1.0
            };
            var.set(&Tensor::randn(0f32, scale, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
        drop(data);
        Upscaling::new(vb, dim).unwrap()
    }

    #[test]
    fn fused_pass_equals_the_composed_operations() {
        // Small odd grids, several prompts, and the decoder's real shape.
        for (n, dim, g) in [(3, 32, 5), (1, 64, 7), (2, 256, 64)] {
            let up = upscaling(dim);
            let x = Tensor::randn(0f32, 1.0, (n, g * g, dim), &Device::Cpu).unwrap();
            let ours = up.fused(&x, g).unwrap();
            let want = up.composed(&x, g).unwrap();
            assert_eq!(ours.dims(), &[n, dim / 8, 4 * g, 4 * g]);
            assert_eq!(ours.dims(), want.dims());
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            // Same products summed in another order: f32 rounding differs by ~1e-6 on outputs
            // of a few units; a misplaced sub-pixel or channel is off by whole units.
            assert!(diff < 1e-4, "{n}x{g}x{g}x{dim}: max difference {diff}");
        }
    }

    #[test]
    fn bf16_pass_stays_within_bf16_rounding_of_the_composed_operations() {
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        for (n, dim, g) in [(2, 32, 5), (1, 256, 16)] {
            let mut up = upscaling(dim);
            let x = Tensor::randn(0f32, 1.0, (n, g * g, dim), &Device::Cpu).unwrap();
            let want = up.composed(&x, g).unwrap();
            up.pack_bf16().unwrap();
            let ours = up.fused(&x, g).unwrap();
            // Both GEMMs' operands rounded to bf16 (2⁻⁹ relative each).
            let what = format!("bf16 upscaling {n}x{g}x{g}x{dim}");
            crate::segmenters::ops::assert_within_rounding(&ours, &want, 0.02, &what);
        }
    }

    #[test]
    fn masks_and_pairs_equal_the_product_with_the_map_and_its_bf16_pairs() {
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        // Three prompts with one mask each, one with three (maps of 8 x 8 and 12 x 12 tokens),
        // and the decoder's real shape.
        for (n, k, dim, g) in [(3, 1, 128, 8), (1, 3, 256, 12), (2, 1, 256, 64)] {
            let mut up = upscaling(dim);
            up.pack_bf16().unwrap();
            let x = Tensor::randn(0f32, 1.0, (n, g * g, dim), &Device::Cpu).unwrap();
            let hyper = Tensor::randn(0f32, 1.0, (n, k, dim / 8), &Device::Cpu).unwrap();
            let (logits, planes) = up.forward_masks_and_pairs(&x, g, &hyper).unwrap().unwrap();
            let map = up.fused(&x, g).unwrap();
            let side = 4 * g;
            let c8 = dim / 8;
            let want = hyper
                .matmul(&map.reshape((n, c8, side * side)).unwrap())
                .unwrap()
                .reshape((n, k, side, side))
                .unwrap();
            let diff = crate::segmenters::ops::max_abs_diff(&logits, &want);
            // The same products summed in another order.
            assert!(
                diff < 1e-3,
                "{n}x{k} masks on {g}x{g}: max difference {diff}"
            );
            // Every word: the map's channels 2j and 2j + 1 rounded to bf16, zero on the border.
            let values: Vec<f32> = map.flatten_all().unwrap().to_vec1().unwrap();
            let (pw, plane) = (PairPlanes::row_len(side), PairPlanes::plane_len(side, side));
            assert_eq!(planes.data.len(), n * c8 / 2 * plane);
            for img in 0..n {
                for j in 0..c8 / 2 {
                    for r in 0..side + 2 {
                        for col in 0..pw {
                            let got = planes.data[(img * c8 / 2 + j) * plane + r * pw + col];
                            let inside = (1..=side).contains(&r) && (1..=side).contains(&col);
                            let want = if inside {
                                let at = |ch: usize| {
                                    values[((img * c8 + ch) * side + r - 1) * side + col - 1]
                                };
                                let (lo, hi) = (at(2 * j), at(2 * j + 1));
                                bf16::to_bf16(lo) as u32 | (bf16::to_bf16(hi) as u32) << 16
                            } else {
                                0
                            };
                            assert_eq!(got, want, "image {img}, pair {j}, stored ({r}, {col})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn hq_chains_without_the_last_gelu_equal_the_composed_operations() {
        // compress_vit_feat's shape, scaled down: 40 → 32 → 8 channels, no final GELU.
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        Upscaling::with_widths(vb.clone(), (40, 32, 8), false).unwrap();
        for var in map.data().lock().unwrap().values_mut() {
            let shape = var.shape().clone();
            var.set(&Tensor::randn(0f32, 0.3, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
        let up = Upscaling::with_widths(vb, (40, 32, 8), false).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 36, 40), &Device::Cpu).unwrap();
        let ours = up.fused(&x, 6).unwrap();
        let want = up.composed(&x, 6).unwrap();
        assert_eq!(ours.dims(), &[1, 8, 24, 24]);
        let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
        assert!(diff < 1e-4, "max difference {diff}");
        // Without the last GELU some outputs are negative (GELU's floor is about −0.17).
        let min = ours.min_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(min < -0.2, "smallest output {min}");
    }

    #[test]
    fn tokens_of_the_wrong_shape_are_refused() {
        let up = upscaling(32);
        let x = Tensor::zeros((1, 24, 32), DType::F32, &Device::Cpu).unwrap();
        assert!(up.forward(&x, 5).is_err());
    }
}
