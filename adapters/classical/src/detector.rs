//! Detection on one frame: score every 4x4-pixel cell by which fitted class best explains its
//! 12x12-pixel neighbourhood, keep the cells where a label's probability reaches the threshold,
//! split them into instances, rank them on the cell grid, and refine each instance's edge pixel by
//! pixel from colour, best first, until `max_detections` are kept. Only kept instances cost a
//! frame-sized mask.

use visprompt_domain::ClassicalParams;
use visprompt_runtime::{
    BitMask, BoundingBox, Detection, Detector, DetectorError, Reference, RgbImage,
};

use crate::features::{COLOUR_BINS, FeatureCodes, colour_of};
use crate::grid::{CellMask, box3_sum};
use crate::model::{FittedModels, fit};

/// Side of a scoring cell in pixels.
const CELL: usize = 4;

/// Turns a difference in mean log-likelihood per pixel into a difference in log-odds. A
/// neighbourhood has 144 pixels but they are far from independent; counting them as a handful
/// keeps the probabilities from saturating at the slightest preference.
const EVIDENCE_SCALE: f32 = 4.0;

/// Log-odds in favour of the background before any evidence: what no class explains is not an
/// object, and most of any frame is background.
const BACKGROUND_PRIOR: f32 = 1.0;

/// The weights-free detector, fitted from annotated references; see the crate docs for the
/// method.
pub struct ClassicalDetector {
    params: ClassicalParams,
    models: FittedModels,
    /// Per label, per colour bin: does that colour alone make a pixel more likely the label's
    /// than the background's? Used only on the edges of instances, where the cells have already
    /// decided which label it is; comparing with the other labels too would lose the edges of
    /// objects that differ from each other by texture alone.
    label_colours: Vec<Vec<bool>>,
    /// Reused between frames.
    features: FeatureCodes,
}

