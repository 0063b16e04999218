//! Binary masks and the shapes around them: run-length encoding in COCO's convention, bounding
//! boxes, outline polygons, and rasterising a prompt's shapes into masks. Detectors produce
//! [`BitMask`]s; the prediction payload carries them as RLE and polygon, computed here once.

use visprompt_domain::{FrameSize, Point, Rle, Shape};

/// One byte per pixel (0 or 1), row-major. A byte rather than a bit per pixel: masks are
/// rewritten pixel by pixel in detectors and overlays, where bit twiddling costs more than memory.
#[derive(Clone, PartialEq, Eq)]
pub struct BitMask {
    width: u32,
    height: u32,
    bits: Vec<u8>,
}

impl std::fmt::Debug for BitMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BitMask({}x{}, area {})",
            self.width,
            self.height,
            self.area()
        )
    }
}

/// An axis-aligned box in pixel coordinates: `min` inclusive, `max` exclusive, so a one-pixel
/// object at (3, 4) has the box (3, 4)–(4, 5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundingBox {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

impl BoundingBox {
    pub fn area(&self) -> f32 {
        (self.x_max - self.x_min).max(0.0) * (self.y_max - self.y_min).max(0.0)
    }
}

impl BitMask {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            bits: vec![0; width as usize * height as usize],
        }
    }

    /// Builds a mask from a predicate over pixel coordinates.
    pub fn from_fn(width: u32, height: u32, mut f: impl FnMut(u32, u32) -> bool) -> Self {
        let mut mask = Self::new(width, height);
        for y in 0..height {
            for x in 0..width {
                if f(x, y) {
                    mask.set(x, y, true);
                }
            }
        }
        mask
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// One byte per pixel, 0 or 1, row-major.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    #[inline]
    pub fn get(&self, x: u32, y: u32) -> bool {
        self.bits[y as usize * self.width as usize + x as usize] != 0
    }

    #[inline]
    pub fn set(&mut self, x: u32, y: u32, on: bool) {
        self.bits[y as usize * self.width as usize + x as usize] = u8::from(on);
    }

    /// Number of pixels set.
    pub fn area(&self) -> u64 {
        self.bits.iter().map(|&b| u64::from(b)).sum()
    }

    /// Sets every pixel that is set in `other` (same size).
    pub fn union_with(&mut self, other: &BitMask) {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "masks of different sizes"
        );
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= *b;
        }
    }

    /// Pixels set in both masks.
    pub fn intersection_area(&self, other: &BitMask) -> u64 {
        self.bits
            .iter()
            .zip(&other.bits)
            .map(|(a, b)| u64::from(a & b))
            .sum()
    }

    /// Intersection over union; 0 when both are empty.
    pub fn iou(&self, other: &BitMask) -> f64 {
        let inter = self.intersection_area(other);
        let union = self.area() + other.area() - inter;
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }

    /// The tight box around the set pixels, `None` when the mask is empty.
    pub fn bounding_box(&self) -> Option<BoundingBox> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        let mut any = false;
        for y in 0..self.height {
            let row = &self.bits[y as usize * self.width as usize..][..self.width as usize];
            if let Some(first) = row.iter().position(|&b| b != 0) {
                let last = row.iter().rposition(|&b| b != 0).unwrap_or(first);
                any = true;
                x0 = x0.min(first as u32);
                x1 = x1.max(last as u32);
                y0 = y0.min(y);
                y1 = y;
            }
        }
        any.then(|| BoundingBox {
            x_min: x0 as f32,
            y_min: y0 as f32,
            x_max: (x1 + 1) as f32,
            y_max: (y1 + 1) as f32,
        })
    }

    /// COCO uncompressed RLE: runs alternate 0s and 1s starting with 0s, over the pixels in
    /// column-major order.
    pub fn to_rle(&self) -> Rle {
        let mut counts = Vec::new();
        let mut current = 0u8;
        let mut run = 0u32;
        for x in 0..self.width as usize {
            for y in 0..self.height as usize {
                let b = self.bits[y * self.width as usize + x];
                if b != current {
                    counts.push(run);
                    run = 0;
                    current = b;
                }
                run += 1;
            }
        }
        counts.push(run);
        let size = FrameSize::new(self.width.max(1), self.height.max(1))
            .expect("a mask is never larger than the frame it came from");
        Rle { size, counts }
    }

    /// Decodes COCO uncompressed RLE; runs past the end are cut off.
    pub fn from_rle(rle: &Rle) -> Self {
        let (w, h) = (rle.size.width(), rle.size.height());
        let mut mask = Self::new(w, h);
        let total = w as u64 * h as u64;
        let mut pos = 0u64;
        for (i, &count) in rle.counts.iter().enumerate() {
            let end = (pos + u64::from(count)).min(total);
            if i % 2 == 1 {
                for p in pos..end {
                    let (x, y) = ((p / u64::from(h)) as u32, (p % u64::from(h)) as u32);
                    mask.set(x, y, true);
                }
            }
            pos = end;
        }
        mask
    }

    /// The outline of the largest 8-connected region as a closed polygon through boundary pixel
    /// positions, simplified so that no pixel of the traced outline is further than one pixel
    /// from it. Empty when the mask is empty.
    pub fn outline(&self) -> Vec<(f32, f32)> {
        let Some(start) = self.start_of_largest_region() else {
            return Vec::new();
        };
        let traced = self.trace_boundary(start);
        simplify_closed(&traced, 1.0)
    }

    /// The top-left-most pixel of the largest 8-connected region.
    fn start_of_largest_region(&self) -> Option<(u32, u32)> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut seen = vec![false; w * h];
        let mut best: Option<((u32, u32), usize)> = None;
        let mut stack = Vec::new();
        for i in 0..w * h {
            if self.bits[i] == 0 || seen[i] {
                continue;
            }
            let first = ((i % w) as u32, (i / w) as u32);
            let mut size = 0usize;
            seen[i] = true;
            stack.push(i);
            while let Some(j) = stack.pop() {
                size += 1;
                let (x, y) = ((j % w) as i64, (j / w) as i64);
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (nx, ny) = (x + dx, y + dy);
                        if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                            continue;
                        }
                        let k = ny as usize * w + nx as usize;
                        if self.bits[k] != 0 && !seen[k] {
                            seen[k] = true;
                            stack.push(k);
                        }
                    }
                }
            }
            if best.is_none_or(|(_, s)| size > s) {
                best = Some((first, size));
            }
        }
        best.map(|(p, _)| p)
    }

    /// Moore-neighbour tracing with Jacob's stopping criterion, clockwise (y grows downwards).
    fn trace_boundary(&self, start: (u32, u32)) -> Vec<(i64, i64)> {
        const DIRS: [(i64, i64); 8] = [
            (-1, 0),
            (-1, -1),
            (0, -1),
            (1, -1),
            (1, 0),
            (1, 1),
            (0, 1),
            (-1, 1),
        ];
        let on = |x: i64, y: i64| {
            x >= 0
                && y >= 0
                && x < self.width as i64
                && y < self.height as i64
                && self.get(x as u32, y as u32)
        };
        let start = (start.0 as i64, start.1 as i64);
        let mut contour = vec![start];
        let mut current = start;
        // The start is the first set pixel in raster order, so its west neighbour is background.
        let mut back = 0usize;
        let initial_back = back;
        let limit = 4 * (self.width as usize * self.height as usize) + 8;
        for _ in 0..limit {
            let mut found = None;
            for k in 1..=8 {
                let d = (back + k) % 8;
                let (nx, ny) = (current.0 + DIRS[d].0, current.1 + DIRS[d].1);
                if on(nx, ny) {
                    let prev = (back + k - 1) % 8;
                    let b = (current.0 + DIRS[prev].0, current.1 + DIRS[prev].1);
                    found = Some(((nx, ny), b));
                    break;
                }
            }
            let Some((next, b)) = found else {
                break; // a single isolated pixel
            };
            // Back at the start about to repeat the first step: the loop is closed. (Jacob's
            // criterion alone misses this on some shapes and would trace the loop again and
            // again until the step limit.)
            if current == start && contour.len() > 2 && next == contour[1] {
                break;
            }
            let rel = (b.0 - next.0, b.1 - next.1);
            back = DIRS.iter().position(|&d| d == rel).unwrap_or(0);
            current = next;
            if current == start && back == initial_back {
                break;
            }
            contour.push(current);
        }
        contour
    }
}

