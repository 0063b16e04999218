//! The two-way transformer's cross attentions between a prompt's handful of tokens (about ten)
//! and its 4096 image tokens, with the image-side projections folded into the token side.
//!
//! Every projection in an attention layer is linear, and on the image side there are 4096 rows
//! against ten on the token side. So instead of projecting the image tokens (a 4096 x 256 → 128
//! GEMM per projection), the projection weights are multiplied into the few token vectors, and
//! the image tokens meet them in one GEMM of width heads x tokens (8 x 10 = 80):
//!
//! - token-to-image, scores: `q_t · (W_k x_i + b_k) = (W_kᵀ q_t) · x_i + const`, and the
//!   constant (per token and head) cancels in the softmax over the image tokens;
//! - token-to-image, context: `Σ_i p_ti (W_v x_i + b_v) = W_v (Σ_i p_ti x_i) + b_v`, since the
//!   weights p sum to one: the weighted sum of the raw image tokens is projected afterwards;
//! - image-to-token, scores: `(W_q x_i + b_q) · k_t = x_i · (W_qᵀ k_t) + b_q · k_t`;
//! - image-to-token, output projection: `W_o [Σ_t p_it v_t]_heads = Σ_(h,t) p_iht (W_o,h v_t)`, so
//!   the output is the score matrix times 80 precomputed rows, added onto the residual.
//!
//! Per prompt and layer that is four GEMMs of 4096 x 256 x 80 instead of four of 4096 x 256 x
//! 128, and no per-head copies of [4096, 128] maps. The sums run in another order than the
//! reference's, which changes f32 rounding only; `tests/segmenters.rs` holds the decoder to the
//! reference's outputs, and the unit test below compares against the projections computed first.
//!
//! In the reduced-precision mode ([`FoldedAttention::pack_bf16`]) the products against the
//! folded token rows (the scores, and image-to-token's output) and token-to-image's weighted
//! sum of the image tokens take bf16 operands with f32 sums.

use std::mem::MaybeUninit;

use candle_core::{DType, Layout, Result, Storage, Tensor};
use candle_nn::Linear;
use rayon::prelude::*;

use super::ops::{SendPtr, contiguous_f32};
use crate::encoders::bf16::{self, PackedBf16};
use crate::encoders::kernels::{
    exp_approx, gemm_f32, layer_norm_rows_in_place, transpose, widest_simd,
};

/// An attention layer's weights as f32 rows, for the folded forms.
#[derive(Debug, Clone)]
pub(crate) struct FoldedAttention {
    heads: usize,
    /// Model width C and internal width I.
    dim: usize,
    internal: usize,
    /// [I, C] each.
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    bq: Vec<f32>,
    bv: Vec<f32>,
    /// The output projection transposed, [I, C].
    wo_t: Vec<f32>,
    bo: Vec<f32>,
    /// Products against the folded token rows in bf16 (the reduced-precision mode).
    bf16: bool,
}

/// The right-hand side `B` [k, n] of a per-prompt product `out[rows, n] += x[rows, k] · B`,
/// built once per prompt from the folded token rows and used by every block of image rows.
enum Rhs {
    /// f32, element (kk, j) at `data[kk · strides.0 + j · strides.1]`.
    F32 {
        data: Vec<f32>,
        k: usize,
        n: usize,
        strides: (usize, usize),
    },
    /// Packed bf16 (the x rows are rounded to bf16 as they come).
    Bf16(PackedBf16),
}

impl Rhs {
    /// `B` given transposed: `bt` [n, k] row-major.
    fn transposed(bt: Vec<f32>, n: usize, k: usize, bf16: bool) -> Self {
        if bf16 {
            return Rhs::Bf16(PackedBf16::pack(&bt, n, k));
        }
        let strides = (1, k);
        Rhs::F32 {
            data: bt,
            k,
            n,
            strides,
        }
    }

    /// `B` [k, n] row-major.
    fn rows(b: Vec<f32>, k: usize, n: usize, bf16: bool) -> Self {
        if bf16 {
            return Rhs::Bf16(PackedBf16::pack_columns(&b, n, k, n));
        }
        let strides = (n, 1);
        Rhs::F32 {
            data: b,
            k,
            n,
            strides,
        }
    }

    /// `out[rows, n] += (x + y)[rows, k] · B` on the calling thread: bf16 rounds the sums as
    /// it makes them, f32 adds them into `scratch.sum` first.
    fn multiply_acc_sum(
        &self,
        (x, y): (&[f32], &[f32]),
        rows: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        match self {
            Rhs::Bf16(packed) => packed.matmul_acc_sum_serial(x, y, rows, out, &mut scratch.bf16),
            Rhs::F32 { .. } => {
                scratch.sum.clear();
                scratch.sum.resize(x.len(), 0.0);
                add(&mut scratch.sum, x, y);
                self.multiply_acc(&scratch.sum, rows, out, &mut scratch.bf16);
            }
        }
    }

    /// `out[rows, n] += a[rows, k] · B` on the calling thread, for activations already in
    /// bf16 ([`Bf16Tokens`], which exist in the bf16 mode only).
    fn multiply_acc_rounded(&self, a: &[u16], rows: usize, out: &mut [f32]) {
        match self {
            Rhs::Bf16(packed) => packed.matmul_acc_bf16(a, rows, out),
            Rhs::F32 { .. } => unreachable!("bf16 activations against f32 weights"),
        }
    }

