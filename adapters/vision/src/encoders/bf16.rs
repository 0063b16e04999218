//! Reduced-precision linear layers: weights held in bfloat16 and multiplied with the AVX-512
//! BF16 dot-product instruction (`vdpbf16ps`: pairs of bf16 products summed into f32), the
//! activations rounded to bf16 on the way in, sums, biases, residuals and everything outside the
//! GEMMs kept in f32 (PyTorch's CPU autocast does the same split).
//!
//! candle's CPU matmul has no bf16 kernel (it widens both operands to f32 on every call), so
//! this is what makes a bf16 mode faster than f32 here. Only on CPUs with AVX-512 BF16;
//! [`available`] says whether this one has it.
//!
//! Weight layout ("VNNI" packing): columns in panels of 32; within a panel, for each pair of
//! input channels `(2t, 2t+1)`, the 32 columns' two values side by side. One 512-bit load is then
//! one pair-step of 32 outputs, and each row of the activations contributes one broadcast 32-bit
//! pair, so the microkernel needs no horizontal sums.

use rayon::prelude::*;

use super::kernels::widest_simd;
use super::tasks::for_each_task;

const PANEL: usize = 32;

// The packed pairs are written as u32 words read back as u16 halves (`pack_columns`).
const _: () = assert!(
    cfg!(target_endian = "little"),
    "the bf16 packing assumes little-endian"
);
/// Rows of the activations per microkernel call.
const MR: usize = 8;
/// Rows per parallel task.
const TASK_ROWS: usize = 64;

/// Whether this CPU can run the bf16 kernels.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 → bf16 with round-to-nearest-even (as `torch.Tensor.to(torch.bfloat16)`).
#[inline]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = ((b >> 16) & 1) + 0x7fff;
    (b.wrapping_add(round) >> 16) as u16
}

/// A `[n, k]` weight matrix (`y = x·Wᵀ`) packed for the kernel.
pub(crate) struct PackedBf16 {
    n: usize,
    k: usize,
    /// `k` rounded up to even.
    kp: usize,
    panels: usize,
    data: Vec<u16>,
}

