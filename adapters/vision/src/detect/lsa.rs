//! Rectangular linear sum assignment: the shortest-augmenting-path method (Jonker–Volgenant as
//! Crouse describes it for rectangular problems), with the same scan order and tie-breaking as
//! SciPy's `linear_sum_assignment`, so that equal-cost alternatives resolve to the same pairs as
//! the reference algorithms, which call SciPy.

/// An assignment: `rows[k]` is paired with `cols[k]`, rows ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
}

/// Pairs rows with distinct columns of the `n_rows × n_cols` row-major `matrix` so that the sum
/// of the chosen entries is as large as possible (`maximize`) or as small as possible.
/// `min(n_rows, n_cols)` pairs are returned. Non-finite entries are not allowed (the matrices
/// here are cosine similarities); they make the problem infeasible and return no pairs.
pub fn linear_sum_assignment(
    matrix: &[f64],
    n_rows: usize,
    n_cols: usize,
    maximize: bool,
) -> Assignment {
    assert_eq!(matrix.len(), n_rows * n_cols, "matrix of the stated size");
    let empty = Assignment {
        rows: Vec::new(),
        cols: Vec::new(),
    };
    if n_rows == 0 || n_cols == 0 || matrix.iter().any(|v| !v.is_finite()) {
        return empty;
    }
    let sign = if maximize { -1.0 } else { 1.0 };
    // The solver needs at least as many columns as rows: solve the transpose otherwise.
    let transpose = n_cols < n_rows;
    let (nr, nc) = if transpose {
        (n_cols, n_rows)
    } else {
        (n_rows, n_cols)
    };
    let mut cost = vec![0f64; nr * nc];
    for r in 0..n_rows {
        for c in 0..n_cols {
            let v = sign * matrix[r * n_cols + c];
            if transpose {
                cost[c * nc + r] = v;
            } else {
                cost[r * nc + c] = v;
            }
        }
    }
    let Some(col4row) = solve(&cost, nr, nc) else {
        return empty;
    };
    if transpose {
        // Rows of the transpose are original columns: report by original row, ascending.
        let mut order: Vec<usize> = (0..nr).collect();
        order.sort_by_key(|&i| col4row[i]);
        Assignment {
            rows: order.iter().map(|&i| col4row[i]).collect(),
            cols: order,
        }
    } else {
        Assignment {
            rows: (0..nr).collect(),
            cols: col4row,
        }
    }
}