    /// `out[rows, n] += x[rows, k] · B` on the calling thread.
    fn multiply_acc(&self, x: &[f32], rows: usize, out: &mut [f32], scratch: &mut Vec<u16>) {
        match self {
            Rhs::F32 {
                data,
                k,
                n,
                strides,
            } => gemm_f32(
                (rows, *n, *k),
                out,
                (*n, 1),
                true,
                x,
                (*k, 1),
                data,
                *strides,
                gemm::Parallelism::None,
            ),
            Rhs::Bf16(packed) => packed.matmul_acc_serial(x, rows, out, scratch),
        }
    }
}

/// Per-thread buffers of the blocks of image rows, reused from block to block (fresh ones
/// per block were zeroed every time, a tenth of a decoder's time).
#[derive(Default)]
struct Scratch {
    /// Activations rounded to bf16.
    bf16: Vec<u16>,
    /// Image tokens plus positional encoding, in f32.
    sum: Vec<f32>,
    /// Scores [rows, heads·m], and their transpose.
    scores: Vec<f32>,
    transposed: Vec<f32>,
}

impl Scratch {
    /// `buffer` as `len` zeros.
    fn zeros(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
        buffer.clear();
        buffer.resize(len, 0.0);
        buffer
    }
}

/// A batch's image tokens in the forms the bf16 attentions read, made by the image-to-token
/// attention that produced the tokens while each block of rows was in its cache, and read by
/// every attention on them after it. Without them each of those attentions rounded the tokens
/// plus positional encoding to bf16 again, and token-to-image packed the tokens again, in
/// passes of their own over 4 MB a prompt.
pub(crate) struct Bf16Tokens {
    /// (tokens + positional encoding) rounded to bf16, [B, N, C]: the scores' left-hand side.
    plus_pe: Vec<u16>,
    /// The tokens as the right-hand side of token-to-image's weighted sum, per prompt and block
    /// of [`ROWS`] rows.
    packed: Vec<PackedBf16>,
    /// The batch's shape [B, N, C].
    shape: (usize, usize, usize),
}

impl Bf16Tokens {
    /// Whether these are the forms of tokens shaped [b, n, c].
    fn fit(&self, b: usize, n: usize, c: usize) -> bool {
        self.shape == (b, n, c)
    }

    /// Prompt `p`'s rounded tokens plus positional encoding for block `block`.
    fn plus_pe(&self, p: usize, block: usize) -> &[u16] {
        let (_, n, c) = self.shape;
        let start = block * ROWS;
        &self.plus_pe[(p * n + start) * c..][..ROWS.min(n - start) * c]
    }
}

