//! Fused CPU kernels for the encoders' hot path, on contiguous `f32` tensors: candle's own ops
//! each make a pass over memory, several of them on one thread, and its matmul cannot add into
//! an existing result.
//!
//! - [`linear`]: `x·Wᵀ + b (+ residual)`, then optionally the activation, as one GEMM (the `gemm`
//!   crate candle itself uses) whose destination is pre-filled with the bias (and residual), and
//!   one parallel pass for the activation.
//! - [`attention`]: multi-head attention read straight from the fused `[rows, 3·C]` q/k/v
//!   projection and written straight into the `[rows, C]` context: per (batch, head), in
//!   parallel, `S = q·kᵀ`, a row softmax, `S·v`, with no permuted copies.
//!
//! Both return `None` when the inputs are not contiguous `f32` on the CPU; callers then use the
//! plain candle ops, which compute the same thing.

use candle_core::{CpuStorage, DType, Result, Storage, Tensor};
use rayon::prelude::*;

use super::config::Activation;

/// Runs `f` on the data of a contiguous `f32` CPU tensor.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 || !t.device().is_cpu() || !t.is_contiguous() {
        return None;
    }
    let (guard, layout) = t.storage_and_layout();
    match &*guard {
        Storage::Cpu(CpuStorage::F32(v)) => {
            let start = layout.start_offset();
            Some(f(&v[start..start + t.elem_count()]))
        }
        _ => None,
    }
}

fn parallelism() -> gemm::Parallelism {
    let n = candle_core::utils::get_num_threads();
    if n > 1 {
        gemm::Parallelism::Rayon(n)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` with explicit strides (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    // The extents the strides reach must lie inside the slices: checked here once, so the
    // unchecked accesses of the GEMM cannot leave them.
    let reach = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(
        reach(m, n, dst_rs, dst_cs) <= dst.len(),
        "gemm destination bounds"
    );
    assert!(reach(m, k, lhs_rs, lhs_cs) <= lhs.len(), "gemm lhs bounds");
    assert!(reach(k, n, rhs_rs, rhs_cs) <= rhs.len(), "gemm rhs bounds");
    // SAFETY: the three regions were bounds-checked above; `dst` is borrowed mutably and does
    // not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `act(x·Wᵀ + b + residual)` for `x` `[rows, k]`, `w` `[n, k]`, `b` `[n]`, `residual`
/// `[rows, n]`. `None` when an input is not contiguous `f32` on the CPU.
pub(crate) fn linear(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    residual: Option<&Tensor>,
    act: Option<Activation>,
) -> Option<Result<Tensor>> {
    let (rows, n) = (x.dim(0).ok()?, w.dim(0).ok()?);
    let out = linear_vec(x, w, b, residual, act)?;
    Some(Tensor::from_vec(out, (rows, n), x.device()))
}

/// As [`linear`], returning the row-major `[rows, n]` data.
pub(crate) fn linear_vec(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    residual: Option<&Tensor>,
    act: Option<Activation>,
) -> Option<Vec<f32>> {
    let (rows, k) = x.dims2().ok()?;
    let (n, k2) = w.dims2().ok()?;
    if k != k2 {
        return None;
    }
    let mut out = vec![0f32; rows * n];
    let mut accumulate = false;
    if let Some(r) = residual {
        if r.dims() != [rows, n] {
            return None;
        }
        with_f32(r, |r| out.copy_from_slice(r))?;
        accumulate = true;
    }
    if let Some(b) = b {
        if b.dims() != [n] {
            return None;
        }
        with_f32(b, |b| {
            out.par_chunks_mut(n).for_each(|row| {
                if accumulate {
                    row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
                } else {
                    row.copy_from_slice(b);
                }
            })
        })?;
        accumulate = true;
    }
    with_f32(x, |xs| {
        with_f32(w, |ws| {
            gemm_f32(
                (rows, n, k),
                &mut out,
                (n, 1),
                accumulate,
                xs,
                (k, 1),
                ws,
                (1, k),
                parallelism(),
            )
        })
    })??;
    if let Some(act) = act {
        let chunk = n.max(4096);
        out.par_chunks_mut(chunk).for_each(|c| match act {
            Activation::Gelu => c.iter_mut().for_each(|v| *v = gelu_erf(*v)),
            Activation::Silu => c.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
        });
    }
    Some(out)
}

/// Exact GELU, the same expression as candle's `gelu_erf` (libm's `erff`).
#[inline]
fn gelu_erf(v: f32) -> f32 {
    (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * v
}

/// Attention from the fused projection `qkv` (row-major `[batch·n, 3·C]`: q, k, v each
/// `[heads × d]` along the columns, q already scaled) → the context, row-major `[batch·n, C]`.
pub(crate) fn attention(qkv: &[f32], batch: usize, n: usize, heads: usize, d: usize) -> Vec<f32> {
    let c = heads * d;
    let three_c = 3 * c;
    assert_eq!(qkv.len(), batch * n * three_c, "qkv of the stated shape");
    let mut out = vec![0f32; batch * n * c];
    // Each (batch, head) job computes its context into a buffer of its own; the buffers are
    // scattered into the interleaved output afterwards.
    let jobs: Vec<(usize, usize)> = (0..batch)
        .flat_map(|b| (0..heads).map(move |h| (b, h)))
        .collect();
    let results: Vec<Vec<f32>> = jobs
        .par_iter()
        .map_init(
            || vec![0f32; n * n],
            |scores, &(b, h)| {
                let base = b * n * three_c;
                let q = &qkv[base + h * d..];
                let k = &qkv[base + c + h * d..];
                let v = &qkv[base + 2 * c + h * d..];
                // S[n×n] = q[n×d] · kᵀ[d×n]
                gemm_f32(
                    (n, n, d),
                    scores,
                    (n, 1),
                    false,
                    q,
                    (three_c, 1),
                    k,
                    (1, three_c),
                    gemm::Parallelism::None,
                );
                for row in scores.chunks_exact_mut(n) {
                    softmax_row(row);
                }
                let mut ctx = vec![0f32; n * d];
                gemm_f32(
                    (n, d, n),
                    &mut ctx,
                    (d, 1),
                    false,
                    scores,
                    (n, 1),
                    v,
                    (three_c, 1),
                    gemm::Parallelism::None,
                );
                ctx
            },
        )
        .collect();
    for (&(b, h), ctx) in jobs.iter().zip(&results) {
        for (i, row) in ctx.chunks_exact(d).enumerate() {
            let at = (b * n + i) * c + h * d;
            out[at..at + d].copy_from_slice(row);
        }
    }
    out
}

/// In-place softmax of one row.
fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}
