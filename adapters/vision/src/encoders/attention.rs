//! Multi-head attention for the encoders, read straight from the fused `[rows, 3·C]` q/k/v
//! projection (q already scaled) and written straight into the `[rows, C]` context, with no
//! permuted copies.
//!
//! The work is split into jobs of (batch, head, block of [`QUERY_BLOCK`] query rows), run in
//! parallel. A job computes its block's scores against every key, `exp(s − max)` per row, the
//! product with the values, and divides by the row sums at the end (as PyTorch's CPU flash
//! attention does). The block's score rows stay in the core's L2 cache across the three steps,
//! and with whole rows in hand the softmax needs no running rescale.
//!
//! The two products run one of three ways ([`Products`]):
//! - f32 on AVX-512: register-tiled kernels ([`avx512`]); each head's keys are first packed
//!   into panels of 32 (two vector loads per channel), the values are read in place;
//! - bf16, the encoders' reduced-precision mode: q, k, v and the unnormalised probabilities
//!   rounded to bf16 and multiplied by [`PackedBf16`]'s `vdpbf16ps` kernel, sums in f32 (what
//!   PyTorch's bf16 flash attention computes);
//! - f32 elsewhere: the `gemm` crate per block, the portable path.

use rayon::prelude::*;

use super::bf16::{PackedBf16, exp_shifted_row_to_bf16, round_to_bf16};
use super::kernels::{exp_shifted_row, gemm_f32};

/// Query rows per job: their scores against a thousand keys (256 KB) stay in L2.
const QUERY_BLOCK: usize = 64;

/// How the two products of attention (`q·kᵀ` and `p·v`) are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Products {
    F32,
    /// Operands rounded to bf16, sums in f32. Needs [`super::bf16::available`].
    Bf16,
}

/// Where one head's q, k and v rows are in the fused projection.
#[derive(Clone, Copy)]
struct Heads<'a> {
    qkv: &'a [f32],
    /// Tokens per image.
    n: usize,
    heads: usize,
    d: usize,
}

impl Heads<'_> {
    fn c(&self) -> usize {
        self.heads * self.d
    }

    fn stride(&self) -> usize {
        3 * self.c()
    }

    /// Offset of token `i`'s `part` (0 = q, 1 = k, 2 = v) of head `h` in image `b`.
    fn at(&self, b: usize, h: usize, part: usize, i: usize) -> usize {
        (b * self.n + i) * self.stride() + part * self.c() + h * self.d
    }

    fn row(&self, b: usize, h: usize, part: usize, i: usize) -> &[f32] {
        let at = self.at(b, h, part, i);
        &self.qkv[at..at + self.d]
    }
}

/// One job: the query rows `r0 .. r0 + rows` of head `h` in image `b`.
struct Block {
    b: usize,
    h: usize,
    r0: usize,
    rows: usize,
}

/// Attention from the fused projection `qkv` (row-major `[batch·n, 3·C]`: q, k, v each
/// `[heads × d]` along the columns, q already scaled) → the context, row-major `[batch·n, C]`.
pub(crate) fn attention(
    qkv: &[f32],
    batch: usize,
    n: usize,
    heads: usize,
    d: usize,
    products: Products,
) -> Vec<f32> {
    let x = Heads { qkv, n, heads, d };
    assert_eq!(qkv.len(), batch * n * x.stride(), "qkv of the stated shape");
    match products {
        Products::Bf16 => run(
            x,
            batch,
            |b, h| {
                let stride = x.stride();
                let keys = PackedBf16::pack_rows(&qkv[x.at(b, h, 1, 0)..], n, d, stride);
                let values = PackedBf16::pack_columns(&qkv[x.at(b, h, 2, 0)..], d, n, stride);
                (keys, values)
            },
            || Bf16Scratch::new(n, d),
            |(keys, values), scratch, block, ctx| bf16_block(x, keys, values, scratch, block, ctx),
        ),
        Products::F32 if avx512::available() => run(
            x,
            batch,
            |b, h| avx512::pack_keys(&x, b, h),
            || vec![0f32; QUERY_BLOCK * avx512::padded_keys(n)],
            |keys, scores, block, ctx| avx512_block(x, keys, scores, block, ctx),
        ),
        Products::F32 => run(
            x,
            batch,
            |_, _| (),
            || vec![0f32; QUERY_BLOCK * n],
            |(), scores, block, ctx| portable_block(x, scores, block, ctx),
        ),
    }
}