/// Where the image-to-token attention takes its image-side queries from.
pub(crate) enum ImageQueries<'a> {
    /// The image tokens (the residual) plus this positional encoding [1, N, C], projected here
    /// (folded).
    PlusPe(&'a Tensor),
    /// As `PlusPe`, from the residual's bf16 forms (which hold the sum already rounded).
    Rounded(&'a Bf16Tokens),
    /// Queries already projected, bias included [Bk, N, I] (the first layer's, cached with the
    /// frame's embedding).
    Projected(&'a Tensor),
}

fn f32s(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

fn cpu_slice<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => contiguous_f32(cpu, layout),
        _ => candle_core::bail!("folded attention: expected a CPU tensor"),
    }
}

/// Index of prompt `p`'s map in a tensor of `bk` maps (1: shared by the batch).
fn map_of(p: usize, bk: usize) -> usize {
    if bk == 1 { 0 } else { p }
}

impl FoldedAttention {
    /// `None` unless the weights are f32 on the CPU (other dtypes and devices keep the plain
    /// attention).
    pub(crate) fn new(
        q: &Linear,
        k: &Linear,
        v: &Linear,
        o: &Linear,
        heads: usize,
    ) -> Result<Option<Self>> {
        let w = q.weight();
        if w.dtype() != DType::F32 || !w.device().is_cpu() {
            return Ok(None);
        }
        let (internal, dim) = w.dims2()?;
        let bias = |l: &Linear| -> Result<Vec<f32>> {
            match l.bias() {
                Some(b) => f32s(b),
                None => Ok(vec![0.0; l.weight().dim(0)?]),
            }
        };
        Ok(Some(Self {
            heads,
            dim,
            internal,
            wq: f32s(q.weight())?,
            wk: f32s(k.weight())?,
            wv: f32s(v.weight())?,
            bq: bias(q)?,
            bv: bias(v)?,
            wo_t: f32s(&o.weight().t()?.contiguous()?)?,
            bo: bias(o)?,
            bf16: false,
        }))
    }

    /// Switches the products against the folded token rows to bf16 where the CPU has AVX-512
    /// BF16 (a no-op elsewhere).
    pub(crate) fn pack_bf16(&mut self) {
        self.bf16 = bf16::available();
    }

    fn head_dim(&self) -> usize {
        self.internal / self.heads
    }

    /// Rows (h, t) = Σ_{j in head h} scale · tok[t, j] · w[j, :], for `tok` [m, I] and `w`
    /// [I, C]: the weights folded into the token vectors, [heads·m, C].
    fn fold_rows(&self, tok: &[f32], m: usize, w: &[f32], scale: f32) -> Vec<f32> {
        let (c, i, d) = (self.dim, self.internal, self.head_dim());
        let mut out = vec![0f32; self.heads * m * c];
        for h in 0..self.heads {
            for t in 0..m {
                let row = &mut out[(h * m + t) * c..][..c];
                for j in h * d..(h + 1) * d {
                    axpy(row, scale * tok[t * i + j], &w[j * c..][..c]);
                }
            }
        }
        out
    }

    /// Token-to-image attention. `q` [B, m, I]: the tokens' projected queries (bias included);
    /// `image` [Bk, N, C]: image tokens (Bk = B or 1), keyed by image + `pe` [1, N, C].
    /// Returns the context before the output projection, [B, m, I].
    ///
    /// Blocks of image rows run in parallel, each with its own column maxima (an online
    /// softmax): a block's scores stay in cache, and `image + pe` is never materialised.
    /// `rounded`: the image tokens' bf16 forms, read instead of the tokens where given (the bf16
    /// mode, per-prompt tokens).
    pub(crate) fn tokens_to_image(
        &self,
        q: &Tensor,
        image: &Tensor,
        pe: &Tensor,
        rounded: Option<&Bf16Tokens>,
    ) -> Result<Tensor> {
        let (b, m, i) = q.dims3()?;
        let (bk, n, c) = image.dims3()?;
        if i != self.internal || c != self.dim || !(bk == 1 || bk == b) || pe.dims3()? != (1, n, c)
        {
            candle_core::bail!(
                "token-to-image attention: q {:?}, image {:?}, pe {:?}",
                q.dims(),
                image.dims(),
                pe.dims()
            );
        }
        let (q, image, pe) = (q.contiguous()?, image.contiguous()?, pe.contiguous()?);
        let (qs, ql) = q.storage_and_layout();
        let (xs, xl) = image.storage_and_layout();
        let (ps, pl) = pe.storage_and_layout();
        let (qs, xs, ps) = (
            cpu_slice(&qs, ql)?,
            cpu_slice(&xs, xl)?,
            cpu_slice(&ps, pl)?,
        );
        let (d, w) = (self.head_dim(), self.heads * m);
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0f32; b * m * i];
        // Prompts in parallel as well as their blocks: each prompt's serial steps (folding the
        // weights into its tokens, combining its blocks) then overlap with other prompts' work.
        out.par_chunks_exact_mut(m * i)
            .enumerate()
            .for_each(|(p, ctx)| {
                let tok = &qs[p * m * i..][..m * i];
                let x = &xs[map_of(p, bk) * n * c..][..n * c];
                // Scores = (x + pe) · (W_kᵀ q)ᵀ; b_k's share is constant per column and cancels.
                let a = Rhs::transposed(self.fold_rows(tok, m, &self.wk, scale), w, c, self.bf16);
                // Per block: column maxima, exp-sums and z = Σ_i exp(s_i − max) x_i [heads·m, C].
                if let Some(forms) = rounded.filter(|f| self.bf16 && bk == b && f.fit(b, n, c)) {
                    let per_prompt = n.div_ceil(ROWS);
                    let blocks: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..per_prompt)
                        .into_par_iter()
                        .map_init(Scratch::default, |scratch, block| {
                            let lhs = forms.plus_pe(p, block);
                            let rows = lhs.len() / c;
                            let mut s = std::mem::take(&mut scratch.scores);
                            Scratch::zeros(&mut s, rows * w);
                            a.multiply_acc_rounded(lhs, rows, &mut s);
                            let x = &forms.packed[p * per_prompt + block];
                            let out = bf16_block_context(&s, rows, x, scratch);
                            scratch.scores = s;
                            out
                        })
                        .collect();
                    self.finish_context(&blocks, m, ctx);
                    return;
                }
                let blocks: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = x
                    .par_chunks(ROWS * c)
                    .zip(ps.par_chunks(ROWS * c))
                    .map_init(Scratch::default, |scratch, (xb, pb)| {
                        let rows = xb.len() / c;
                        let mut s = std::mem::take(&mut scratch.scores);
                        Scratch::zeros(&mut s, rows * w);
                        a.multiply_acc_sum((xb, pb), rows, &mut s, scratch);
                        let out = if self.bf16 {
                            let x = PackedBf16::pack_columns(xb, c, rows, c);
                            bf16_block_context(&s, rows, &x, scratch)
                        } else {
                            let mut max = vec![0f32; w];
                            let mut sums = vec![0f32; w];
                            let mut z = vec![0f32; w * c];
                            column_softmax_unnormalised(&mut s, &mut max, &mut sums);
                            gemm_f32(
                                (w, c, rows),
                                &mut z,
                                (c, 1),
                                false,
                                &s,
                                (1, w),
                                xb,
                                (c, 1),
                                gemm::Parallelism::None,
                            );
                            (max, sums, z)
                        };
                        scratch.scores = s;
                        out
                    })
                    .collect();
                self.finish_context(&blocks, m, ctx);
            });
        Tensor::from_vec(out, (b, m, i), q.device())
    }

    /// Token-to-image's context for one prompt's `m` tokens from its blocks' (column maxima,
    /// exp-sums, z): the blocks brought to the common maxima and added up, then W_v per head,
    /// normalised by the sums, into `ctx` [m, I].
    fn finish_context(&self, blocks: &[(Vec<f32>, Vec<f32>, Vec<f32>)], m: usize, ctx: &mut [f32]) {
        let (c, i, d, w) = (self.dim, self.internal, self.head_dim(), self.heads * m);
        let mut max = vec![f32::NEG_INFINITY; w];
        for (m_b, _, _) in blocks {
            for (m, &v) in max.iter_mut().zip(m_b) {
                *m = m.max(v);
            }
        }
        let mut sums = vec![0f32; w];
        let mut z = vec![0f32; w * c];
        for (m_b, s_b, z_b) in blocks {
            for col in 0..w {
                let f = (m_b[col] - max[col]).exp();
                sums[col] += f * s_b[col];
                axpy(&mut z[col * c..][..c], f, &z_b[col * c..][..c]);
            }
        }
        for h in 0..self.heads {
            for t in 0..m {
                let zr = &z[(h * m + t) * c..][..c];
                let inv = 1.0 / sums[h * m + t];
                for j in h * d..(h + 1) * d {
                    ctx[t * i + j] = inv * dot(zr, &self.wv[j * c..][..c]) + self.bv[j];
                }
            }
        }
    }

    /// Image-to-token attention with its output projection, added onto `residual` [Bk, N, C]
    /// (Bk = B or 1) and then normalised by `norm` (weight, bias, eps). `k`, `v` [B, m, I]: the
    /// tokens' projected keys and values (biases included). Returns [B, N, C] and, where
    /// `forms_pe` gives the positional encoding [1, N, C] and the mode is bf16, the result's
    /// [`Bf16Tokens`] for the attentions after this one.
    ///
    /// Blocks of image rows run in parallel: scores, softmax, output and LayerNorm of a block
    /// happen while it is in cache, and so do the bf16 forms.
    pub(crate) fn image_to_tokens(
        &self,
        queries: ImageQueries<'_>,
        k: &Tensor,
        v: &Tensor,
        residual: &Tensor,
        norm: (&[f32], &[f32], f32),
        forms_pe: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Bf16Tokens>)> {
        let (b, m, i) = k.dims3()?;
        let (bk, n, c) = residual.dims3()?;
        // The image-side queries: a tensor (the positional encoding, or projected queries),
        // or the residual's bf16 forms.
        let (queries, projected, rounded) = match queries {
            ImageQueries::PlusPe(t) => (Some(t), false, None),
            ImageQueries::Projected(t) => (Some(t), true, None),
            ImageQueries::Rounded(f) => (None, false, Some(f)),
        };
        let fits = match (queries, rounded) {
            (Some(t), _) => {
                let (bq, nq, width) = t.dims3()?;
                nq == n
                    && if projected {
                        (bq == 1 || bq == b) && width == self.internal
                    } else {
                        bq == 1 && width == self.dim
                    }
            }
            (None, Some(f)) => self.bf16 && bk == b && f.fit(b, n, c),
            (None, None) => false,
        };
        let pe_fits = forms_pe.is_none_or(|pe| pe.dims3().is_ok_and(|d| d == (1, n, c)));
        if !fits
            || !pe_fits
            || i != self.internal
            || c != self.dim
            || v.dims3()? != (b, m, i)
            || !(bk == 1 || bk == b)
            || norm.0.len() != c
            || norm.1.len() != c
        {
            candle_core::bail!(
                "image-to-token attention: queries {:?}, k {:?}, v {:?}, residual {:?}",
                queries.map(|t| t.dims().to_vec()),
                k.dims(),
                v.dims(),
                residual.dims()
            );
        }
        let queries = queries.map(|t| t.contiguous()).transpose()?;
        let forms_pe = forms_pe
            .filter(|_| self.bf16)
            .map(|t| t.contiguous())
            .transpose()?;
        let (k, v, residual) = (k.contiguous()?, v.contiguous()?, residual.contiguous()?);
        let q_storage = queries.as_ref().map(|t| t.storage_and_layout());
        let qs: &[f32] = match &q_storage {
            Some((st, l)) => cpu_slice(st, l)?,
            None => &[],
        };
        let bq = match &queries {
            Some(t) => t.dim(0)?,
            None => b,
        };
        let pe_storage = forms_pe.as_ref().map(|t| t.storage_and_layout());
        let pes: Option<&[f32]> = match &pe_storage {
            Some((st, l)) => Some(cpu_slice(st, l)?),
            None => None,
        };
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (rs, rl) = residual.storage_and_layout();
        let (ks, vs, rs) = (
            cpu_slice(&ks, kl)?,
            cpu_slice(&vs, vl)?,
            cpu_slice(&rs, rl)?,
        );
        let (d, w) = (self.head_dim(), self.heads * m);
        let scale = 1.0 / (d as f32).sqrt();
        // Written block by block, each value once (by `add_bias_rows_into` first): the
        // buffer is not zeroed beforehand, a pass of its own over 4 MB a prompt.
        let mut out: Vec<f32> = Vec::with_capacity(b * n * c);
        // The bf16 forms of the output, the same way.
        let mut plus_pe: Vec<u16> = Vec::with_capacity(if pes.is_some() { b * n * c } else { 0 });
        let plus_pe_dst = SendPtr(plus_pe.as_mut_ptr());
        // Prompts in parallel as well as their blocks (see `tokens_to_image`).
        let packed: Vec<Vec<PackedBf16>> = out.spare_capacity_mut()[..b * n * c]
            .par_chunks_exact_mut(n * c)
            .enumerate()
            .map(|(p, dst)| {
                let kt = &ks[p * m * i..][..m * i];
                let vt = &vs[p * m * i..][..m * i];
                let res = &rs[map_of(p, bk) * n * c..][..n * c];
                // The score matrix's right-hand side and a bias per column.
                let (rhs, bias) = if projected {
                    // q [N, I] · K [I, heads·m], K block-diagonal: head h's columns take only
                    // head h's rows.
                    let mut kbd = vec![0f32; i * w];
                    for h in 0..self.heads {
                        for t in 0..m {
                            for j in h * d..(h + 1) * d {
                                kbd[j * w + h * m + t] = scale * kt[t * i + j];
                            }
                        }
                    }
                    (Rhs::rows(kbd, i, w, self.bf16), vec![0f32; w])
                } else {
                    // (x + pe) · (W_qᵀ k)ᵀ + b_q · k, against the folded rows [heads·m, C].
                    let a = self.fold_rows(kt, m, &self.wq, scale);
                    let a = Rhs::transposed(a, w, c, self.bf16);
                    let mut bias = vec![0f32; w];
                    for h in 0..self.heads {
                        for t in 0..m {
                            let j = h * d..(h + 1) * d;
                            bias[h * m + t] = scale * dot(&self.bq[j.clone()], &kt[t * i..][j]);
                        }
                    }
                    (a, bias)
                };
                let u = Rhs::rows(self.fold_rows(vt, m, &self.wo_t, 1.0), w, c, self.bf16);
                let (width, q_image) = match (projected, rounded) {
                    (true, _) => (i, &qs[map_of(p, bq) * n * i..][..n * i]),
                    (false, None) => (c, &qs[..n * c]),
                    (false, Some(_)) => (c, &[][..]),
                };
                let blocks: Vec<Option<PackedBf16>> = dst
                    .par_chunks_mut(ROWS * c)
                    .enumerate()
                    .map_init(Scratch::default, |scratch, (block, o)| {
                        let rows = o.len() / c;
                        let r = &res[block * ROWS * c..][..rows * c];
                        let mut s = std::mem::take(&mut scratch.scores);
                        s.clear();
                        for _ in 0..rows {
                            s.extend_from_slice(&bias);
                        }
                        match rounded {
                            Some(f) => rhs.multiply_acc_rounded(f.plus_pe(p, block), rows, &mut s),
                            None => {
                                let qb = &q_image[block * ROWS * width..][..rows * width];
                                if projected {
                                    rhs.multiply_acc(qb, rows, &mut s, &mut scratch.bf16);
                                } else {
                                    // qb is the positional encoding: the queries are residual
                                    // + pe.
                                    rhs.multiply_acc_sum((r, qb), rows, &mut s, scratch);
                                }
                            }
                        }
                        group_softmax(&mut s, m, &mut vec![0f32; w]);
                        // residual + b_o + Σ_(h,t) p · (W_o,h v_t), then the LayerNorm, in the
                        // output block.
                        let o = add_bias_rows_into(o, r, &self.bo);
                        u.multiply_acc(&s, rows, o, &mut scratch.bf16);
                        layer_norm_rows_in_place(o, norm.0, norm.1, norm.2);
                        scratch.scores = s;
                        // The bf16 forms, from the block while it is in cache.
                        pes.map(|pes| {
                            let at = (p * n + block * ROWS) * c;
                            // SAFETY: this block alone writes values at..at + rows·c of the
                            // b·n·c that `plus_pe` holds.
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(plus_pe_dst.get().add(at), rows * c)
                            };
                            bf16::round_sum_to_bf16(o, &pes[block * ROWS * c..][..rows * c], dst);
                            PackedBf16::pack_columns(o, c, rows, c)
                        })
                    })
                    .collect();
                blocks.into_iter().flatten().collect()
            })
            .collect();
        let packed: Vec<PackedBf16> = packed.into_iter().flatten().collect();
        // SAFETY: every prompt's map was written in full, block by block
        // (`add_bias_rows_into` writes each block's every value).
        unsafe { out.set_len(b * n * c) };
        let forms = pes.map(|_| {
            // SAFETY: with `pes`, every block of every prompt wrote its rows of `plus_pe`.
            unsafe { plus_pe.set_len(b * n * c) };
            Bf16Tokens {
                plus_pe,
                packed,
                shape: (b, n, c),
            }
        });
        Ok((Tensor::from_vec(out, (b, n, c), k.device())?, forms))
    }
}