impl PackedBf16 {
    /// Packs row-major `w` `[n, k]`.
    pub(crate) fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight of the stated shape");
        Self::pack_rows(w, n, k, k)
    }

    /// Packs the `[n, k]` matrix whose row `col` is the `k` values from `src[col · stride]`
    /// (attention's keys, read from the fused q/k/v rows).
    pub(crate) fn pack_rows(src: &[f32], n: usize, k: usize, stride: usize) -> Self {
        let mut packed = Self::zeros(n, k);
        let kp = packed.kp;
        for col in 0..n {
            let row = &src[col * stride..col * stride + k];
            let base = (col / PANEL * (kp / 2) * PANEL + col % PANEL) * 2;
            for (pair, two) in row.chunks(2).enumerate() {
                let at = base + pair * PANEL * 2;
                for (t, &v) in two.iter().enumerate() {
                    packed.data[at + t] = to_bf16(v);
                }
            }
        }
        packed
    }

    /// Packs the `[n, k]` matrix given transposed: element `(col, kk)` is
    /// `src[kk · stride + col]` (attention's values, whose rows are the keys `kk`). Each pair of
    /// source rows interleaves into one pair-row of every panel.
    pub(crate) fn pack_columns(src: &[f32], n: usize, k: usize, stride: usize) -> Self {
        // Whole panels are written in full below (odd k's last pair-row included): only a
        // partial last panel needs zeros past its columns, and then everything is zeroed.
        let mut packed = Self::unwritten(n, k);
        if !n.is_multiple_of(PANEL) {
            packed.data.spare_capacity_mut().iter_mut().for_each(|d| {
                d.write(0);
            });
        }
        let kp = packed.kp;
        let zeros = vec![0f32; if k % 2 == 1 { n } else { 0 }];
        let mut words = [0u32; PANEL];
        for pair in 0..kp / 2 {
            let a = &src[2 * pair * stride..][..n];
            let b = if 2 * pair + 1 < k {
                &src[(2 * pair + 1) * stride..][..n]
            } else {
                &zeros[..]
            };
            for (p, (a, b)) in a.chunks(PANEL).zip(b.chunks(PANEL)).enumerate() {
                let cols = a.len();
                interleave_bf16(a, b, &mut words[..cols]);
                let base = (p * (kp / 2) + pair) * PANEL * 2;
                // SAFETY: the words' memory read as twice as many u16, in bounds and aligned
                // (u32 alignment covers u16); little-endian, so each word's a-value comes first.
                let halves = unsafe { std::slice::from_raw_parts(words.as_ptr().cast(), 2 * cols) };
                let dst = &mut packed.data.spare_capacity_mut()[base..base + 2 * cols];
                for (d, &h) in dst.iter_mut().zip(halves) {
                    d.write(h);
                }
            }
        }
        // SAFETY: every (panel, pair) block of 2·cols halves was written above, and with a
        // partial last panel the whole buffer was zeroed first.
        unsafe { packed.data.set_len(packed.panels * PANEL * kp) };
        packed
    }

    /// [`Self::zeros`]' shape with the data allocated but not written: the caller writes every
    /// value through `spare_capacity_mut` and then sets the length.
    fn unwritten(n: usize, k: usize) -> Self {
        let kp = k.div_ceil(2) * 2;
        let panels = n.div_ceil(PANEL);
        PackedBf16 {
            n,
            k,
            kp,
            panels,
            data: Vec::with_capacity(panels * PANEL * kp),
        }
    }

    fn zeros(n: usize, k: usize) -> Self {
        let mut packed = Self::unwritten(n, k);
        packed.data.resize(packed.panels * PANEL * packed.kp, 0);
        packed
    }

    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    /// The row length the kernels expect of bf16 activations: `k` rounded up to even (the
    /// padding must hold zeros).
    pub(crate) fn padded_k(&self) -> usize {
        self.kp
    }

    /// `out[m×n] += a[m×k] · Wᵀ`, `a` row-major f32 (rounded to bf16 here), `out` row-major.
    pub(crate) fn matmul_acc(&self, a: &[f32], m: usize, out: &mut [f32]) {
        let (n, k, kp) = (self.n, self.k, self.kp);
        assert_eq!(a.len(), m * k, "activations of the stated shape");
        assert_eq!(out.len(), m * n, "output of the stated shape");
        if !available() {
            // Portable reference: the same rounding, products summed in f32.
            for (i, row) in out.chunks_exact_mut(n).enumerate() {
                for (j, o) in row.iter_mut().enumerate() {
                    let mut sum = 0f32;
                    for t in 0..k {
                        let x = f32::from_bits((to_bf16(a[i * k + t]) as u32) << 16);
                        let pair = (j / PANEL * (kp / 2) + t / 2) * PANEL + j % PANEL;
                        let w = f32::from_bits((self.data[pair * 2 + t % 2] as u32) << 16);
                        sum += x * w;
                    }
                    *o += sum;
                }
            }
            return;
        }
        let mut abf = vec![0u16; m * kp];
        abf.par_chunks_mut(TASK_ROWS * kp)
            .zip(a.par_chunks(TASK_ROWS * k))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_exact_mut(kp).zip(src.chunks_exact(k)) {
                    round_to_bf16(s, &mut d[..k]);
                }
            });
        for_each_task(m, self.panels, TASK_ROWS, out, |rows, panels, out_rows| {
            let a = &abf[rows.start * kp..rows.end * kp];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available()` was checked above; `out_rows` points at these rows of
            // `out`, and this task writes only their columns of its panels (`for_each_task`).
            unsafe {
                kernel::rows(self, a, rows.len(), out_rows, panels, true)
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = (a, panels, out_rows);
                unreachable!("available() is false off x86_64")
            }
        });
    }

    /// `out[rows×n] += a[rows×k] · Wᵀ` on the calling thread, the f32 rows of `a` rounded to
    /// bf16 into `scratch` first (for callers that parallelise over row blocks themselves).
    /// Needs [`available`].
    pub(crate) fn matmul_acc_serial(
        &self,
        a: &[f32],
        rows: usize,
        out: &mut [f32],
        scratch: &mut Vec<u16>,
    ) {
        let k = self.k;
        self.rounded_rows(rows, scratch, |i, dst| round_to_bf16(&a[i * k..][..k], dst));
        self.matmul_acc_bf16(scratch, rows, out);
    }

    /// `scratch` as `rows` bf16 rows of [`Self::padded_k`] values, `row(i, dst)` writing the
    /// first `k` of row i (the padding stays zero).
    fn rounded_rows(
        &self,
        rows: usize,
        scratch: &mut Vec<u16>,
        mut row: impl FnMut(usize, &mut [u16]),
    ) {
        let (k, kp) = (self.k, self.kp);
        for (i, dst) in reuse(scratch, rows * kp).chunks_exact_mut(kp).enumerate() {
            row(i, &mut dst[..k]);
            dst[k..].fill(0);
        }
    }

    /// `out[rows×n] += (a + b)[rows×k] · Wᵀ` on the calling thread, the f32 sums rounded to
    /// bf16 into `scratch` as they are made (image tokens plus their positional encoding,
    /// never stored in f32). Needs [`available`].
    pub(crate) fn matmul_acc_sum_serial(
        &self,
        a: &[f32],
        b: &[f32],
        rows: usize,
        out: &mut [f32],
        scratch: &mut Vec<u16>,
    ) {
        let k = self.k;
        self.rounded_rows(rows, scratch, |i, dst| {
            round_sum_to_bf16(&a[i * k..][..k], &b[i * k..][..k], dst)
        });
        self.matmul_acc_bf16(scratch, rows, out);
    }

    /// [`Self::matmul_acc_bf16`] on AVX-512 alone, even where the CPU has AMX.
    #[cfg(all(test, target_arch = "x86_64"))]
    fn matmul_acc_bf16_without_tiles(&self, a: &[u16], rows: usize, out: &mut [f32]) {
        assert!(available() && a.len() >= rows * self.kp && out.len() >= rows * self.n);
        // SAFETY: as in `matmul_acc_bf16`.
        unsafe { kernel::rows(self, a, rows, out.as_mut_ptr(), 0..self.panels, false) }
    }

    /// `out[rows×n] += a[rows×kp] · Wᵀ` on the calling thread, `a` already bf16 (row length
    /// [`Self::padded_k`]). Needs [`available`].
    pub(crate) fn matmul_acc_bf16(&self, a: &[u16], rows: usize, out: &mut [f32]) {
        assert!(available(), "bf16 kernels on a CPU without AVX-512 BF16");
        assert!(a.len() >= rows * self.kp, "activations of the stated shape");
        assert!(out.len() >= rows * self.n, "output of the stated shape");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available()` was asserted; the lengths were checked just above, and `out`
        // is borrowed mutably for the call.
        unsafe {
            kernel::rows(self, a, rows, out.as_mut_ptr(), 0..self.panels, true)
        }
    }
}