/// Prepares each (image, head) with `prepare`, then runs `job` on every block of query rows (in
/// parallel, each worker with its own `scratch`), each writing its `[rows, d]` context straight
/// into the interleaved `[batch·n, C]` output. Heads of more than one block are prepared up
/// front (in parallel) and shared by their blocks; a head that is one block is prepared inside
/// its job.
fn run<P: Sync + Send, S: Send>(
    x: Heads,
    batch: usize,
    prepare: impl Fn(usize, usize) -> P + Sync + Send,
    scratch: impl Fn() -> S + Sync + Send,
    job: impl Fn(&P, &mut S, &Block, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let (n, heads, d, c) = (x.n, x.heads, x.d, x.c());
    let mut out = vec![0f32; batch * n * c];
    let dst = crate::segmenters::ops::SendPtr(out.as_mut_ptr());
    let write = |block: &Block, ctx: &[f32]| {
        for (i, row) in ctx.chunks_exact(d).enumerate() {
            let at = (block.b * n + block.r0 + i) * c + block.h * d;
            // SAFETY: a block writes only its own rows' columns of its head, inside `out`.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), dst.get().add(at), d) };
        }
    };
    if n <= QUERY_BLOCK {
        (0..batch * heads).into_par_iter().for_each_init(
            || (scratch(), vec![0f32; n * d]),
            |(s, ctx), i| {
                let (b, h) = (i / heads, i % heads);
                let block = Block {
                    b,
                    h,
                    r0: 0,
                    rows: n,
                };
                ctx.fill(0.0);
                job(&prepare(b, h), s, &block, ctx);
                write(&block, ctx);
            },
        );
        return out;
    }
    let prepared: Vec<P> = (0..batch * heads)
        .into_par_iter()
        .map(|i| prepare(i / heads, i % heads))
        .collect();
    let blocks: Vec<Block> = (0..batch)
        .flat_map(|b| {
            (0..heads).flat_map(move |h| {
                (0..n).step_by(QUERY_BLOCK).map(move |r0| Block {
                    b,
                    h,
                    r0,
                    rows: QUERY_BLOCK.min(n - r0),
                })
            })
        })
        .collect();
    blocks.par_iter().for_each_init(
        || (scratch(), vec![0f32; QUERY_BLOCK * d]),
        |(s, ctx), block| {
            let ctx = &mut ctx[..block.rows * d];
            ctx.fill(0.0);
            job(&prepared[block.b * heads + block.h], s, block, ctx);
            write(block, ctx);
        },
    );
    out
}

/// `exp(row − max)` for each of the first `n` entries of each `stride`-long row of `scores`,
/// returning `1 / sum` per row.
fn exponentiate_rows(
    scores: &mut [f32],
    rows: usize,
    stride: usize,
    n: usize,
) -> [f32; QUERY_BLOCK] {
    let mut inv = [0f32; QUERY_BLOCK];
    for (r, row) in scores.chunks_exact_mut(stride).take(rows).enumerate() {
        inv[r] = 1.0 / exp_shifted_row(&mut row[..n]);
    }
    inv
}

fn portable_block(x: Heads, scores: &mut [f32], block: &Block, ctx: &mut [f32]) {
    let (n, d, stride) = (x.n, x.d, x.stride());
    let Block { b, h, r0, rows } = *block;
    let scores = &mut scores[..rows * n];
    // S[rows×n] = q[rows×d] · kᵀ[d×n]
    gemm_f32(
        (rows, n, d),
        scores,
        (n, 1),
        false,
        &x.qkv[x.at(b, h, 0, r0)..],
        (stride, 1),
        &x.qkv[x.at(b, h, 1, 0)..],
        (1, stride),
        gemm::Parallelism::None,
    );
    let inv = exponentiate_rows(scores, rows, n, n);
    gemm_f32(
        (rows, d, n),
        ctx,
        (d, 1),
        false,
        scores,
        (n, 1),
        &x.qkv[x.at(b, h, 2, 0)..],
        (stride, 1),
        gemm::Parallelism::None,
    );
    for (row, inv) in ctx.chunks_exact_mut(d).zip(inv) {
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

fn avx512_block(x: Heads, keys: &[f32], scores: &mut [f32], block: &Block, ctx: &mut [f32]) {
    let (n, d, stride) = (x.n, x.d, x.stride());
    let Block { b, h, r0, rows } = *block;
    let padded = avx512::padded_keys(n);
    let scores = &mut scores[..rows * padded];
    let q = &x.qkv[x.at(b, h, 0, r0)..x.at(b, h, 0, r0 + rows - 1) + d];
    // SAFETY (both calls): `run` chose this path because `avx512::available()`; the slices
    // have the shapes the kernels assert.
    unsafe { avx512::scores(q, stride, rows, keys, d, scores, padded) };
    let inv = exponentiate_rows(scores, rows, padded, n);
    let v = &x.qkv[x.at(b, h, 2, 0)..x.at(b, h, 2, n - 1) + d];
    unsafe { avx512::context(scores, padded, rows, n, v, stride, d, &inv, ctx) };
}

/// Per-worker buffers of the bf16 path.
struct Bf16Scratch {
    scores: Vec<f32>,
    /// The block's queries in bf16, rows of `d` rounded up to even.
    queries: Vec<u16>,
    /// The block's unnormalised probabilities in bf16, rows of `n` rounded up to even.
    probs: Vec<u16>,
}

impl Bf16Scratch {
    fn new(n: usize, d: usize) -> Self {
        // Zeros from the start: the padding column of odd-length rows is never written.
        Bf16Scratch {
            scores: vec![0f32; QUERY_BLOCK * n],
            queries: vec![0u16; QUERY_BLOCK * d.div_ceil(2) * 2],
            probs: vec![0u16; QUERY_BLOCK * n.div_ceil(2) * 2],
        }
    }
}

fn bf16_block(
    x: Heads,
    keys: &PackedBf16,
    values: &PackedBf16,
    s: &mut Bf16Scratch,
    block: &Block,
    ctx: &mut [f32],
) {
    let (n, d) = (x.n, x.d);
    let Block { b, h, r0, rows } = *block;
    let (dp, np) = (keys.padded_k(), values.padded_k());
    for (r, dst) in s.queries.chunks_exact_mut(dp).take(rows).enumerate() {
        round_to_bf16(x.row(b, h, 0, r0 + r), &mut dst[..d]);
    }
    let scores = &mut s.scores[..rows * n];
    scores.fill(0.0);
    keys.matmul_acc_bf16(&s.queries[..rows * dp], rows, scores);
    let mut inv = [0f32; QUERY_BLOCK];
    for ((src, dst), inv) in scores
        .chunks_exact(n)
        .zip(s.probs.chunks_exact_mut(np))
        .zip(&mut inv)
    {
        *inv = 1.0 / exp_shifted_row_to_bf16(src, &mut dst[..n]).1;
    }
    values.matmul_acc_bf16(&s.probs[..rows * np], rows, ctx);
    for (row, inv) in ctx.chunks_exact_mut(d).zip(inv) {
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// The f32 kernels for AVX-512: scores of up to 8 query rows against a panel of 32 keys in 16
/// registers; context of up to 6 rows × 64 channels in 24.
mod avx512 {
    use super::Heads;

    /// Keys per packed panel.
    const PANEL: usize = 32;

    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The key count rounded up to whole panels: the row length of the score buffer.
    pub(super) fn padded_keys(n: usize) -> usize {
        n.div_ceil(PANEL) * PANEL
    }

    /// Head `h`'s keys of image `b` as panels: for each panel of 32 keys and each channel `t`,
    /// the 32 keys' values side by side (zeros past the last key).
    pub(super) fn pack_keys(x: &Heads, b: usize, h: usize) -> Vec<f32> {
        let (n, d) = (x.n, x.d);
        let mut packed = vec![0f32; padded_keys(n) * d];
        for (j, key) in (0..n).map(|j| (j, x.row(b, h, 1, j))) {
            let panel = &mut packed[j / PANEL * PANEL * d..];
            for (t, &v) in key.iter().enumerate() {
                panel[t * PANEL + j % PANEL] = v;
            }
        }
        packed
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) use kernels::{context, scores};

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn scores(
        _: &[f32],
        _: usize,
        _: usize,
        _: &[f32],
        _: usize,
        _: &mut [f32],
        _: usize,
    ) {
        unreachable!("available() is false off x86_64")
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn context(
        _: &[f32],
        _: usize,
        _: usize,
        _: usize,
        _: &[f32],
        _: usize,
        _: usize,
        _: &[f32],
        _: &mut [f32],
    ) {
        unreachable!("available() is false off x86_64")
    }

    #[cfg(target_arch = "x86_64")]
    mod kernels {
        use std::arch::x86_64::*;

        use super::PANEL;

        /// `out[r][j] = q[r]·k[j]` for `rows` query rows (`d` channels each, `q_stride` apart)
        /// against the packed keys, into rows `padded` long (a whole number of panels).
        ///
        /// # Safety
        /// The CPU must have AVX-512F.
        #[target_feature(enable = "avx512f")]
        pub(in super::super) unsafe fn scores(
            q: &[f32],
            q_stride: usize,
            rows: usize,
            keys: &[f32],
            d: usize,
            out: &mut [f32],
            padded: usize,
        ) {
            assert!(rows > 0 && q.len() >= (rows - 1) * q_stride + d, "queries");
            assert!(
                padded.is_multiple_of(PANEL) && keys.len() >= padded * d,
                "packed keys"
            );
            assert!(out.len() >= rows * padded, "score rows");
            for p in 0..padded / PANEL {
                let panel = keys[p * PANEL * d..].as_ptr();
                let mut i = 0;
                while i < rows {
                    let r = (rows - i).min(8);
                    let qp = q[i * q_stride..].as_ptr();
                    let op = out[i * padded + p * PANEL..].as_mut_ptr();
                    // SAFETY (all arms): rows i..i+r of q and out and the panel's d·32 values
                    // lie inside the slices (asserted above).
                    unsafe {
                        match r {
                            8 => scores_block::<8>(qp, q_stride, panel, d, op, padded),
                            7 => scores_block::<7>(qp, q_stride, panel, d, op, padded),
                            6 => scores_block::<6>(qp, q_stride, panel, d, op, padded),
                            5 => scores_block::<5>(qp, q_stride, panel, d, op, padded),
                            4 => scores_block::<4>(qp, q_stride, panel, d, op, padded),
                            3 => scores_block::<3>(qp, q_stride, panel, d, op, padded),
                            2 => scores_block::<2>(qp, q_stride, panel, d, op, padded),
                            _ => scores_block::<1>(qp, q_stride, panel, d, op, padded),
                        }
                    }
                    i += r;
                }
            }
        }

        #[target_feature(enable = "avx512f")]
        unsafe fn scores_block<const R: usize>(
            q: *const f32,
            q_stride: usize,
            panel: *const f32,
            d: usize,
            out: *mut f32,
            out_stride: usize,
        ) {
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            for t in 0..d {
                // SAFETY: the caller guarantees R rows of d queries, d·32 panel values and R
                // rows of 32 outputs.
                unsafe {
                    let k0 = _mm512_loadu_ps(panel.add(t * PANEL));
                    let k1 = _mm512_loadu_ps(panel.add(t * PANEL + 16));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let qv = _mm512_set1_ps(*q.add(r * q_stride + t));
                        acc[0] = _mm512_fmadd_ps(qv, k0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(qv, k1, acc[1]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe {
                    _mm512_storeu_ps(out.add(r * out_stride), acc[0]);
                    _mm512_storeu_ps(out.add(r * out_stride + 16), acc[1]);
                }
            }
        }

        /// `out[r] = inv[r] · Σⱼ p[r][j] · v[j]` for `rows` rows of probabilities (`n` used of
        /// each `p_stride`-long row) and `n` value rows of `d` channels, `v_stride` apart; `out`
        /// is `[rows, d]`.
        ///
        /// # Safety
        /// The CPU must have AVX-512F.
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        pub(in super::super) unsafe fn context(
            p: &[f32],
            p_stride: usize,
            rows: usize,
            n: usize,
            v: &[f32],
            v_stride: usize,
            d: usize,
            inv: &[f32],
            out: &mut [f32],
        ) {
            assert!(
                rows > 0 && n > 0 && p.len() >= (rows - 1) * p_stride + n,
                "probabilities"
            );
            assert!(v.len() >= (n - 1) * v_stride + d, "values");
            assert!(inv.len() >= rows && out.len() >= rows * d, "output rows");
            // Channels in chunks of 64 (four vectors); lanes past `d` are masked off, so their
            // loads read nothing and their stores write nothing.
            for c0 in (0..d).step_by(64) {
                let masks: [__mmask16; 4] = std::array::from_fn(|x| {
                    let lanes = d.saturating_sub(c0 + 16 * x).min(16);
                    ((1u32 << lanes) - 1) as __mmask16
                });
                let mut i = 0;
                while i < rows {
                    let r = (rows - i).min(6);
                    let pp = p[i * p_stride..].as_ptr();
                    let vp = v[c0..].as_ptr();
                    let op = out[i * d + c0..].as_mut_ptr();
                    let ip = inv[i..].as_ptr();
                    // SAFETY (all arms): rows i..i+r of p, inv and out, and the n value rows'
                    // unmasked lanes, lie inside the slices (asserted above).
                    unsafe {
                        match r {
                            6 => {
                                context_block::<6>(pp, p_stride, n, vp, v_stride, masks, ip, op, d)
                            }
                            5 => {
                                context_block::<5>(pp, p_stride, n, vp, v_stride, masks, ip, op, d)
                            }
                            4 => {
                                context_block::<4>(pp, p_stride, n, vp, v_stride, masks, ip, op, d)
                            }
                            3 => {
                                context_block::<3>(pp, p_stride, n, vp, v_stride, masks, ip, op, d)
                            }
                            2 => {
                                context_block::<2>(pp, p_stride, n, vp, v_stride, masks, ip, op, d)
                            }
                            _ => {
                                context_block::<1>(pp, p_stride, n, vp, v_stride, masks, ip, op, d)
                            }
                        }
                    }
                    i += r;
                }
            }
        }

        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn context_block<const R: usize>(
            p: *const f32,
            p_stride: usize,
            n: usize,
            v: *const f32,
            v_stride: usize,
            masks: [__mmask16; 4],
            inv: *const f32,
            out: *mut f32,
            out_stride: usize,
        ) {
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            for j in 0..n {
                // SAFETY: the caller guarantees R rows of n probabilities, n value rows whose
                // unmasked lanes are in bounds, R inverse sums and R output rows.
                unsafe {
                    let row = v.add(j * v_stride);
                    let vv: [__m512; 4] =
                        std::array::from_fn(|x| _mm512_maskz_loadu_ps(masks[x], row.add(16 * x)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let pv = _mm512_set1_ps(*p.add(r * p_stride + j));
                        for x in 0..4 {
                            acc[x] = _mm512_fmadd_ps(pv, vv[x], acc[x]);
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe {
                    let s = _mm512_set1_ps(*inv.add(r));
                    for x in 0..4 {
                        let dst = out.add(r * out_stride + 16 * x);
                        _mm512_mask_storeu_ps(dst, masks[x], _mm512_mul_ps(acc[x], s));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::encoders::bf16::to_bf16;
    use crate::segmenters::ops::max_abs_diff;

    /// softmax(q·kᵀ)·v per (image, head) with candle's ops.
    fn plain(qkv: &Tensor, batch: usize, n: usize, heads: usize, d: usize) -> Tensor {
        let t = qkv
            .reshape((batch, n, 3, heads, d))
            .unwrap()
            .permute((2, 0, 3, 1, 4))
            .unwrap()
            .contiguous()
            .unwrap();
        let (q, k, v) = (t.get(0).unwrap(), t.get(1).unwrap(), t.get(2).unwrap());
        let p = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t().unwrap()).unwrap()).unwrap();
        p.matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((batch * n, heads * d))
            .unwrap()
    }

    /// q, k and v with scores of about unit spread, as in a model (whose q carries `1/√d`):
    /// uniform values from a fixed hash, so that every run checks the same numbers.
    fn random_qkv(batch: usize, n: usize, heads: usize, d: usize) -> Tensor {
        let len = batch * n * 3 * heads * d;
        let scale = 3.4 * (d as f32).powf(-0.25);
        let data: Vec<f32> = (0..len as u64)
            .map(|i| {
                let h = (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                (h as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect();
        Tensor::from_vec(data, (batch * n, 3 * heads * d), &Device::Cpu).unwrap()
    }

    // Shapes: one query block; several with a ragged last one and a ragged last key panel;
    // head sizes below, at and above one 64-channel chunk, odd ones for the bf16 padding.
    const SHAPES: [(usize, usize, usize, usize); 5] = [
        (2, 5, 3, 4),
        (2, 300, 2, 8),
        (1, 131, 2, 64),
        (1, 70, 1, 80),
        (1, 33, 2, 7),
    ];

    #[test]
    fn f32_attention_matches_the_plain_formula() {
        let dev = Device::Cpu;
        for (batch, n, heads, d) in SHAPES {
            let qkv = random_qkv(batch, n, heads, d);
            let data: Vec<f32> = qkv.flatten_all().unwrap().to_vec1().unwrap();
            let want = plain(&qkv, batch, n, heads, d);
            let got = attention(&data, batch, n, heads, d, Products::F32);
            let got = Tensor::from_vec(got, want.dims(), &dev).unwrap();
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 1e-5, "{batch}x{n}x{heads}x{d}: {diff}");
        }
    }

    #[test]
    fn the_portable_path_matches_the_plain_formula() {
        let dev = Device::Cpu;
        for (batch, n, heads, d) in SHAPES {
            let qkv = random_qkv(batch, n, heads, d);
            let data: Vec<f32> = qkv.flatten_all().unwrap().to_vec1().unwrap();
            let want = plain(&qkv, batch, n, heads, d);
            let x = Heads {
                qkv: &data,
                n,
                heads,
                d,
            };
            let got = run(
                x,
                batch,
                |_, _| (),
                || vec![0f32; QUERY_BLOCK * n],
                |(), s, block, ctx| portable_block(x, s, block, ctx),
            );
            let got = Tensor::from_vec(got, want.dims(), &dev).unwrap();
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 1e-5, "{batch}x{n}x{heads}x{d}: {diff}");
        }
    }

    /// The bf16 path computes the formula on bf16-rounded q, k, v and probabilities: it matches
    /// that computation done in f64 closely, and f32 attention within bf16's rounding.
    #[test]
    fn bf16_attention_is_the_formula_on_rounded_operands() {
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16 (the bf16 mode's only target)"
        );
        let dev = Device::Cpu;
        let round = |v: f32| f32::from_bits((to_bf16(v) as u32) << 16) as f64;
        for (batch, n, heads, d) in SHAPES {
            let qkv = random_qkv(batch, n, heads, d);
            let data: Vec<f32> = qkv.flatten_all().unwrap().to_vec1().unwrap();
            let got = attention(&data, batch, n, heads, d, Products::Bf16);
            let x = Heads {
                qkv: &data,
                n,
                heads,
                d,
            };
            let mut worst = 0f64;
            for b in 0..batch {
                for h in 0..heads {
                    for i in 0..n {
                        let q = x.row(b, h, 0, i);
                        let s: Vec<f64> = (0..n)
                            .map(|j| {
                                let k = x.row(b, h, 1, j);
                                (0..d).map(|t| round(q[t]) * round(k[t])).sum()
                            })
                            .collect();
                        let max = s.iter().cloned().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = s.iter().map(|s| (s - max).exp()).collect();
                        let sum: f64 = e.iter().sum();
                        for t in 0..d {
                            let want: f64 = (0..n)
                                .map(|j| round(e[j] as f32) * round(x.row(b, h, 2, j)[t]))
                                .sum::<f64>()
                                / sum;
                            let have = got[(b * n + i) * heads * d + h * d + t] as f64;
                            worst = worst.max((have - want).abs());
                        }
                    }
                }
            }
            // Measured 1e-7 to 7e-5 on these inputs: the scores' f32 sums (against f64 here)
            // can tip a probability onto the neighbouring bf16 value, 2⁻⁸ of it.
            assert!(worst < 2e-4, "{batch}x{n}x{heads}x{d}: {worst}");
            let want = plain(&qkv, batch, n, heads, d);
            let got = Tensor::from_vec(got, want.dims(), &dev).unwrap();
            let diff = max_abs_diff(&got, &want);
            eprintln!(
                "{batch}x{n}x{heads}x{d}: {worst:.2e} from the rounded formula, {diff:.2e} from f32"
            );
            assert!(
                diff < 1e-2 && diff > 1e-5,
                "{batch}x{n}x{heads}x{d}: {diff}"
            );
        }
    }
}