/// One block of token-to-image in bf16: from the block's scores `s` [rows, w] and its image
/// tokens `x` packed as a right-hand side (C outputs over `rows` inputs), the column maxima,
/// the exp-sums and z [w, C] = exp(s − max)ᵀ · x. Transposed, each column of scores is a row,
/// whose softmax numerators go straight into the bf16 left-hand side.
fn bf16_block_context(
    s: &[f32],
    rows: usize,
    x: &PackedBf16,
    scratch: &mut Scratch,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (w, c) = (s.len() / rows, x.out_features());
    let (mut max, mut sums, mut z) = (vec![0f32; w], vec![0f32; w], vec![0f32; w * c]);
    let st = bf16::reuse(&mut scratch.transposed, w * rows);
    transpose(s, rows, w, st);
    let kp = x.padded_k();
    let lhs = bf16::reuse(&mut scratch.bf16, w * kp);
    for (col, (src, dst)) in st
        .chunks_exact(rows)
        .zip(lhs.chunks_exact_mut(kp))
        .enumerate()
    {
        (max[col], sums[col]) = bf16::exp_shifted_row_to_bf16(src, dst);
        dst[rows..].fill(0);
    }
    x.matmul_acc_bf16(lhs, w, &mut z);
    (max, sums, z)
}