/// Douglas–Peucker on a closed outline: split at the point farthest from the first, simplify both
/// halves as open polylines.
fn simplify_closed(points: &[(i64, i64)], epsilon: f64) -> Vec<(f32, f32)> {
    let pts: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x as f64, y as f64)).collect();
    if pts.len() <= 3 {
        return pts.iter().map(|&(x, y)| (x as f32, y as f32)).collect();
    }
    let far = (1..pts.len())
        .max_by(|&a, &b| {
            dist2(pts[0], pts[a])
                .partial_cmp(&dist2(pts[0], pts[b]))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(pts.len() / 2);
    let mut first: Vec<(f64, f64)> = pts[..=far].to_vec();
    let mut second: Vec<(f64, f64)> = pts[far..].to_vec();
    second.push(pts[0]);
    first = douglas_peucker(&first, epsilon);
    second = douglas_peucker(&second, epsilon);
    first.pop();
    second.pop();
    first
        .into_iter()
        .chain(second)
        .map(|(x, y)| (x as f32, y as f32))
        .collect()
}

fn dist2(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)
}

/// Douglas–Peucker with an explicit work list: outlines of noisy masks have hundreds of
/// thousands of points, too many for recursion on a thread's stack.
fn douglas_peucker(points: &[(f64, f64)], epsilon: f64) -> Vec<(f64, f64)> {
    if points.len() < 3 {
        return points.to_vec();
    }
    let mut keep = vec![false; points.len()];
    keep[0] = true;
    keep[points.len() - 1] = true;
    let mut work = vec![(0usize, points.len() - 1)];
    while let Some((first, last)) = work.pop() {
        if last <= first + 1 {
            continue;
        }
        let (a, b) = (points[first], points[last]);
        let len = dist2(a, b).sqrt();
        let distance = |p: (f64, f64)| {
            if len == 0.0 {
                dist2(a, p).sqrt()
            } else {
                ((b.0 - a.0) * (a.1 - p.1) - (a.0 - p.0) * (b.1 - a.1)).abs() / len
            }
        };
        let (index, max) = (first + 1..last)
            .map(|i| (i, distance(points[i])))
            .fold((first, -1.0), |best, c| if c.1 > best.1 { c } else { best });
        if max > epsilon {
            keep[index] = true;
            work.push((first, index));
            work.push((index, last));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(p, _)| *p)
        .collect()
}

/// The pixels a prompt shape marks on a frame of `size`. Positive points become discs of
/// `point_radius` pixels (a click marks a spot of the object, not one pixel); negative points mark
/// nothing here; detectors that use them read the shape itself.
pub fn rasterize(shape: &Shape, size: FrameSize, point_radius: f64) -> BitMask {
    let (w, h) = (size.width(), size.height());
    match shape {
        Shape::Points(points) => {
            let positives: Vec<Point> =
                points.iter().filter(|(_, p)| *p).map(|(p, _)| *p).collect();
            let r2 = point_radius * point_radius;
            BitMask::from_fn(w, h, |x, y| {
                let (cx, cy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                positives
                    .iter()
                    .any(|p| (p.x - cx).powi(2) + (p.y - cy).powi(2) <= r2)
            })
        }
        Shape::Rectangle { min, max } => BitMask::from_fn(w, h, |x, y| {
            let (cx, cy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            cx >= min.x && cx <= max.x && cy >= min.y && cy <= max.y
        }),
        Shape::Polygon(vertices) => fill_polygon(vertices, w, h),
        Shape::Mask(rle) => BitMask::from_rle(rle),
    }
}

/// Even-odd scanline fill, sampling at pixel centres.
fn fill_polygon(vertices: &[Point], w: u32, h: u32) -> BitMask {
    let mut mask = BitMask::new(w, h);
    let n = vertices.len();
    let mut crossings = Vec::new();
    for y in 0..h {
        let cy = f64::from(y) + 0.5;
        crossings.clear();
        for i in 0..n {
            let (a, b) = (vertices[i], vertices[(i + 1) % n]);
            if (a.y <= cy) != (b.y <= cy) {
                crossings.push(a.x + (cy - a.y) / (b.y - a.y) * (b.x - a.x));
            }
        }
        crossings.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        for pair in crossings.chunks_exact(2) {
            // Pixel x is inside when its centre x + 0.5 lies in [pair0, pair1).
            let from = (pair[0] - 0.5).ceil().max(0.0) as u32;
            let to = ((pair[1] - 0.5).ceil().min(f64::from(w))).max(0.0) as u32;
            for x in from..to {
                mask.set(x, y, true);
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlines_of_noisy_full_frame_masks_stay_bounded_and_need_little_stack() {
        // Pixel noise like an untrained segmenter's: one huge, ragged 8-connected region.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mask = BitMask::from_fn(640, 480, |_, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 100 < 55
        });
        // A small stack: no recursion that grows with the outline's length.
        let outline = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || mask.outline())
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(outline.len() >= 3);
        assert!(
            outline.len() <= 2 * 640 * 480,
            "the trace stops when its loop closes: {} points",
            outline.len()
        );
    }

    fn square(w: u32, h: u32, x0: u32, y0: u32, side: u32) -> BitMask {
        BitMask::from_fn(w, h, |x, y| {
            (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y)
        })
    }

    #[test]
    fn rle_follows_cocos_column_major_convention() {
        // 3x2 mask, set pixels (1,0) and (1,1): column 0 is empty, column 1 full, column 2 empty.
        let mask = BitMask::from_fn(3, 2, |x, _| x == 1);
        assert_eq!(mask.to_rle().counts, vec![2, 2, 2]);
        // A mask starting with a set pixel begins with an empty run of zeros.
        let mask = BitMask::from_fn(2, 2, |x, y| x == 0 && y == 0);
        assert_eq!(mask.to_rle().counts, vec![0, 1, 3]);
    }

    #[test]
    fn rle_round_trips() {
        let mask = BitMask::from_fn(17, 11, |x, y| (x * 7 + y * 3) % 5 < 2);
        assert_eq!(BitMask::from_rle(&mask.to_rle()), mask);
        assert_eq!(mask.to_rle().area(), mask.area());
    }

    #[test]
    fn bounding_box_is_tight_with_exclusive_max() {
        let mask = square(20, 20, 3, 4, 5);
        let b = mask.bounding_box().unwrap();
        assert_eq!((b.x_min, b.y_min, b.x_max, b.y_max), (3.0, 4.0, 8.0, 9.0));
        assert_eq!(BitMask::new(4, 4).bounding_box(), None);
    }

    #[test]
    fn outline_of_a_square_is_its_four_corners() {
        let mask = square(20, 20, 5, 6, 8);
        let mut poly = mask.outline();
        poly.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(
            poly,
            vec![(5.0, 6.0), (5.0, 13.0), (12.0, 6.0), (12.0, 13.0)]
        );
    }

    #[test]
    fn outline_follows_the_largest_region() {
        let mut mask = square(40, 40, 2, 2, 3);
        mask.union_with(&square(40, 40, 20, 20, 10));
        let poly = mask.outline();
        assert!(
            poly.iter().all(|&(x, y)| x >= 20.0 && y >= 20.0),
            "{poly:?}"
        );
        assert!(BitMask::new(5, 5).outline().is_empty());
        let single = BitMask::from_fn(5, 5, |x, y| x == 2 && y == 2);
        assert_eq!(single.outline(), vec![(2.0, 2.0)]);
    }

    #[test]
    fn outline_of_a_disc_stays_close_to_its_boundary() {
        let disc = BitMask::from_fn(64, 64, |x, y| {
            (x as f64 - 32.0).powi(2) + (y as f64 - 30.0).powi(2) <= 15.0f64.powi(2)
        });
        let poly = disc.outline();
        assert!(
            poly.len() >= 8 && poly.len() < 100,
            "{} vertices",
            poly.len()
        );
        for (x, y) in poly {
            let r = ((x as f64 - 32.0).powi(2) + (y as f64 - 30.0).powi(2)).sqrt();
            assert!((r - 15.0).abs() < 1.5, "vertex at radius {r}");
        }
    }

    #[test]
    fn rasterised_polygon_covers_its_area() {
        let size = FrameSize::new(100, 100).unwrap();
        let p = |x, y| Point { x, y };
        let triangle = Shape::Polygon(vec![p(10.0, 10.0), p(90.0, 10.0), p(10.0, 90.0)]);
        let area = rasterize(&triangle, size, 0.0).area() as f64;
        assert!((area - 3200.0).abs() < 100.0, "area {area}");
        let rect = Shape::Rectangle {
            min: p(10.0, 20.0),
            max: p(30.0, 25.0),
        };
        assert_eq!(rasterize(&rect, size, 0.0).area(), 100);
    }

    #[test]
    fn positive_points_become_discs_and_negative_points_nothing() {
        let size = FrameSize::new(50, 50).unwrap();
        let shape = Shape::Points(vec![
            (Point { x: 10.5, y: 10.5 }, true),
            (Point { x: 40.5, y: 40.5 }, false),
        ]);
        let mask = rasterize(&shape, size, 3.0);
        assert!(mask.get(10, 10) && mask.get(12, 10));
        assert!(!mask.get(40, 40));
        assert!(mask.area() > 20 && mask.area() < 40);
    }

    #[test]
    fn iou_of_known_overlaps() {
        let a = square(10, 10, 0, 0, 4);
        let b = square(10, 10, 2, 0, 4);
        // overlap 2x4 = 8, union 16 + 16 - 8 = 24
        assert!((a.iou(&b) - 8.0 / 24.0).abs() < 1e-12);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(BitMask::new(3, 3).iou(&BitMask::new(3, 3)), 0.0);
    }
}
