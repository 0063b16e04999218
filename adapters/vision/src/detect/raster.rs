//! Pixel-grid helpers for the detectors: a binary mask type and PyTorch's plain bilinear and
//! nearest resizes (`align_corners=False`, no antialiasing), which the reference uses to bring
//! similarity maps and masks to image size.

/// A binary mask, one byte per pixel (0 or 1), row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryMask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl BinaryMask {
    /// `f(i)` for pixel index `i = y · width + x`.
    pub fn from_fn(width: usize, height: usize, mut f: impl FnMut(usize) -> bool) -> Self {
        Self {
            width,
            height,
            data: (0..width * height).map(|i| u8::from(f(i))).collect(),
        }
    }

    pub fn area(&self) -> usize {
        self.data.iter().map(|&v| usize::from(v)).sum()
    }

    /// Indices of the pixels that are set.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.data
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0)
            .map(|(i, _)| i)
    }

    /// Tight box with inclusive pixel indices `(x1, y1, x2, y2)`; `None` when empty.
    pub fn bounds(&self) -> Option<(usize, usize, usize, usize)> {
        let mut b: Option<(usize, usize, usize, usize)> = None;
        for (y, row) in self.data.chunks_exact(self.width).enumerate() {
            let Some(first) = row.iter().position(|&v| v != 0) else {
                continue;
            };
            let last = row.iter().rposition(|&v| v != 0).expect("a set pixel");
            b = Some(match b {
                None => (first, y, last, y),
                Some((x1, y1, x2, _)) => (x1.min(first), y1, x2.max(last), y),
            });
        }
        b
    }

    pub fn intersection(&self, other: &BinaryMask) -> usize {
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| usize::from(a & b))
            .sum()
    }

    /// Nearest-neighbour resize (PyTorch `mode="nearest"`).
    pub fn resize_nearest(&self, height: usize, width: usize) -> BinaryMask {
        let sx = self.width as f32 / width as f32;
        let sy = self.height as f32 / height as f32;
        let xs: Vec<usize> = (0..width)
            .map(|x| ((x as f32 * sx).floor() as usize).min(self.width - 1))
            .collect();
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            let sy_i = ((y as f32 * sy).floor() as usize).min(self.height - 1);
            let row = &self.data[sy_i * self.width..(sy_i + 1) * self.width];
            data.extend(xs.iter().map(|&x| row[x]));
        }
        BinaryMask {
            width,
            height,
            data,
        }
    }
}

/// Source index pair and weights of PyTorch's bilinear interpolation along one axis.
fn bilinear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|d| {
            let src = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(input - 1);
            let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
            let l1 = src - i0 as f32;
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Bilinear resize of one `height × width` plane (`align_corners=False`, no antialiasing).
pub fn resize_bilinear(
    data: &[f32],
    (height, width): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    assert_eq!(data.len(), height * width, "plane of the stated size");
    let tx = bilinear_taps(width, out_w);
    let ty = bilinear_taps(height, out_h);
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, wy0, wy1) in &ty {
        let r0 = &data[y0 * width..(y0 + 1) * width];
        let r1 = &data[y1 * width..(y1 + 1) * width];
        out.extend(tx.iter().map(|&(x0, x1, wx0, wx1)| {
            wy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + wy1 * (wx0 * r1[x0] + wx1 * r1[x1])
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_pixel_indices() {
        let m = BinaryMask::from_fn(5, 4, |i| matches!(i, 6 | 7 | 13));
        assert_eq!(m.bounds(), Some((1, 1, 3, 2)));
        assert_eq!(BinaryMask::from_fn(3, 3, |_| false).bounds(), None);
    }

    #[test]
    fn bilinear_matches_torch_on_a_2x2_upsample() {
        // torch.nn.functional.interpolate(tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4),
        // mode="bilinear", align_corners=False)[0, 0, 0] == [0.0, 0.25, 0.75, 1.0]
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], (2, 2), (4, 4));
        assert_eq!(&out[..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&out[12..], &[2.0, 2.25, 2.75, 3.0]);
    }

    #[test]
    fn nearest_doubles_pixels() {
        let m = BinaryMask::from_fn(2, 1, |i| i == 1);
        assert_eq!(m.resize_nearest(1, 4).data, vec![0, 0, 1, 1]);
    }
}