/// Image rows per parallel block.
const ROWS: usize = 256;

widest_simd! {
    /// `y += a · x`.
    fn axpy(y: &mut [f32], a: f32, x: &[f32]) => axpy_generic
}

#[inline(always)]
fn axpy_generic(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

widest_simd! {
    /// `Σ a·b`.
    fn dot(a: &[f32], b: &[f32]) -> f32 => dot_generic
}

/// Sixteen running sums, one per lane, so that the loop vectorises (a single f32 sum is a
/// chain the compiler must keep in order).
#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut lanes = [0f32; 16];
    for (ca, cb) in a[..n].chunks_exact(16).zip(b[..n].chunks_exact(16)) {
        for ((l, x), y) in lanes.iter_mut().zip(ca).zip(cb) {
            *l += x * y;
        }
    }
    let whole = n / 16 * 16;
    let tail: f32 = a[whole..n]
        .iter()
        .zip(&b[whole..n])
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

widest_simd! {
    /// Softmax down each column of the row-major `s` (`sums.len()` columns), left
    /// unnormalised: `max` gets the column maxima, `s` becomes exp(s − max) and `sums` the
    /// column sums.
    fn column_softmax_unnormalised(s: &mut [f32], max: &mut [f32], sums: &mut [f32])
        => column_softmax_generic
}

#[inline(always)]
fn column_softmax_generic(s: &mut [f32], max: &mut [f32], sums: &mut [f32]) {
    let w = sums.len();
    max.fill(f32::NEG_INFINITY);
    for row in s.chunks_exact(w) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = if v > *m { v } else { *m };
        }
    }
    sums.fill(0.0);
    for row in s.chunks_exact_mut(w) {
        for ((v, &m), sum) in row.iter_mut().zip(&*max).zip(sums.iter_mut()) {
            *v = exp_approx(*v - m);
            *sum += *v;
        }
    }
}

