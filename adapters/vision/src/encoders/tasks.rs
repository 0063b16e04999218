//! How the packed GEMM kernels ([`super::packed_f32`], [`super::bf16`]) split one product over
//! the threads: tasks of (block of rows, group of column panels), enough of them for rayon to
//! balance even when the rows are few, each writing only its own block of the shared output.

use std::ops::Range;

use rayon::prelude::*;

/// Runs `task(rows, panels, out_rows)` in parallel over a split of `m` rows into blocks of
/// `task_rows` and of `panels` column panels into groups. `out_rows` points at the first of
/// the task's rows in `out` (row-major, `out.len() / m` values per row).
///
/// The tasks' (rows, panels) blocks are disjoint: a task may write its rows' columns of its
/// panels through `out_rows`, and nothing else; `out` stays borrowed for the whole call.
pub(crate) fn for_each_task(
    m: usize,
    panels: usize,
    task_rows: usize,
    out: &mut [f32],
    task: impl Fn(Range<usize>, Range<usize>, *mut f32) + Sync + Send,
) {
    if m == 0 || panels == 0 {
        return;
    }
    let n = out.len() / m;
    let row_blocks = m.div_ceil(task_rows);
    let threads = rayon::current_num_threads().max(1);
    let groups = (8 * threads).div_ceil(row_blocks).clamp(1, panels);
    let per_group = panels.div_ceil(groups);
    let groups = panels.div_ceil(per_group);
    let base = Out(out.as_mut_ptr());
    (0..row_blocks * groups).into_par_iter().for_each(|t| {
        let (rb, g) = (t / groups, t % groups);
        let rows = rb * task_rows..((rb + 1) * task_rows).min(m);
        let cols = g * per_group..((g + 1) * per_group).min(panels);
        // SAFETY: rows.start < m, so the offset stays inside `out` (m·n values).
        let at = unsafe { base.at(rows.start * n) };
        task(rows, cols, at)
    });
}

/// The output's base pointer, shared by tasks that write disjoint blocks.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write only their own disjoint blocks of the output (see `for_each_task`), so
// no two threads touch the same element.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer `offset` values on. (A method, so that closures capture the whole `Out`,
    /// which is `Sync`, rather than its raw pointer field.)
    ///
    /// # Safety
    /// `offset` must stay inside the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller keeps `offset` inside the output.
        unsafe { self.0.add(offset) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tasks_cover_every_row_and_panel_once() {
        for (m, panels, task_rows) in [(1, 1, 48), (261, 48, 48), (1029, 12, 64), (70, 2, 64)] {
            let mut out = vec![0f32; m * panels];
            for_each_task(m, panels, task_rows, &mut out, |rows, cols, at| {
                for r in 0..rows.len() {
                    for c in cols.clone() {
                        // SAFETY: this task's rows and panels (one value per panel here).
                        unsafe { *at.add(r * panels + c) += 1.0 };
                    }
                }
            });
            assert!(out.iter().all(|&v| v == 1.0), "{m}x{panels}/{task_rows}");
        }
    }
}