/// Minimum-cost assignment of every row (`nr <= nc`); returns each row's column.
fn solve(cost: &[f64], nr: usize, nc: usize) -> Option<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let mut u = vec![0f64; nr];
    let mut v = vec![0f64; nc];
    let mut shortest = vec![f64::INFINITY; nc];
    let mut path = vec![NONE; nc];
    let mut col4row = vec![NONE; nr];
    let mut row4col = vec![NONE; nc];
    let mut seen_row = vec![false; nr];
    let mut seen_col = vec![false; nc];
    let mut remaining = vec![0usize; nc];

    for cur_row in 0..nr {
        // Dijkstra-like search for the cheapest augmenting path from `cur_row` to a free column.
        let mut min_val = 0f64;
        let mut n_remaining = nc;
        // Columns are scanned from the last to the first, as SciPy does: with ties, this order
        // decides which column wins.
        for (k, slot) in remaining.iter_mut().enumerate() {
            *slot = nc - k - 1;
        }
        seen_row.fill(false);
        seen_col.fill(false);
        shortest.fill(f64::INFINITY);
        let mut sink = NONE;
        let mut i = cur_row;
        while sink == NONE {
            let mut index = NONE;
            let mut lowest = f64::INFINITY;
            seen_row[i] = true;
            for (k, &j) in remaining[..n_remaining].iter().enumerate() {
                let r = min_val + cost[i * nc + j] - u[i] - v[j];
                if r < shortest[j] {
                    path[j] = i;
                    shortest[j] = r;
                }
                // Prefer an unassigned column among equally short ones: it ends the search.
                if shortest[j] < lowest || (shortest[j] == lowest && row4col[j] == NONE) {
                    lowest = shortest[j];
                    index = k;
                }
            }
            min_val = lowest;
            if index == NONE || !min_val.is_finite() {
                return None;
            }
            let j = remaining[index];
            if row4col[j] == NONE {
                sink = j;
            } else {
                i = row4col[j];
            }
            seen_col[j] = true;
            n_remaining -= 1;
            remaining[index] = remaining[n_remaining];
        }
        // Update the dual variables.
        u[cur_row] += min_val;
        for r in 0..nr {
            if seen_row[r] && r != cur_row {
                u[r] += min_val - shortest[col4row[r]];
            }
        }
        for c in 0..nc {
            if seen_col[c] {
                v[c] -= min_val - shortest[c];
            }
        }
        // Augment along the path back to `cur_row`.
        let mut j = sink;
        loop {
            let r = path[j];
            row4col[j] = r;
            std::mem::swap(&mut col4row[r], &mut j);
            if r == cur_row {
                break;
            }
        }
    }
    Some(col4row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every assignment of `min(n, m)` pairs, by brute force, for small matrices.
    fn best_by_brute_force(m: &[f64], nr: usize, nc: usize, maximize: bool) -> f64 {
        fn go(
            m: &[f64],
            nr: usize,
            nc: usize,
            r: usize,
            used: &mut Vec<bool>,
            left: usize,
        ) -> Vec<f64> {
            if left == 0 || r == nr {
                return if left == 0 { vec![0.0] } else { vec![] };
            }
            let mut out = Vec::new();
            // Either skip this row (only when there are more rows than pairs to make) or pair it.
            if nr - r > left {
                out.extend(go(m, nr, nc, r + 1, used, left));
            }
            for c in 0..nc {
                if !used[c] {
                    used[c] = true;
                    for s in go(m, nr, nc, r + 1, used, left - 1) {
                        out.push(s + m[r * nc + c]);
                    }
                    used[c] = false;
                }
            }
            out
        }
        let all = go(m, nr, nc, 0, &mut vec![false; nc], nr.min(nc));
        all.into_iter()
            .fold(if maximize { f64::MIN } else { f64::MAX }, |a, b| {
                if maximize { a.max(b) } else { a.min(b) }
            })
    }

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 33) as f64) / (1u64 << 31) as f64
    }

    #[test]
    fn finds_the_optimum_of_random_rectangular_problems() {
        let mut s = 7u64;
        for case in 0..200 {
            let nr = 1 + (case % 5);
            let nc = 1 + ((case / 5) % 5);
            // Quantised values make ties common.
            let m: Vec<f64> = (0..nr * nc).map(|_| (lcg(&mut s) * 4.0).floor()).collect();
            for maximize in [false, true] {
                let a = linear_sum_assignment(&m, nr, nc, maximize);
                assert_eq!(a.rows.len(), nr.min(nc));
                let mut cols = a.cols.clone();
                cols.sort();
                cols.dedup();
                assert_eq!(cols.len(), a.cols.len(), "distinct columns");
                assert!(a.rows.windows(2).all(|w| w[0] < w[1]), "rows ascending");
                let total: f64 = a
                    .rows
                    .iter()
                    .zip(&a.cols)
                    .map(|(&r, &c)| m[r * nc + c])
                    .sum();
                assert_eq!(total, best_by_brute_force(&m, nr, nc, maximize), "{m:?}");
            }
        }
    }

    #[test]
    fn ties_resolve_as_scipy_does() {
        // Values printed by scipy.optimize.linear_sum_assignment for the same inputs.
        let a = linear_sum_assignment(&[0.0; 6], 2, 3, false);
        assert_eq!((a.rows, a.cols), (vec![0, 1], vec![0, 1]));
        let a = linear_sum_assignment(&[0.0; 6], 3, 2, false);
        assert_eq!((a.rows, a.cols), (vec![0, 1], vec![0, 1]));
        let a = linear_sum_assignment(&[1.0, 1.0, 0.0, 1.0, 1.0, 1.0], 2, 3, true);
        assert_eq!(a.cols, vec![0, 1]);
    }

    #[test]
    fn empty_and_non_finite_inputs_give_no_pairs() {
        assert!(linear_sum_assignment(&[], 0, 3, true).rows.is_empty());
        assert!(
            linear_sum_assignment(&[1.0, f64::NAN], 1, 2, true)
                .rows
                .is_empty()
        );
    }
}
