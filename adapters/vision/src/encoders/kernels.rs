//! Fused CPU kernels for the encoders' hot path, on contiguous `f32` tensors: candle's own ops
//! each make a pass over memory, several of them on one thread, and its matmul cannot add into
//! an existing result.
//!
//! - [`linear_vec`] / [`linear_packed`]: `x·Wᵀ + b (+ residual)`,
//!   then optionally the activation, as one GEMM (the `gemm` crate candle itself uses, or the
//!   packed f32 or bf16 kernel) whose destination is pre-filled with the bias (and residual),
//!   and one parallel activation pass.
//! - [`softmax_row`] / [`exp_shifted_row`], [`layer_norm`], exact GELU: the element-wise
//!   passes, vectorised for the widest unit the CPU has.
//!
//! The tensor-taking ones return `None` when the inputs are not contiguous `f32` on the CPU;
//! callers then use the plain candle ops, which compute the same thing. Attention is in
//! [`super::attention`].

use candle_core::{CpuStorage, DType, Result, Storage, Tensor};
use rayon::prelude::*;

use super::config::Activation;

/// Defines `fn $name(args)`, which runs `$generic` (an `#[inline(always)]` function written so
/// that it vectorises) compiled for the widest vector unit the CPU has: AVX-512F, else AVX2 with
/// FMA, else the baseline. The crate is built for baseline x86-64 (SSE2), so without this its
/// loops would not use the wider units.
macro_rules! widest_simd {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:path) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}
pub(crate) use widest_simd;

