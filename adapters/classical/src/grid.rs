//! Binary maps on the coarse cell grid the detector scores: 3x3 morphology and 8-connected
//! components. Kept apart from the scoring so each step can be tested on small hand-drawn grids.

/// A binary map over `width` x `height` cells, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CellMask {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) cells: Vec<bool>,
}

impl CellMask {
    pub(crate) fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            cells: vec![false; width * height],
        }
    }

    pub(crate) fn get(&self, x: usize, y: usize) -> bool {
        self.cells[y * self.width + x]
    }

    /// A cell is set when any cell of its 3x3 neighbourhood is.
    pub(crate) fn dilate(&self) -> Self {
        self.neighbourhood(|any, _| any)
    }

    /// A cell stays set when every cell of its 3x3 neighbourhood inside the grid is; the border
    /// does not erode, so an object cut by the frame edge keeps its edge.
    pub(crate) fn erode(&self) -> Self {
        self.neighbourhood(|_, all| all)
    }

    /// Dilation then erosion: fills gaps and holes of one cell without growing the shape. It
    /// works on a copy with a one-cell empty margin, so that a shape one cell from the frame edge
    /// is not glued to it while a shape touching the edge keeps its edge.
    pub(crate) fn close(&self) -> Self {
        let (w, h) = (self.width, self.height);
        let mut padded = Self::new(w + 2, h + 2);
        for y in 0..h {
            for x in 0..w {
                padded.cells[(y + 1) * (w + 2) + x + 1] = self.get(x, y);
            }
        }
        let closed = padded.dilate().erode();
        let mut out = Self::new(w, h);
        for y in 0..h {
            for x in 0..w {
                out.cells[y * w + x] = closed.get(x + 1, y + 1);
            }
        }
        out
    }

    /// The 3x3 neighbourhood clipped to the grid is the product of a row and a column window,
    /// so both operations run as two one-dimensional passes.
    fn neighbourhood(&self, keep: impl Fn(bool, bool) -> bool) -> Self {
        let (w, h) = (self.width, self.height);
        let reduce = |window: &mut dyn Iterator<Item = bool>| {
            let (mut any, mut all) = (false, true);
            for on in window {
                any |= on;
                all &= on;
            }
            keep(any, all)
        };
        let mut rows = vec![false; w * h];
        for y in 0..h {
            let row = &self.cells[y * w..(y + 1) * w];
            for x in 0..w {
                let window = &row[x.saturating_sub(1)..(x + 2).min(w)];
                rows[y * w + x] = reduce(&mut window.iter().copied());
            }
        }
        let mut out = Self::new(w, h);
        for y in 0..h {
            let (from, to) = (y.saturating_sub(1), (y + 2).min(h));
            for x in 0..w {
                out.cells[y * w + x] = reduce(&mut (from..to).map(|ny| rows[ny * w + x]));
            }
        }
        out
    }

    /// The cells listed (indices into a `width`-wide grid of `height` rows) as a mask of their
    /// bounding box grown by one cell and clipped to the grid, with the box's top-left corner.
    /// Morphology on it matches morphology on the whole grid, at the cost of the box alone.
    pub(crate) fn around(cells: &[usize], width: usize, height: usize) -> (Self, (usize, usize)) {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for &cell in cells {
            let (x, y) = (cell % width, cell / width);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
        let (left, top) = (x0.saturating_sub(1), y0.saturating_sub(1));
        let (right, bottom) = ((x1 + 2).min(width), (y1 + 2).min(height));
        let mut region = Self::new(right - left, bottom - top);
        for &cell in cells {
            let (x, y) = (cell % width - left, cell / width - top);
            region.cells[y * region.width + x] = true;
        }
        (region, (left, top))
    }

    /// The 8-connected regions of set cells, each as its cell indices.
    pub(crate) fn components(&self) -> Vec<Vec<usize>> {
        let (w, h) = (self.width, self.height);
        let mut seen = vec![false; w * h];
        let mut regions = Vec::new();
        let mut stack = Vec::new();
        for start in 0..w * h {
            if !self.cells[start] || seen[start] {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let mut region = Vec::new();
            while let Some(i) = stack.pop() {
                region.push(i);
                let (x, y) = (i % w, i / w);
                for ny in y.saturating_sub(1)..(y + 2).min(h) {
                    for nx in x.saturating_sub(1)..(x + 2).min(w) {
                        let j = ny * w + nx;
                        if self.cells[j] && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            regions.push(region);
        }
        regions
    }
}

/// Sums of `values` (a `width` x `height` grid) over each cell's 3x3 neighbourhood, clipped at
/// the border; two separable passes.
pub(crate) fn box3_sum(values: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut rows = vec![0.0f32; values.len()];
    for y in 0..height {
        let row = &values[y * width..(y + 1) * width];
        for x in 0..width {
            let from = x.saturating_sub(1);
            let to = (x + 2).min(width);
            rows[y * width + x] = row[from..to].iter().sum();
        }
    }
    let mut out = vec![0.0f32; values.len()];
    for y in 0..height {
        let from = y.saturating_sub(1);
        let to = (y + 2).min(height);
        for x in 0..width {
            out[y * width + x] = (from..to).map(|ny| rows[ny * width + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> CellMask {
        let mut mask = CellMask::new(rows[0].len(), rows.len());
        for (y, row) in rows.iter().enumerate() {
            for (x, c) in row.chars().enumerate() {
                mask.cells[y * mask.width + x] = c == '#';
            }
        }
        mask
    }

    fn check(actual: CellMask, expected: &[&str]) {
        assert_eq!(actual, grid(expected));
    }

    #[test]
    fn closing_fills_a_one_cell_hole_and_keeps_the_outline() {
        let mask = grid(&[
            "......", //
            ".###..", ".#.#..", ".###..", "......",
        ]);
        check(
            mask.close(),
            &[
                "......", //
                ".###..", ".###..", ".###..", "......",
            ],
        );
    }

    #[test]
    fn closing_keeps_a_shape_on_the_frame_edge_and_off_it() {
        let mask = grid(&[
            "##.....", //
            "##...#.", "##...#.",
        ]);
        check(mask.close(), &["##.....", "##...#.", "##...#."]);
    }

    #[test]
    fn erosion_keeps_cells_on_the_frame_border() {
        let mask = grid(&[
            "###...", //
            "###...", "###...",
        ]);
        check(
            mask.erode(),
            &[
                "##....", //
                "##....", "##....",
            ],
        );
    }

    #[test]
    fn diagonal_neighbours_are_one_component() {
        let mask = grid(&[
            "#.....", //
            ".#...#", "....##",
        ]);
        let mut sizes: Vec<usize> = mask.components().iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 3]);
    }

    #[test]
    fn a_region_cut_out_around_its_cells_erodes_and_dilates_like_the_whole_grid() {
        let whole = grid(&[
            "........", //
            "..###...", "..####..", "..###...", "........", "#.......",
        ]);
        let (w, h) = (whole.width, whole.height);
        for cells in whole.components() {
            let (region, (left, top)) = CellMask::around(&cells, w, h);
            let mut alone = CellMask::new(w, h);
            for &c in &cells {
                alone.cells[c] = true;
            }
            let (eroded, dilated) = (alone.erode(), alone.dilate());
            let (local_eroded, local_dilated) = (region.erode(), region.dilate());
            for y in 0..region.height {
                for x in 0..region.width {
                    assert_eq!(local_eroded.get(x, y), eroded.get(x + left, y + top));
                    assert_eq!(local_dilated.get(x, y), dilated.get(x + left, y + top));
                }
            }
            // Nothing of the dilation falls outside the cut-out.
            let inside = local_dilated.cells.iter().filter(|&&c| c).count();
            assert_eq!(inside, dilated.cells.iter().filter(|&&c| c).count());
        }
    }

    #[test]
    fn box_sums_clip_at_the_border() {
        let values = vec![1.0; 12];
        let sums = box3_sum(&values, 4, 3);
        assert_eq!(sums[0], 4.0);
        assert_eq!(sums[5], 9.0);
        assert_eq!(sums[4], 6.0);
    }
}