widest_simd! {
    /// `out = a + b`, element by element.
    fn add(out: &mut [f32], a: &[f32], b: &[f32]) => add_generic
}

#[inline(always)]
fn add_generic(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

widest_simd! {
    /// Softmax over each run of `m` consecutive values (one head's scores of one image token),
    /// for rows of `shift.len()` values (`shift` is scratch).
    fn group_softmax(s: &mut [f32], m: usize, shift: &mut [f32]) => group_softmax_generic
}

/// The exponentials, the bulk of the work, run over whole rows so that they vectorise; only
/// the maxima and sums go group by group.
#[inline(always)]
fn group_softmax_generic(s: &mut [f32], m: usize, shift: &mut [f32]) {
    let w = shift.len();
    for row in s.chunks_exact_mut(w) {
        for (g, sh) in row.chunks_exact(m).zip(shift.chunks_exact_mut(m)) {
            let max = g.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            sh.fill(max);
        }
        for (v, &sh) in row.iter_mut().zip(&*shift) {
            *v = exp_approx(*v - sh);
        }
        for g in row.chunks_exact_mut(m) {
            let inv = 1.0 / g.iter().sum::<f32>();
            g.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// `out[r] = residual[r] + bias` for consecutive rows of `bias.len()` values, into memory not
/// yet written; returns it, now all written.
fn add_bias_rows_into<'a>(
    out: &'a mut [MaybeUninit<f32>],
    residual: &[f32],
    bias: &[f32],
) -> &'a mut [f32] {
    assert!(
        out.len() == residual.len() && residual.len().is_multiple_of(bias.len()),
        "an output value per residual value, in whole rows"
    );
    add_bias_rows(out, residual, bias);
    // SAFETY: `add_bias_rows` wrote every value of `out` (same length as `residual`, whole
    // rows).
    unsafe { crate::encoders::kernels::assume_written(out) }
}

widest_simd! {
    fn add_bias_rows(out: &mut [MaybeUninit<f32>], residual: &[f32], bias: &[f32])
        => add_bias_rows_generic
}

#[inline(always)]
fn add_bias_rows_generic(out: &mut [MaybeUninit<f32>], residual: &[f32], bias: &[f32]) {
    for (o, r) in out
        .chunks_exact_mut(bias.len())
        .zip(residual.chunks_exact(bias.len()))
    {
        for ((o, r), b) in o.iter_mut().zip(r).zip(bias) {
            o.write(r + b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn linear(n_out: usize, n_in: usize) -> Linear {
        let w = Tensor::randn(0f32, 0.2, (n_out, n_in), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 0.5, n_out, &Device::Cpu).unwrap();
        Linear::new(w, Some(b))
    }

    /// Projections first, then per-head attention, as the reference computes it.
    fn plain(
        (q, k, v, o): (&Linear, &Linear, &Linear, &Linear),
        heads: usize,
        q_in: &Tensor,
        k_in: &Tensor,
        v_in: &Tensor,
    ) -> Tensor {
        use candle_core::Module;
        let sep = |x: Tensor| {
            let (b, n, c) = x.dims3().unwrap();
            x.reshape((b, n, heads, c / heads))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (qp, kp, vp) = (
            sep(q.forward(q_in).unwrap()),
            sep(k.forward(k_in).unwrap()),
            sep(v.forward(v_in).unwrap()),
        );
        let d = qp.dim(3).unwrap();
        let s = (qp.matmul(&kp.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
        let p = candle_nn::ops::softmax_last_dim(&s).unwrap();
        let ctx = p.matmul(&vp).unwrap().transpose(1, 2).unwrap();
        let (b, n, h, d) = ctx.dims4().unwrap();
        o.forward(&ctx.reshape((b, n, h * d)).unwrap()).unwrap()
    }

    #[test]
    fn folded_attentions_equal_projecting_first() {
        use candle_core::Module;
        // More image rows than one block, and a partial last block.
        let (c, i, heads, m, n, b) = (32, 16, 4, 7, 2 * ROWS + 44, 3);
        let (q, k, v, o) = (linear(i, c), linear(i, c), linear(i, c), linear(c, i));
        let folded = FoldedAttention::new(&q, &k, &v, &o, heads)
            .unwrap()
            .unwrap();
        let dev = &Device::Cpu;
        let tokens = Tensor::randn(0f32, 1.0, (b, m, c), dev).unwrap();
        let image = Tensor::randn(0f32, 1.0, (b, n, c), dev).unwrap();
        let pe = Tensor::randn(0f32, 1.0, (1, n, c), dev).unwrap();
        let image_pe = image.broadcast_add(&pe).unwrap();

        // Token-to-image, per-prompt image tokens and image tokens shared by the batch.
        for shared in [false, true] {
            let img = if shared {
                image.narrow(0, 0, 1).unwrap()
            } else {
                image.clone()
            };
            let ctx = folded
                .tokens_to_image(&q.forward(&tokens).unwrap(), &img, &pe, None)
                .unwrap();
            let ours = o.forward(&ctx).unwrap();
            let full = img.broadcast_as((b, n, c)).unwrap().contiguous().unwrap();
            let full_pe = full.broadcast_add(&pe).unwrap();
            let want = plain((&q, &k, &v, &o), heads, &tokens, &full_pe, &full);
            let diff = crate::segmenters::ops::max_abs_diff(&ours, &want);
            assert!(diff < 1e-4, "token-to-image (shared {shared}): {diff}");
        }

        // Image-to-token and the LayerNorm after it, queries from the image tokens and from
        // cached projections.
        let norm_w = Tensor::randn(1f32, 0.3, c, dev).unwrap();
        let norm_b = Tensor::randn(0f32, 0.3, c, dev).unwrap();
        let ln = candle_nn::LayerNorm::new(norm_w.clone(), norm_b.clone(), 1e-5);
        let (nw, nb) = (
            norm_w.to_vec1::<f32>().unwrap(),
            norm_b.to_vec1::<f32>().unwrap(),
        );
        let norm = (nw.as_slice(), nb.as_slice(), 1e-5);
        let kt = k.forward(&tokens).unwrap();
        let vt = v.forward(&tokens).unwrap();
        let shared = image.narrow(0, 0, 1).unwrap();
        let shared_pe = image_pe.narrow(0, 0, 1).unwrap();
        let want = ln
            .forward(
                &plain(
                    (&q, &k, &v, &o),
                    heads,
                    &shared_pe
                        .broadcast_as((b, n, c))
                        .unwrap()
                        .contiguous()
                        .unwrap(),
                    &tokens,
                    &tokens,
                )
                .broadcast_add(&shared)
                .unwrap(),
            )
            .unwrap();
        let from_tokens = folded
            .image_to_tokens(ImageQueries::PlusPe(&pe), &kt, &vt, &shared, norm, None)
            .unwrap()
            .0;
        let diff = crate::segmenters::ops::max_abs_diff(&from_tokens, &want);
        assert!(diff < 1e-4, "image-to-token from tokens: {diff}");
        let projected = q.forward(&shared_pe).unwrap();
        let from_projected = folded
            .image_to_tokens(
                ImageQueries::Projected(&projected),
                &kt,
                &vt,
                &shared,
                norm,
                None,
            )
            .unwrap()
            .0;
        let diff = crate::segmenters::ops::max_abs_diff(&from_projected, &want);
        assert!(diff < 1e-4, "image-to-token from projected queries: {diff}");

        // Shapes that do not fit are refused.
        assert!(folded.tokens_to_image(&tokens, &image, &pe, None).is_err());
        assert!(
            folded
                .image_to_tokens(ImageQueries::PlusPe(&image), &kt, &vt, &image, norm, None)
                .is_err()
        );
    }

    /// The bf16 mode: the same attentions with the products against the folded rows on bf16
    /// operands, within that rounding of the f32 forms (which the test above ties to the
    /// reference's order of operations).
    #[test]
    fn bf16_folded_attentions_stay_within_bf16_rounding() {
        use candle_core::Module;
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        let (c, i, heads, m, n, b) = (64, 32, 4, 7, ROWS + 44, 2);
        let (q, k, v, o) = (linear(i, c), linear(i, c), linear(i, c), linear(c, i));
        let f32_form = FoldedAttention::new(&q, &k, &v, &o, heads)
            .unwrap()
            .unwrap();
        let mut bf16_form = f32_form.clone();
        bf16_form.pack_bf16();
        let dev = &Device::Cpu;
        let tokens = Tensor::randn(0f32, 1.0, (b, m, c), dev).unwrap();
        let image = Tensor::randn(0f32, 1.0, (b, n, c), dev).unwrap();
        let pe = Tensor::randn(0f32, 1.0, (1, n, c), dev).unwrap();
        let qt = q.forward(&tokens).unwrap();
        let (kt, vt) = (k.forward(&tokens).unwrap(), v.forward(&tokens).unwrap());
        let ones = vec![1f32; c];
        let zeros = vec![0f32; c];
        let norm = (ones.as_slice(), zeros.as_slice(), 1e-5);
        let projected = q.forward(&image.broadcast_add(&pe).unwrap()).unwrap();
        let run = |f: &FoldedAttention| {
            [
                f.tokens_to_image(&qt, &image, &pe, None).unwrap(),
                f.image_to_tokens(ImageQueries::PlusPe(&pe), &kt, &vt, &image, norm, None)
                    .unwrap()
                    .0,
                f.image_to_tokens(
                    ImageQueries::Projected(&projected),
                    &kt,
                    &vt,
                    &image,
                    norm,
                    None,
                )
                .unwrap()
                .0,
            ]
        };
        let names = [
            "token-to-image",
            "image-to-token",
            "image-to-token (projected)",
        ];
        for ((name, want), got) in names.iter().zip(run(&f32_form)).zip(run(&bf16_form)) {
            let what = format!("bf16 {name}");
            crate::segmenters::ops::assert_within_rounding(&got, &want, 0.02, &what);
        }
    }

    /// The bf16 forms an image-to-token attention makes of its output are what the attentions
    /// after it would compute from the output themselves: reading them gives the same values.
    #[test]
    fn bf16_forms_give_what_the_tokens_give() {
        use candle_core::Module;
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        // A partial last block.
        let (c, i, heads, m, n, b) = (64, 32, 4, 7, 2 * ROWS + 44, 2);
        let (q, k, v, o) = (linear(i, c), linear(i, c), linear(i, c), linear(c, i));
        let mut folded = FoldedAttention::new(&q, &k, &v, &o, heads)
            .unwrap()
            .unwrap();
        let f32_form = folded.clone();
        folded.pack_bf16();
        let dev = &Device::Cpu;
        let tokens = Tensor::randn(0f32, 1.0, (b, m, c), dev).unwrap();
        let image = Tensor::randn(0f32, 1.0, (b, n, c), dev).unwrap();
        let pe = Tensor::randn(0f32, 1.0, (1, n, c), dev).unwrap();
        let (qt, kt, vt) = (
            q.forward(&tokens).unwrap(),
            k.forward(&tokens).unwrap(),
            v.forward(&tokens).unwrap(),
        );
        let (ones, zeros) = (vec![1f32; c], vec![0f32; c]);
        let norm = (ones.as_slice(), zeros.as_slice(), 1e-5);
        let plus_pe = ImageQueries::PlusPe(&pe);
        let (keys, forms) = folded
            .image_to_tokens(plus_pe, &kt, &vt, &image, norm, Some(&pe))
            .unwrap();
        let forms = forms.expect("bf16 forms in the bf16 mode");
        // The f32 mode makes none.
        let none = f32_form
            .image_to_tokens(ImageQueries::PlusPe(&pe), &kt, &vt, &image, norm, Some(&pe))
            .unwrap()
            .1;
        assert!(none.is_none());
        let pairs = [
            (
                folded
                    .tokens_to_image(&qt, &keys, &pe, Some(&forms))
                    .unwrap(),
                folded.tokens_to_image(&qt, &keys, &pe, None).unwrap(),
            ),
            (
                folded
                    .image_to_tokens(ImageQueries::Rounded(&forms), &kt, &vt, &keys, norm, None)
                    .unwrap()
                    .0,
                folded
                    .image_to_tokens(ImageQueries::PlusPe(&pe), &kt, &vt, &keys, norm, None)
                    .unwrap()
                    .0,
            ),
        ];
        for (name, (from_forms, from_tokens)) in
            ["token-to-image", "image-to-token"].iter().zip(pairs)
        {
            let diff = crate::segmenters::ops::max_abs_diff(&from_forms, &from_tokens);
            assert_eq!(diff, 0.0, "{name}");
        }
        // Forms of another shape are not used.
        let other = folded.image_to_tokens(
            ImageQueries::Rounded(&forms),
            &kt,
            &vt,
            &keys.narrow(0, 0, 1).unwrap(),
            norm,
            None,
        );
        assert!(other.is_err());
    }
}