/// `buffer` as `len` values whose contents are whatever it held: for callers that overwrite
/// every value, so that a reused scratch buffer is not zeroed first.
pub(crate) fn reuse<T: Copy + Default>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
    &mut buffer[..len]
}

/// `dst ← bf16(exp(src − max(src)))`, the numerators of a softmax as the kernels' operands.
/// Returns the row's maximum and the sum of the unrounded exponentials. Needs [`available`].
pub(crate) fn exp_shifted_row_to_bf16(src: &[f32], dst: &mut [u16]) -> (f32, f32) {
    assert!(available(), "bf16 kernels on a CPU without AVX-512 BF16");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` (AVX-512F and BF16) was asserted just above.
    unsafe {
        super::kernels::avx512_math::exp_shifted_row_to_bf16(src, dst)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("available() is false off x86_64 ({src:?}, {dst:?})")
}

/// `out[x] = bf16(a[x]) | bf16(b[x]) << 16`: two rows as bf16 pairs (in memory: a's value,
/// then b's), rounded to nearest even as [`to_bf16`] does. The layout of a pair of input
/// channels in the `vdpbf16ps` and AMX operands.
pub(crate) fn interleave_bf16(a: &[f32], b: &[f32], out: &mut [u32]) {
    let n = out.len().min(a.len()).min(b.len());
    let mut x = 0;
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512F and BF16 were checked; the kernel stays below n.
        x = unsafe { kernel::interleave(&a[..n], &b[..n], &mut out[..n]) };
    }
    for x in x..n {
        out[x] = to_bf16(a[x]) as u32 | (to_bf16(b[x]) as u32) << 16;
    }
}

widest_simd! {
    /// `dst ← bf16(src)`, rounded to nearest even.
    pub(crate) fn round_to_bf16(src: &[f32], dst: &mut [u16]) => round_to_bf16_generic
}

widest_simd! {
    /// `dst ← bf16(a + b)`, rounded to nearest even.
    pub(crate) fn round_sum_to_bf16(a: &[f32], b: &[f32], dst: &mut [u16])
        => round_sum_to_bf16_generic
}

#[inline(always)]
fn round_sum_to_bf16_generic(a: &[f32], b: &[f32], dst: &mut [u16]) {
    for ((d, x), y) in dst.iter_mut().zip(a).zip(b) {
        *d = to_bf16(x + y);
    }
}

#[inline(always)]
fn round_to_bf16_generic(src: &[f32], dst: &mut [u16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = to_bf16(*s);
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::super::amx;
    use super::{MR, PANEL, PackedBf16};

    /// The given panels for `rows` rows of bf16 activations `a` (`rows × kp`), adding into the
    /// `rows × n` block at `out`; on the AMX tiles for whole blocks where `allow_tiles` and
    /// [`amx::ready`] (the tests turn them off to check the AVX-512 path on AMX machines too).
    ///
    /// # Safety
    /// AVX-512 BF16; `out` points at `rows` rows of `w.n` writable values, with no other thread
    /// writing these rows' columns of `panels`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn rows(
        w: &PackedBf16,
        a: &[u16],
        rows: usize,
        out: *mut f32,
        panels: Range<usize>,
        allow_tiles: bool,
    ) {
        assert!(a.len() >= rows * w.kp && panels.end <= w.panels);
        let (n, kp) = (w.n, w.kp);
        // AMX takes whole blocks of 16 rows over whole steps of 32 input channels; AVX-512
        // the rest of the rows, and those blocks' last pairs of input channels.
        let steps = kp / amx::K_STEP;
        let tiles = (allow_tiles && amx::ready() && steps > 0 && rows >= amx::TILE_ROWS)
            // SAFETY: `amx::ready()` was checked.
            .then(|| unsafe { amx::Tiles::configure() });
        for p in panels {
            let panel = w.data[p * (kp / 2) * PANEL * 2..(p + 1) * (kp / 2) * PANEL * 2].as_ptr();
            let cols = (n - p * PANEL).min(PANEL);
            let masks = [
                ((1u32 << cols.min(16)) - 1) as __mmask16,
                ((1u32 << cols.saturating_sub(16)) - 1) as __mmask16,
            ];
            let mut i = 0;
            if let Some(tiles) = &tiles {
                let done = steps * amx::K_STEP / 2;
                while rows - i >= amx::TILE_ROWS {
                    let mr = if rows - i >= 2 * amx::TILE_ROWS {
                        32
                    } else {
                        16
                    };
                    // SAFETY: rows i..i+mr of `a` (kp values each, kp ≥ 32·steps) and of the
                    // output block; the panel holds kp/2 ≥ 16·steps pair-rows; this task owns
                    // the panel's columns of these rows.
                    unsafe {
                        let op = out.add(i * n + p * PANEL);
                        let ap = a[i * kp..].as_ptr();
                        amx::block(tiles, panel, ap, kp, steps, op, n, mr, cols);
                        for r in (0..mr).step_by(MR) {
                            let ap = a[(i + r) * kp..].as_ptr();
                            block::<MR>(panel, ap, kp, done, op.add(r * n), n, masks);
                        }
                    }
                    i += mr;
                }
            }
            while i < rows {
                let mr = MR.min(rows - i);
                let ap = a[i * kp..].as_ptr();
                // SAFETY (all arms): rows i..i+mr of `a` and of the output block, the panel's
                // kp/2 pair-steps of 64 values; the output columns p·32 .. p·32 + cols are
                // inside each row.
                unsafe {
                    let op = out.add(i * n + p * PANEL);
                    match mr {
                        8 => block::<8>(panel, ap, kp, 0, op, n, masks),
                        7 => block::<7>(panel, ap, kp, 0, op, n, masks),
                        6 => block::<6>(panel, ap, kp, 0, op, n, masks),
                        5 => block::<5>(panel, ap, kp, 0, op, n, masks),
                        4 => block::<4>(panel, ap, kp, 0, op, n, masks),
                        3 => block::<3>(panel, ap, kp, 0, op, n, masks),
                        2 => block::<2>(panel, ap, kp, 0, op, n, masks),
                        _ => block::<1>(panel, ap, kp, 0, op, n, masks),
                    }
                }
                i += mr;
            }
        }
    }

    /// [`super::interleave_bf16`] over whole groups of 16; returns how many values it did.
    ///
    /// # Safety
    /// AVX-512F and BF16; `a`, `b` and `out` of one length.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn interleave(a: &[f32], b: &[f32], out: &mut [u32]) -> usize {
        let n = out.len();
        let mut x = 0;
        while x + 16 <= n {
            // SAFETY: x + 16 ≤ n, inside all three slices.
            unsafe {
                let lo: __m256i =
                    std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(a.as_ptr().add(x))));
                let hi: __m256i =
                    std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(b.as_ptr().add(x))));
                let word = _mm512_or_si512(
                    _mm512_cvtepu16_epi32(lo),
                    _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)),
                );
                _mm512_storeu_si512(out.as_mut_ptr().add(x).cast(), word);
            }
            x += 16;
        }
        x
    }

    /// Adds the products over pairs `first_pair..kp/2` of R rows into one panel's columns.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn block<const R: usize>(
        panel: *const u16,
        a: *const u16,
        kp: usize,
        first_pair: usize,
        out: *mut f32,
        n: usize,
        masks: [__mmask16; 2],
    ) {
        if first_pair >= kp / 2 {
            return;
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for pair in first_pair..kp / 2 {
            // SAFETY: the caller guarantees kp/2 pair-steps of 64 panel values and R rows of
            // kp activations.
            unsafe {
                let w0: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(panel.add(pair * 64).cast()));
                let w1: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(panel.add(pair * 64 + 32).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let v = (a.add(r * kp + 2 * pair) as *const i32).read_unaligned();
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(v));
                    acc[0] = _mm512_dpbf16_ps(acc[0], av, w0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], av, w1);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (h, (v, mask)) in acc.iter().zip(masks).enumerate() {
                // SAFETY: the masks cover the panel's columns inside the row (caller).
                unsafe {
                    let dst = out.add(r * n + 16 * h);
                    let cur = _mm512_maskz_loadu_ps(mask, dst);
                    _mm512_mask_storeu_ps(dst, mask, _mm512_add_ps(cur, *v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_bf16_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2⁻⁸ is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-2.0), 0xc000);
    }

    #[test]
    fn strided_and_transposed_packing_equal_packing_a_copy() {
        // A partial last panel, and whole panels (which `pack_columns` writes without zeroing
        // first), both with an odd k.
        for (n, k, stride) in [(45, 37, 50), (64, 37, 70)] {
            let src: Vec<f32> = (0..n.max(k) * stride)
                .map(|i| i as f32 * 0.37 - 100.0)
                .collect();
            let rows: Vec<f32> = (0..n * k).map(|i| src[i / k * stride + i % k]).collect();
            assert_eq!(
                PackedBf16::pack_rows(&src, n, k, stride).data,
                PackedBf16::pack(&rows, n, k).data
            );
            let transposed: Vec<f32> = (0..n * k).map(|i| src[i % k * stride + i / k]).collect();
            assert_eq!(
                PackedBf16::pack_columns(&src, n, k, stride).data,
                PackedBf16::pack(&transposed, n, k).data
            );
        }
    }

    #[test]
    fn matches_an_f64_product_of_the_rounded_operands() {
        // Where the CPU has AMX the tiles take the whole blocks of 16 and 32 rows, and
        // AVX-512 the rows and input-channel pairs past them (100 x 45 x 300: a partial panel,
        // 9 steps of 32 and 6 pairs more; 48 x 64 x 64: whole blocks only).
        if super::super::amx::cpu_has_amx_bf16() && std::env::var_os("VISPROMPT_NO_AMX").is_none() {
            assert!(super::super::amx::ready(), "the OS granted the AMX tiles");
        }
        for (m, n, k) in [
            (1, 1, 1),
            (13, 45, 37),
            (70, 64, 384),
            (9, 33, 2),
            (100, 45, 300),
            (48, 64, 64),
            (16, 32, 32),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 23.0)
                .collect();
            let packed = PackedBf16::pack(&w, n, k);
            let mut out = vec![0.5f32; m * n];
            packed.matmul_acc(&a, m, &mut out);
            let mut paths = vec![("default", out)];
            // The AVX-512 kernel on whole blocks as well, which AMX takes where it is present.
            #[cfg(target_arch = "x86_64")]
            if available() {
                let kp = packed.padded_k();
                let mut abf = vec![0u16; m * kp];
                for (d, s) in abf.chunks_exact_mut(kp).zip(a.chunks_exact(k)) {
                    round_to_bf16(s, &mut d[..k]);
                }
                let mut out = vec![0.5f32; m * n];
                packed.matmul_acc_bf16_without_tiles(&abf, m, &mut out);
                paths.push(("AVX-512 only", out));
            }
            let r = |x: f32| f32::from_bits((to_bf16(x) as u32) << 16) as f64;
            for (path, out) in &paths {
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = 0.5
                            + (0..k)
                                .map(|t| r(a[i * k + t]) * r(w[j * k + t]))
                                .sum::<f64>();
                        let got = out[i * n + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{path} {m}x{n}x{k} [{i},{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
