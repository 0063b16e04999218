//! Linear layers in f32 with weights packed once at load time for an AVX-512 kernel.
//!
//! The `gemm` crate packs both operands on every call and splits the work over threads by its
//! own rule; on the encoders' shapes (a few hundred to a thousand rows, 384–1536 wide) it
//! reaches 60–80 % of this machine's peak. Here the weights are packed once, the activations
//! are read in place (one broadcast per row and input channel), and the work is split into
//! enough (row block, column group) tasks to keep every thread busy.
//!
//! Weight layout: columns in panels of 32; within a panel, for each input channel, the 32
//! columns' values side by side, so one input channel is two vector loads. The microkernel
//! holds 12 rows × 32 columns of sums in 24 registers.

use super::tasks::for_each_task;

const PANEL: usize = 32;
/// Rows of the activations per microkernel call.
const MR: usize = 12;
/// Rows per task: four microkernel calls share each panel while it is in L1.
const TASK_ROWS: usize = 4 * MR;

/// Whether this CPU can run the kernel.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A `[n, k]` weight matrix (`y = x·Wᵀ`) packed for the kernel.
pub(crate) struct PackedF32 {
    n: usize,
    k: usize,
    panels: usize,
    data: Vec<f32>,
}

impl std::fmt::Debug for PackedF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedF32 [{} × {}]", self.n, self.k)
    }
}

impl PackedF32 {
    /// Packs row-major `w` `[n, k]`.
    pub(crate) fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight of the stated shape");
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0f32; panels * PANEL * k];
        for (col, row) in w.chunks_exact(k).enumerate() {
            let panel = &mut data[col / PANEL * PANEL * k..];
            for (t, &v) in row.iter().enumerate() {
                panel[t * PANEL + col % PANEL] = v;
            }
        }
        PackedF32 { n, k, panels, data }
    }

    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    pub(crate) fn in_features(&self) -> usize {
        self.k
    }

    /// Element `(col, kk)` of the matrix as packed.
    pub(crate) fn at(&self, col: usize, kk: usize) -> f32 {
        self.data[col / PANEL * PANEL * self.k + kk * PANEL + col % PANEL]
    }

    /// `out[m×n] += a[m×k] · Wᵀ` on the calling thread. Needs [`available`].
    pub(crate) fn matmul_acc_serial(&self, a: &[f32], m: usize, out: &mut [f32]) {
        assert!(available(), "the f32 kernel on a CPU without AVX-512");
        assert_eq!(a.len(), m * self.k, "activations of the stated shape");
        assert_eq!(out.len(), m * self.n, "output of the stated shape");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F was asserted; `out` (m·n values) is borrowed mutably for the call.
        unsafe {
            kernel::rows(self, a, m, out.as_mut_ptr(), 0..self.panels)
        }
    }

    /// `out[m×n] += a[m×k] · Wᵀ`, `a` and `out` row-major, in parallel. Needs [`available`].
    pub(crate) fn matmul_acc(&self, a: &[f32], m: usize, out: &mut [f32]) {
        let (n, k) = (self.n, self.k);
        assert!(available(), "the f32 kernel on a CPU without AVX-512");
        assert_eq!(a.len(), m * k, "activations of the stated shape");
        assert_eq!(out.len(), m * n, "output of the stated shape");
        for_each_task(m, self.panels, TASK_ROWS, out, |rows, panels, out_rows| {
            let a = &a[rows.start * k..rows.end * k];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F was asserted above; `out_rows` points at these rows of `out`,
            // and this task writes only their columns of its panels (`for_each_task`).
            unsafe {
                kernel::rows(self, a, rows.len(), out_rows, panels)
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = (a, panels, out_rows);
                unreachable!("available() is false off x86_64")
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{MR, PANEL, PackedF32};

    /// The given panels for `rows` rows of `a` (`rows × k`), adding into the `rows × n` block at
    /// `out`.
    ///
    /// # Safety
    /// AVX-512F; `out` points at `rows` rows of `w.n` writable values, with no other thread
    /// writing these rows' columns of `panels`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(
        w: &PackedF32,
        a: &[f32],
        rows: usize,
        out: *mut f32,
        panels: Range<usize>,
    ) {
        let (n, k) = (w.n, w.k);
        assert!(a.len() >= rows * k && panels.end <= w.panels);
        for p in panels {
            let panel = w.data[p * PANEL * k..(p + 1) * PANEL * k].as_ptr();
            let cols = (n - p * PANEL).min(PANEL);
            let masks = [
                ((1u32 << cols.min(16)) - 1) as __mmask16,
                ((1u32 << cols.saturating_sub(16)) - 1) as __mmask16,
            ];
            let mut i = 0;
            while i < rows {
                let r = (rows - i).min(MR);
                let ap = a[i * k..].as_ptr();
                // SAFETY (all arms): rows i..i+r of `a` and of the output block, the panel's
                // k·32 values; the output columns p·32 .. p·32 + cols are inside each row.
                unsafe {
                    let op = out.add(i * n + p * PANEL);
                    match r {
                        12 => block::<12>(ap, k, panel, op, n, masks),
                        11 => block::<11>(ap, k, panel, op, n, masks),
                        10 => block::<10>(ap, k, panel, op, n, masks),
                        9 => block::<9>(ap, k, panel, op, n, masks),
                        8 => block::<8>(ap, k, panel, op, n, masks),
                        7 => block::<7>(ap, k, panel, op, n, masks),
                        6 => block::<6>(ap, k, panel, op, n, masks),
                        5 => block::<5>(ap, k, panel, op, n, masks),
                        4 => block::<4>(ap, k, panel, op, n, masks),
                        3 => block::<3>(ap, k, panel, op, n, masks),
                        2 => block::<2>(ap, k, panel, op, n, masks),
                        _ => block::<1>(ap, k, panel, op, n, masks),
                    }
                }
                i += r;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize>(
        a: *const f32,
        k: usize,
        panel: *const f32,
        out: *mut f32,
        n: usize,
        masks: [__mmask16; 2],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for t in 0..k {
            // SAFETY: the caller guarantees R rows of k activations and k·32 panel values.
            unsafe {
                let w0 = _mm512_loadu_ps(panel.add(t * PANEL));
                let w1 = _mm512_loadu_ps(panel.add(t * PANEL + 16));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r * k + t));
                    acc[0] = _mm512_fmadd_ps(av, w0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(av, w1, acc[1]);
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
    fn matches_an_f64_product() {
        assert!(
            available(),
            "the f32 kernel's tests need AVX-512 (this CPU lacks it)"
        );
        // Ragged rows (not a multiple of 12 or 48) and columns (not a multiple of 16 or 32),
        // and shapes that split the columns into groups.
        for (m, n, k) in [
            (1, 1, 1),
            (13, 45, 37),
            (70, 64, 384),
            (261, 1536, 384),
            (5, 33, 2),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 23.0)
                .collect();
            let packed = PackedF32::pack(&w, n, k);
            assert_eq!(packed.at(n - 1, k - 1), w[n * k - 1]);
            let mut out = vec![0.5f32; m * n];
            packed.matmul_acc(&a, m, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = 0.5
                        + (0..k)
                            .map(|t| a[i * k + t] as f64 * w[j * k + t] as f64)
                            .sum::<f64>();
                    let got = out[i * n + j] as f64;
                    assert!(
                        (got - want).abs() < 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt(),
                        "{m}x{n}x{k} [{i},{j}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}