/// `values` as f32 once every one of them has been written: the one place where buffers that
/// are filled without being zeroed first (`Vec::spare_capacity_mut`) become plain slices.
///
/// # Safety
/// Every element of `values` must have been written.
pub(crate) unsafe fn assume_written(values: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: the caller wrote every element, and MaybeUninit<f32> has f32's layout.
    unsafe { &mut *(values as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

/// Runs `f` on the data of a contiguous `f32` CPU tensor.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
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

pub(crate) fn parallelism() -> gemm::Parallelism {
    let n = candle_core::utils::get_num_threads();
    if n > 1 {
        gemm::Parallelism::Rayon(n)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` with explicit strides (row stride, column stride).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32(
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
/// `[rows, n]`. `None` when an input is not contiguous `f32` on the CPU. (The encoder calls
/// [`linear_vec`] / [`linear_packed`]; this tensor-returning form is for tests.)
#[cfg(test)]
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
    let (mut out, accumulate) = prefilled(rows, n, b, residual)?;
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
    activate_in_place(&mut out, n, act);
    Some(out)
}

/// As [`linear_vec`] for a packed weight (f32 or bf16, see [`super::dense`]) with `n` outputs:
/// `matmul_acc(x, rows, out)` adds `x·Wᵀ` into the pre-filled output.
pub(crate) fn linear_packed(
    x: &Tensor,
    n: usize,
    b: Option<&Tensor>,
    residual: Option<&Tensor>,
    act: Option<Activation>,
    matmul_acc: impl FnOnce(&[f32], usize, &mut [f32]),
) -> Option<Vec<f32>> {
    let rows = x.dim(0).ok()?;
    let (mut out, _) = prefilled(rows, n, b, residual)?;
    with_f32(x, |xs| matmul_acc(xs, rows, &mut out))?;
    activate_in_place(&mut out, n, act);
    Some(out)
}

/// The output of a linear layer before its GEMM: `residual + b` (either may be absent; zeros
/// when both are), and whether it holds anything to accumulate onto.
fn prefilled(
    rows: usize,
    n: usize,
    b: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Option<(Vec<f32>, bool)> {
    if residual.is_some_and(|r| r.dims() != [rows, n]) || b.is_some_and(|b| b.dims() != [n]) {
        return None;
    }
    if n == 0 {
        return Some((Vec::new(), false));
    }
    // Each value is written once, from the residual and/or the bias (a zeroed buffer first
    // would be one more pass over outputs of tens of megabytes).
    let fill = |out: &mut [std::mem::MaybeUninit<f32>], r: Option<&[f32]>, b: Option<&[f32]>| {
        let zeros = vec![0f32; n];
        let b = b.unwrap_or(&zeros);
        match r {
            Some(r) => out
                .par_chunks_mut(n)
                .zip(r.par_chunks(n))
                .for_each(|(o, r)| {
                    o.iter_mut().zip(r).zip(b).for_each(|((o, r), b)| {
                        o.write(r + b);
                    })
                }),
            None => out.par_chunks_mut(n).for_each(|o| {
                o.iter_mut().zip(b).for_each(|(o, b)| {
                    o.write(*b);
                })
            }),
        }
    };
    let mut out: Vec<f32> = Vec::with_capacity(rows * n);
    let spare = &mut out.spare_capacity_mut()[..rows * n];
    match (residual, b) {
        (Some(r), Some(b)) => with_f32(r, |r| with_f32(b, |b| fill(spare, Some(r), Some(b))))??,
        (Some(r), None) => with_f32(r, |r| fill(spare, Some(r), None))?,
        (None, Some(b)) => with_f32(b, |b| fill(spare, None, Some(b)))?,
        (None, None) => fill(spare, None, None),
    }
    // SAFETY: `fill` wrote all rows · n values (whole rows of n, from a residual of rows · n).
    unsafe { out.set_len(rows * n) };
    Some((out, residual.is_some() || b.is_some()))
}

fn activate_in_place(out: &mut [f32], n: usize, act: Option<Activation>) {
    if let Some(act) = act {
        let chunk = n.max(4096);
        out.par_chunks_mut(chunk).for_each(|c| match act {
            Activation::Gelu => gelu_in_place(c),
            Activation::Silu => c.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
        });
    }
}

/// Exact (erf) GELU in place: explicit AVX-512 where the CPU has it (as for
/// [`exp_shifted_row`]), else the generic loop for the widest unit there is.
pub(crate) fn gelu_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { avx512_math::gelu_in_place(xs) };
    }
    gelu_in_place_widest(xs)
}

widest_simd! {
    fn gelu_in_place_widest(xs: &mut [f32]) => gelu_in_place_generic
}

#[inline(always)]
fn gelu_in_place_generic(xs: &mut [f32]) {
    xs.iter_mut().for_each(|v| *v = gelu_erf(*v));
}

/// `x · (1 + erf(x/√2)) / 2` with a branch-free `erf` (Abramowitz & Stegun 7.1.26, absolute
/// error below 1.5e-7, so GELU's error stays below 1e-7·|x|), which the compiler vectorises.
#[inline(always)]
pub(crate) fn gelu_erf(v: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let z = v * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let erf_abs = 1.0 - poly * exp_approx(-a * a);
    let erf = if z < 0.0 { -erf_abs } else { erf_abs };
    0.5 * v * (1.0 + erf)
}

/// `dst[cols × rows] ← src[rows × cols]ᵀ`, both row-major. AVX-512 takes whole 16 x 16 tiles
/// with register shuffles where the CPU has it (an element-by-element transpose writes with a
/// stride of a whole row per value); the edges go element by element.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(
        src.len() >= rows * cols && dst.len() >= rows * cols,
        "matrices of the stated shape"
    );
    let mut tiled = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected; the lengths were checked above.
        tiled = unsafe { avx512_math::transpose_tiles(src, rows, cols, dst) };
    }
    let (tiled_rows, tiled_cols) = tiled;
    for r in 0..rows {
        // The tiles covered rows < tiled_rows for columns < tiled_cols only.
        let from = if r < tiled_rows { tiled_cols } else { 0 };
        for c in from..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// In-place softmax of one row.
pub(crate) fn softmax_row(row: &mut [f32]) {
    let inv = 1.0 / exp_shifted_row(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `row ← exp(row − max(row))` in place, returning the sum: a softmax without its final
/// division, for callers that fold the division into a later step. Explicit AVX-512 where the
/// CPU has it (the compiler's vectorisation of the generic loop runs about 4× slower there),
/// else the generic loop for the widest unit there is.
pub(crate) fn exp_shifted_row(row: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { avx512_math::exp_shifted_row(row) };
    }
    exp_shifted_row_widest(row)
}

widest_simd! {
    fn exp_shifted_row_widest(row: &mut [f32]) -> f32 => exp_shifted_row_generic
}

/// Written so that the compiler vectorises it: lane-wise maxima and sums in fixed arrays, and a
/// branch-free `exp`.
#[inline(always)]
fn exp_shifted_row_generic(row: &mut [f32]) -> f32 {
    const L: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; L];
    let mut chunks = row.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in chunks.remainder() {
        max = max.max(v);
    }
    let mut sums = [0f32; L];
    let mut chunks = row.chunks_exact_mut(L);
    for c in &mut chunks {
        for i in 0..L {
            let e = exp_approx(c[i] - max);
            c[i] = e;
            sums[i] += e;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp_approx(*v - max);
        sum += *v;
    }
    sum
}

/// `eˣ` for `x ≤ 0` (softmax arguments), branch-free: `x = k·ln 2 + f` with `k` whole (set in
/// the exponent bits) and `|f| ≤ ½ ln 2` (Cody–Waite reduction with `ln 2` split in two, so `f`
/// is exact to f32 precision), `e^f` from its degree-7 Taylor polynomial (truncation below
/// 1e-8 relative). Underflows to `e⁻⁸⁷` at worst, never to a denormal.
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * LOG2E + ROUND;
    let k = shifted - ROUND;
    let f = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0
                        + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    // `shifted`'s low mantissa bits hold k (two's complement, offset by ROUND's bits): the
    // power of two from integer operations alone (a float-to-int cast would saturate, which
    // costs the vectorised loop several times its work).
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
    p * scale
}

/// [`exp_approx`], [`gelu_erf`] and the row passes built on them in AVX-512 intrinsics: the
/// same reductions and polynomials, with `vscalefps` applying exp's power of two and
/// `vrcp14ps` plus one Newton step for GELU's reciprocal (full f32 precision).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_math {
    use std::arch::x86_64::*;

    /// GELU of every value of `xs`, in place.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn gelu_in_place(xs: &mut [f32]) {
        let (full, tail) = (xs.len() / 16, xs.len() % 16);
        let ptr = xs.as_mut_ptr();
        // SAFETY: vector `i < full` covers xs[16i .. 16i + 16]; the tail is masked to its lanes.
        unsafe {
            for i in 0..full {
                let p = ptr.add(16 * i);
                _mm512_storeu_ps(p, gelu(_mm512_loadu_ps(p)));
            }
            let mask = ((1u32 << tail) - 1) as __mmask16;
            let p = ptr.add(16 * full);
            _mm512_mask_storeu_ps(p, mask, gelu(_mm512_maskz_loadu_ps(mask, p)));
        }
    }

    /// `x · (1 + erf(x/√2)) / 2` lane-wise, as [`super::gelu_erf`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[inline(always)]
    pub(crate) unsafe fn gelu(v: __m512) -> __m512 {
        // SAFETY: only called from functions with AVX-512F enabled.
        unsafe {
            let z = _mm512_mul_ps(v, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
            let a = _mm512_abs_ps(z);
            let den = _mm512_fmadd_ps(_mm512_set1_ps(0.327_591_1), a, _mm512_set1_ps(1.0));
            let t = _mm512_rcp14_ps(den);
            let t = _mm512_mul_ps(t, _mm512_fnmadd_ps(den, t, _mm512_set1_ps(2.0)));
            let mut poly = _mm512_set1_ps(1.061_405_4);
            for c in [-1.453_152_1, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
                poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
            }
            let poly = _mm512_mul_ps(poly, t);
            let erf_abs = _mm512_fnmadd_ps(
                poly,
                exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a))),
                _mm512_set1_ps(1.0),
            );
            let sign = _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(i32::MIN));
            let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs), sign));
            let half = _mm512_mul_ps(v, _mm512_set1_ps(0.5));
            _mm512_fmadd_ps(half, erf, half)
        }
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn exp_shifted_row(row: &mut [f32]) -> f32 {
        let (full, tail) = (row.len() / 16, row.len() % 16);
        let tail_mask = ((1u32 << tail) - 1) as __mmask16;
        let ptr = row.as_mut_ptr();
        // SAFETY (every access below): vector `i < full` covers row[16i .. 16i + 16]; the
        // tail's loads and stores are masked to its `tail` lanes.
        unsafe {
            let (max, last) = row_max(ptr, full, tail_mask);
            let mut sum = [_mm512_setzero_ps(); 2];
            for i in 0..full {
                let e = exp(_mm512_sub_ps(_mm512_loadu_ps(ptr.add(16 * i)), max));
                _mm512_storeu_ps(ptr.add(16 * i), e);
                sum[i % 2] = _mm512_add_ps(sum[i % 2], e);
            }
            let e = exp(_mm512_sub_ps(last, max));
            _mm512_mask_storeu_ps(ptr.add(16 * full), tail_mask, e);
            let sum = _mm512_add_ps(sum[0], sum[1]);
            _mm512_reduce_add_ps(_mm512_mask_add_ps(sum, tail_mask, sum, e))
        }
    }

    /// As [`exp_shifted_row`], writing the exponentials rounded to bf16 (to nearest even)
    /// into `dst` instead of over `src`. Returns the row's maximum and the sum of the
    /// unrounded exponentials.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512 BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(crate) unsafe fn exp_shifted_row_to_bf16(src: &[f32], dst: &mut [u16]) -> (f32, f32) {
        assert!(dst.len() >= src.len(), "a destination as long as the row");
        let (full, tail) = (src.len() / 16, src.len() % 16);
        let tail_mask = ((1u32 << tail) - 1) as __mmask16;
        let (ptr, out) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY (every access below): vector `i < full` covers src[16i .. 16i + 16] and the
        // same range of `dst` (at least as long); the tail's accesses are masked to its lanes.
        unsafe {
            let (max, last) = row_max(ptr, full, tail_mask);
            let mut sum = [_mm512_setzero_ps(); 2];
            for i in 0..full {
                let e = exp(_mm512_sub_ps(_mm512_loadu_ps(ptr.add(16 * i)), max));
                let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(e));
                _mm256_storeu_si256(out.add(16 * i).cast(), b);
                sum[i % 2] = _mm512_add_ps(sum[i % 2], e);
            }
            let e = exp(_mm512_sub_ps(last, max));
            let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(e));
            _mm256_mask_storeu_epi16(out.add(16 * full).cast(), tail_mask, b);
            let sum = _mm512_add_ps(sum[0], sum[1]);
            let sum = _mm512_reduce_add_ps(_mm512_mask_add_ps(sum, tail_mask, sum, e));
            (_mm512_cvtss_f32(max), sum)
        }
    }

    /// [`super::transpose`] over the whole 16 x 16 tiles; returns the rows and columns they
    /// covered (multiples of 16).
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `src` and `dst` hold `rows · cols` values.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn transpose_tiles(
        src: &[f32],
        rows: usize,
        cols: usize,
        dst: &mut [f32],
    ) -> (usize, usize) {
        let (tr, tc) = (rows / 16 * 16, cols / 16 * 16);
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        for r0 in (0..tr).step_by(16) {
            for c0 in (0..tc).step_by(16) {
                // SAFETY: rows r0..r0+16 and columns c0..c0+16 lie inside both matrices.
                unsafe {
                    let mut v = [_mm512_setzero_ps(); 16];
                    for (i, row) in v.iter_mut().enumerate() {
                        *row = _mm512_loadu_ps(s.add((r0 + i) * cols + c0));
                    }
                    transpose_16x16(&mut v);
                    for (i, row) in v.iter().enumerate() {
                        _mm512_storeu_ps(d.add((c0 + i) * rows + r0), *row);
                    }
                }
            }
        }
        (tr, tc)
    }

    /// Transposes 16 vectors of 16 lanes in registers: lane j of vector i goes to lane i of
    /// vector j. Pairs of rows interleave lane by lane, then pairs of pairs two lanes at a time
    /// (giving 4 x 4 blocks within each 128-bit quarter), then the quarters move across vectors
    /// in two rounds.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn transpose_16x16(v: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
        }
        for i in 0..4 {
            let (a, b, c, e) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
            v[4 * i] = _mm512_shuffle_ps::<0x44>(a, c);
            v[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
            v[4 * i + 2] = _mm512_shuffle_ps::<0x44>(b, e);
            v[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(b, e);
        }
        // v[4q + j] now holds, in quarter k, row (4q .. 4q+4)'s column 4k + j.
        for q in 0..2 {
            for j in 0..4 {
                let (a, b) = (v[8 * q + j], v[8 * q + 4 + j]);
                t[8 * q + j] = _mm512_shuffle_f32x4::<0x88>(a, b);
                t[8 * q + 4 + j] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
        for j in 0..8 {
            let (a, b) = (t[j], t[8 + j]);
            v[j] = _mm512_shuffle_f32x4::<0x88>(a, b);
            v[8 + j] = _mm512_shuffle_f32x4::<0xDD>(a, b);
        }
    }

    /// The row's maximum in every lane, and its masked tail vector (already loaded).
    ///
    /// # Safety
    /// AVX-512F; `ptr` holds `16 · full` values and then the tail's `tail_mask` lanes.
    #[inline(always)]
    unsafe fn row_max(ptr: *const f32, full: usize, tail_mask: __mmask16) -> (__m512, __m512) {
        // SAFETY: the caller's bounds, as stated.
        unsafe {
            let mut max = [_mm512_set1_ps(f32::NEG_INFINITY); 2];
            for i in 0..full {
                max[i % 2] = _mm512_max_ps(max[i % 2], _mm512_loadu_ps(ptr.add(16 * i)));
            }
            let last = _mm512_maskz_loadu_ps(tail_mask, ptr.add(16 * full));
            let max = _mm512_max_ps(max[0], max[1]);
            let max = _mm512_mask_max_ps(max, tail_mask, max, last);
            (_mm512_set1_ps(_mm512_reduce_max_ps(max)), last)
        }
    }

    /// `eˣ` lane-wise, as [`super::exp_approx`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[inline(always)]
    pub(crate) unsafe fn exp(x: __m512) -> __m512 {
        // SAFETY: only called from functions with AVX-512F enabled.
        unsafe {
            let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
            let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
            );
            let f = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693_359_4), x);
            let f = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.121_944_4e-4), f);
            let mut p = _mm512_set1_ps(1.0 / 5040.0);
            for c in [
                1.0 / 720.0,
                1.0 / 120.0,
                1.0 / 24.0,
                1.0 / 6.0,
                0.5,
                1.0,
                1.0,
            ] {
                p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
            }
            _mm512_scalef_ps(p, k)
        }
    }
}

/// LayerNorm over the last dimension of a contiguous `f32` tensor, mean and variance computed
/// in two passes (candle's one-pass `E[x²] − mean²` loses precision when a row's mean is large
/// against its spread, as in the residual streams of trained ViTs). `None` when an input is not
/// contiguous `f32` on the CPU.
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Option<Result<Tensor>> {
    let dim = *x.dims().last()?;
    if w.dims() != [dim] || b.dims() != [dim] || dim == 0 {
        return None;
    }
    let mut out = vec![0f32; x.elem_count()];
    with_f32(x, |xs| {
        with_f32(w, |ws| {
            with_f32(b, |bs| {
                // Rows in blocks, so that small rows do not each cost a parallel task.
                let rows = (4096 / dim).max(1) * dim;
                out.par_chunks_mut(rows)
                    .zip(xs.par_chunks(rows))
                    .for_each(|(o, r)| layer_norm_rows(r, o, ws, bs, eps))
            })
        })
    })???;
    Some(Tensor::from_vec(out, x.shape(), x.device()))
}

widest_simd! {
    /// LayerNorm of consecutive rows of `ws.len()` values, with the widest vector unit the CPU
    /// has.
    pub(crate) fn layer_norm_rows(src: &[f32], dst: &mut [f32], ws: &[f32], bs: &[f32], eps: f32)
        => layer_norm_rows_generic
}

/// Written so that the compiler vectorises it: the sums run in 16 lanes (a float sum in one
/// accumulator is a chain of dependent additions the compiler may not reorder).
#[inline(always)]
fn layer_norm_rows_generic(src: &[f32], dst: &mut [f32], ws: &[f32], bs: &[f32], eps: f32) {
    let dim = ws.len();
    for (o, r) in dst.chunks_exact_mut(dim).zip(src.chunks_exact(dim)) {
        let mean = lane_sum(r, |v| v) / dim as f32;
        let var = lane_sum(r, |v| (v - mean) * (v - mean)) / dim as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, v), w), b) in o.iter_mut().zip(r).zip(ws).zip(bs) {
            *o = (v - mean) * inv * w + b;
        }
    }
}

widest_simd! {
    /// [`layer_norm_rows`] in place.
    pub(crate) fn layer_norm_rows_in_place(rows: &mut [f32], ws: &[f32], bs: &[f32], eps: f32)
        => layer_norm_rows_in_place_generic
}

#[inline(always)]
fn layer_norm_rows_in_place_generic(rows: &mut [f32], ws: &[f32], bs: &[f32], eps: f32) {
    let dim = ws.len();
    for r in rows.chunks_exact_mut(dim) {
        let mean = lane_sum(r, |v| v) / dim as f32;
        let var = lane_sum(r, |v| (v - mean) * (v - mean)) / dim as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in r.iter_mut().zip(ws).zip(bs) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// `Σ f(v)` over `row`, accumulated in 16 lanes.
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    const L: usize = 16;
    let mut lanes = [0f32; L];
    let mut chunks = row.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            lanes[i] += f(c[i]);
        }
    }
    let mut total: f32 = lanes.iter().sum();
    for &v in chunks.remainder() {
        total += f(v);
    }
    total
}

/// Softmax over the last dimension of a contiguous `f32` CPU tensor (`None` otherwise).
pub(crate) fn softmax_last_dim(x: &Tensor) -> Option<Result<Tensor>> {
    let dim = *x.dims().last()?;
    if dim == 0 {
        return None;
    }
    let mut out = with_f32(x, |xs| xs.to_vec())?;
    let rows = (4096 / dim).max(1) * dim;
    out.par_chunks_mut(rows)
        .for_each(|block| block.chunks_exact_mut(dim).for_each(softmax_row));
    Some(Tensor::from_vec(out, x.shape(), x.device()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layer_norm_keeps_precision_when_the_mean_dwarfs_the_spread() {
        let dim = 384;
        let row: Vec<f32> = (0..dim)
            .map(|i| 3000.0 + ((i * 37 % 11) as f32 - 5.0) * 0.01)
            .collect();
        let x = Tensor::from_vec(row.clone(), (1, dim), &Device::Cpu).unwrap();
        let w = Tensor::ones(dim, DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros(dim, DType::F32, &Device::Cpu).unwrap();
        let got: Vec<f32> = layer_norm(&x, &w, &b, 1e-6)
            .expect("f32 path")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / dim as f64;
        let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let worst = row
            .iter()
            .zip(&got)
            .map(|(v, g)| ((*v as f64 - mean) / (var + 1e-6).sqrt() - *g as f64).abs())
            .fold(0f64, f64::max);
        // The inputs themselves carry f32 rounding of ~2e-4 at 3000, i.e. ~1e-2 of the spread.
        assert!(worst < 5e-2, "two-pass LayerNorm error {worst}");
    }

    #[test]
    fn transpose_moves_every_value_including_the_ragged_edges() {
        for (rows, cols) in [(256, 64), (256, 56), (37, 21), (16, 16), (5, 40)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * cols + c],
                        "{rows}x{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }

    #[test]
    fn fast_exp_and_softmax_match_the_library() {
        for i in 0..=20_000 {
            let x = -87.0 + i as f32 * 87.0 / 20_000.0;
            let (got, want) = (exp_approx(x), x.exp());
            assert!(
                (got - want).abs() <= 6e-7 * want,
                "exp({x}): {got} vs {want}"
            );
        }
        // The row pass (explicit AVX-512 here, with a ragged tail): its maximum is 0, so it
        // holds eˣ itself, and returns their sum.
        let xs: Vec<f32> = (0..=20_000)
            .map(|i| -87.0 + i as f32 * 87.0 / 20_000.0)
            .collect();
        let mut row = xs.clone();
        let sum = exp_shifted_row(&mut row);
        for (x, got) in xs.iter().zip(&row) {
            let want = x.exp();
            assert!(
                (got - want).abs() <= 6e-7 * want,
                "exp({x}): {got} vs {want}"
            );
        }
        let want: f64 = xs.iter().map(|x| (*x as f64).exp()).sum();
        assert!(((sum as f64) - want).abs() < 1e-5 * want, "{sum} vs {want}");
        // The bf16-writing variant: the same exponentials, each rounded to nearest even, and
        // the same sum.
        #[cfg(target_arch = "x86_64")]
        {
            assert!(
                super::super::bf16::available(),
                "this test needs AVX-512 BF16"
            );
            let mut rounded = vec![0u16; xs.len()];
            // SAFETY: AVX-512F and BF16 asserted just above.
            let (max16, sum16) = unsafe { avx512_math::exp_shifted_row_to_bf16(&xs, &mut rounded) };
            assert_eq!(sum16, sum);
            assert_eq!(max16, xs.iter().copied().fold(f32::MIN, f32::max));
            for (r, e) in rounded.iter().zip(&row) {
                assert_eq!(*r, super::super::bf16::to_bf16(*e), "bf16({e})");
            }
        }
        let mut row: Vec<f32> = (0..37).map(|i| ((i * 13 % 7) as f32 - 3.0) * 1.7).collect();
        let max = row.iter().copied().fold(f32::MIN, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let want: Vec<f32> = row.iter().map(|v| (v - max).exp() / sum).collect();
        softmax_row(&mut row);
        for (g, w) in row.iter().zip(&want) {
            assert!((g - w).abs() < 1e-7, "{g} vs {w}");
        }
    }

    #[test]
    fn fast_gelu_matches_the_exact_one() {
        let xs: Vec<f32> = (0..=40_000)
            .map(|i| -20.0 + i as f32 * 40.0 / 40_000.0)
            .collect();
        // The slice pass (explicit AVX-512 here, with a ragged tail) and the scalar function.
        let mut slice = xs.clone();
        gelu_in_place(&mut slice);
        for (&x, &from_slice) in xs.iter().zip(&slice) {
            let want = candle_core::cpu::erf::erf_f64(x as f64 / std::f64::consts::SQRT_2);
            let want = 0.5 * x as f64 * (1.0 + want);
            for got in [gelu_erf(x) as f64, from_slice as f64] {
                assert!(
                    (got - want).abs() <= 2e-7 * (1.0 + x.abs() as f64),
                    "gelu({x}): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn linear_folds_bias_residual_and_activation() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0], [-1.0, 0.5]], &dev).unwrap();
        let w = Tensor::new(&[[1f32, 0.0], [0.5, -1.0], [2.0, 1.0]], &dev).unwrap();
        let b = Tensor::new(&[0.1f32, 0.2, 0.3], &dev).unwrap();
        let r = Tensor::new(&[[1f32, 1.0, 1.0], [0.0, -1.0, 2.0]], &dev).unwrap();
        let want = (x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap()
            + &r)
            .unwrap()
            .gelu_erf()
            .unwrap();
        let got = linear(&x, &w, Some(&b), Some(&r), Some(Activation::Gelu))
            .unwrap()
            .unwrap();
        let diff: f32 = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
    }
}