impl ClassicalDetector {
    /// Fits the detector. Fails with `InvalidReferences` when no annotation marks any pixel of a
    /// frame of its own size.
    pub fn fit(params: ClassicalParams, references: &[Reference]) -> Result<Self, DetectorError> {
        let models = fit(references)?;
        let label_colours = models
            .labels
            .iter()
            .map(|label| {
                (0..COLOUR_BINS)
                    .map(|c| {
                        label.class.colour_likelihood[c] > models.background.colour_likelihood[c]
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            params,
            models,
            label_colours,
            features: FeatureCodes::default(),
        })
    }

    /// Per label (in the fitted order), the probability of the label for every cell.
    fn label_probabilities(&self, width: usize, height: usize) -> Vec<Vec<f32>> {
        let (cw, ch) = (width.div_ceil(CELL), height.div_ceil(CELL));
        let codes = &self.features.codes;
        // Cells on the right and bottom edges may be cut short by the frame.
        let span = |cell: usize, extent: usize| (extent - cell * CELL).min(CELL) as f32;
        let pixel_counts: Vec<f32> = (0..cw * ch)
            .map(|cell| span(cell % cw, width) * span(cell / cw, height))
            .collect();
        let window_counts = box3_sum(&pixel_counts, cw, ch);
        let classes = std::iter::once(&self.models.background)
            .chain(self.models.labels.iter().map(|l| &l.class));
        // Log-odds of every class for every cell, background first.
        let logits: Vec<Vec<f32>> = classes
            .enumerate()
            .map(|(k, class)| {
                let table = &class.code_log_likelihood;
                let mut sums = vec![0.0f32; cw * ch];
                for y in 0..height {
                    let row = &codes[y * width..(y + 1) * width];
                    let cells = &mut sums[(y / CELL) * cw..(y / CELL + 1) * cw];
                    for (x, &code) in row.iter().enumerate() {
                        cells[x / CELL] += table[code as usize];
                    }
                }
                let prior = if k == 0 { BACKGROUND_PRIOR } else { 0.0 };
                box3_sum(&sums, cw, ch)
                    .iter()
                    .zip(&window_counts)
                    .map(|(sum, n)| EVIDENCE_SCALE * sum / n + prior)
                    .collect()
            })
            .collect();
        let mut probabilities = vec![vec![0.0f32; cw * ch]; self.models.labels.len()];
        for cell in 0..cw * ch {
            let top = logits.iter().map(|l| l[cell]).fold(f32::MIN, f32::max);
            let total: f32 = logits.iter().map(|l| (l[cell] - top).exp()).sum();
            for (j, p) in probabilities.iter_mut().enumerate() {
                p[cell] = (logits[j + 1][cell] - top).exp() / total;
            }
        }
        probabilities
    }

    /// Visits every pixel of one instance: inner cells whole, and on the cells along its edge
    /// (and one cell beyond) the pixels whose colour belongs to the label rather than the
    /// background, except in cells another label claims. Only the instance's own cells are
    /// visited, so an instance can be measured, and rejected, without a frame-sized mask.
    fn for_each_pixel(
        &self,
        label: usize,
        outline: &Outline,
        claimed_by_others: impl Fn(usize) -> bool,
        width: usize,
        height: usize,
        mut visit: impl FnMut(usize, usize),
    ) {
        let colours = &self.label_colours[label];
        let codes = &self.features.codes;
        let grid_width = width.div_ceil(CELL);
        let Outline {
            region,
            inner,
            reach,
            origin: (left, top),
        } = outline;
        for ry in 0..region.height {
            for rx in 0..region.width {
                let local = ry * region.width + rx;
                let (cx, cy) = (rx + left, ry + top);
                if !reach.cells[local]
                    || (!region.cells[local] && claimed_by_others(cy * grid_width + cx))
                {
                    continue;
                }
                let whole = inner.cells[local];
                for y in cy * CELL..((cy + 1) * CELL).min(height) {
                    for x in cx * CELL..((cx + 1) * CELL).min(width) {
                        if whole || colours[colour_of(codes[y * width + x])] {
                            visit(x, y);
                        }
                    }
                }
            }
        }
    }
}

/// One instance's cells cut out of the grid around it, with the erosion (cells kept whole) and
/// dilation (cells refined pixel by pixel) that refinement needs.
struct Outline {
    region: CellMask,
    inner: CellMask,
    reach: CellMask,
    /// The cut-out's top-left cell in the frame's grid.
    origin: (usize, usize),
}

impl Outline {
    fn around(cells: &[usize], grid_width: usize, grid_height: usize) -> Self {
        let (region, origin) = CellMask::around(cells, grid_width, grid_height);
        Self {
            inner: region.erode(),
            reach: region.dilate(),
            region,
            origin,
        }
    }
}

/// The area and tight box of a set of pixels, gathered one pixel at a time.
struct Extent {
    area: u64,
    x_min: usize,
    y_min: usize,
    x_max: usize,
    y_max: usize,
}

impl Extent {
    fn new() -> Self {
        Self {
            area: 0,
            x_min: usize::MAX,
            y_min: usize::MAX,
            x_max: 0,
            y_max: 0,
        }
    }

    fn add(&mut self, x: usize, y: usize) {
        self.area += 1;
        self.x_min = self.x_min.min(x);
        self.y_min = self.y_min.min(y);
        self.x_max = self.x_max.max(x);
        self.y_max = self.y_max.max(y);
    }

    /// The box as [`BitMask::bounding_box`] gives it (maximum exclusive); `None` when empty.
    fn bounding_box(&self) -> Option<BoundingBox> {
        (self.area > 0).then(|| BoundingBox {
            x_min: self.x_min as f32,
            y_min: self.y_min as f32,
            x_max: (self.x_max + 1) as f32,
            y_max: (self.y_max + 1) as f32,
        })
    }
}

impl Detector for ClassicalDetector {
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        if width == 0 || height == 0 {
            return Ok(Vec::new());
        }
        self.features.compute(image);
        let probabilities = self.label_probabilities(width, height);
        let (cw, ch) = (width.div_ceil(CELL), height.div_ceil(CELL));
        let threshold = self.params.confidence_threshold as f32;
        let frame_pixels = (width * height) as f64;
        let cap = self.params.max_detections as usize;
        // How many labels reach the threshold in each cell, counted once for the frame: another
        // label claims a cell when the count is more than the label's own vote there.
        let mut claims = vec![0u32; cw * ch];
        for probability in &probabilities {
            for (count, &p) in claims.iter_mut().zip(probability) {
                *count += u32::from(p >= threshold);
            }
        }
        let mut detections = Vec::new();
        for (j, label) in self.models.labels.iter().enumerate() {
            let probability = &probabilities[j];
            let candidates = CellMask {
                width: cw,
                height: ch,
                cells: probability.iter().map(|&p| p >= threshold).collect(),
            };
            let claimed_by_others = |cell: usize| claims[cell] > u32::from(candidates.cells[cell]);
            // `min_area` is a share of the smallest annotated instance: smaller finds are noise.
            let min_pixels = self.params.min_area * label.smallest_area_share * frame_pixels;
            // Scores come from the cell grid alone, so instances can be ranked before any pixel is
            // looked at and refinement can stop once the cap is reached. Dropping the ones too
            // small to keep later, in rank order, keeps the same instances as refining them all
            // would: the sort is stable, so ties keep the order of the components.
            let mut ranked: Vec<(f32, Vec<usize>)> = candidates
                .close()
                .components()
                .into_iter()
                // The refined mask lies within the region grown by one cell, at most nine times
                // its cells: a component too small even so needs no refining.
                .filter(|cells| ((9 * cells.len() * CELL * CELL) as f64) >= min_pixels)
                .map(|cells| {
                    let score =
                        cells.iter().map(|&c| probability[c]).sum::<f32>() / cells.len() as f32;
                    (score, cells)
                })
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut accepted = 0;
            for (score, cells) in ranked {
                if accepted == cap {
                    break;
                }
                let outline = Outline::around(&cells, cw, ch);
                let mut extent = Extent::new();
                self.for_each_pixel(j, &outline, claimed_by_others, width, height, |x, y| {
                    extent.add(x, y)
                });
                let Some(bbox) = extent.bounding_box() else {
                    continue;
                };
                if (extent.area as f64) < min_pixels {
                    continue;
                }
                // Only an instance that is kept gets a frame-sized mask.
                let mut mask = BitMask::new(width as u32, height as u32);
                self.for_each_pixel(j, &outline, claimed_by_others, width, height, |x, y| {
                    mask.set(x as u32, y as u32, true)
                });
                detections.push(Detection {
                    label_id: label.label_id,
                    score,
                    bbox,
                    mask,
                });
                accepted += 1;
            }
        }
        Ok(detections)
    }
}
