//! Patch features of an image and of what the user marked on it.
//!
//! The encoder sees every image at a fixed square input size (512 by default); its patch tokens,
//! L2-normalised, form a grid of feature vectors. A reference mask is brought to the same grid
//! by an antialiased bilinear resize to the input size and a **min-pool** over each patch, so a
//! patch counts as "in the mask" only when every resized pixel of it is non-zero. Per category,
//! the in-mask patches of all reference images are averaged into one prototype vector.

use candle_core::{Device, Tensor};

use crate::encoders::resize::{Filter, resize_aa};
use crate::encoders::{Family, ImageEncoder, Preprocess, RgbImage};

use super::DetectError;

/// L2-normalised patch features on a `rows × cols` grid, row-major, `dim` values per patch.
#[derive(Clone, Debug)]
pub struct PatchFeatures {
    pub rows: usize,
    pub cols: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl PatchFeatures {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn patch(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Builds features from raw rows, normalising each (as `torch.nn.functional.normalize`).
    pub fn from_raw(rows: usize, cols: usize, dim: usize, mut data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols * dim, "features of the stated size");
        for row in data.chunks_exact_mut(dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            for v in row {
                *v /= norm;
            }
        }
        Self {
            rows,
            cols,
            dim,
            data,
        }
    }
}

/// An image encoder with the pre-processing its family uses, at a square input size.
pub struct FeatureEncoder {
    encoder: ImageEncoder,
    preprocess: Preprocess,
    input_size: usize,
    device: Device,
}

impl FeatureEncoder {
    pub fn new(encoder: ImageEncoder, input_size: usize) -> Self {
        let preprocess = match encoder.config().family {
            Family::Dinov3 => Preprocess::dinov3(input_size, input_size),
            Family::Dinov2 | Family::Dinov2WithRegisters => {
                Preprocess::dinov2(input_size, input_size)
            }
        };
        let device = encoder.device().clone();
        Self {
            encoder,
            preprocess,
            input_size,
            device,
        }
    }

    pub fn input_size(&self) -> usize {
        self.input_size
    }

    pub fn patch_size(&self) -> usize {
        self.encoder.config().patch_size
    }

    /// Patches per side (`input_size / patch_size`, rounded down).
    pub fn grid(&self) -> usize {
        self.input_size / self.patch_size()
    }

    pub fn encoder(&self) -> &ImageEncoder {
        &self.encoder
    }

    /// The image's patch features.
    pub fn encode(&self, image: RgbImage<'_>) -> Result<PatchFeatures, DetectError> {
        let x = self.preprocess.tensor(&[image], &self.device)?;
        let x = x.to_dtype(self.encoder.dtype())?;
        let feats: Tensor = self.encoder.patch_features(&x)?;
        let (_, rows, cols, dim) = feats.dims4()?;
        let data: Vec<f32> = feats
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        Ok(PatchFeatures::from_raw(rows, cols, dim, data))
    }
}

/// A binary mask: `data[y * width + x] != 0` marks the object.
#[derive(Clone, Copy, Debug)]
pub struct MaskView<'a> {
    pub width: usize,
    pub height: usize,
    pub data: &'a [u8],
}

/// The mask as 0/1 values, antialiased-bilinear resized to `input_size²` (the encoder's input).
fn resized_to_input(mask: MaskView<'_>, input_size: usize) -> Vec<f32> {
    let plane: Vec<f32> = mask.data.iter().map(|&v| f32::from(v != 0)).collect();
    resize_aa(
        &plane,
        1,
        (mask.height, mask.width),
        (input_size, input_size),
        Filter::Bilinear,
    )
}

/// The mask on the patch grid: antialiased bilinear resize to `input_size²`, then the minimum
/// over each `patch × patch` block (computed as `1 − max(1 − x)` in `f32`, as the reference does,
/// so tiny positive values round to "outside"). Returns `grid²` values; a patch is in the mask
/// when its value is non-zero.
pub fn pool_mask(mask: MaskView<'_>, input_size: usize, patch: usize) -> Vec<f32> {
    let resized = resized_to_input(mask, input_size);
    let grid = input_size / patch;
    let mut out = vec![0f32; grid * grid];
    for gy in 0..grid {
        for gx in 0..grid {
            let mut max_inv = f32::MIN;
            for y in gy * patch..(gy + 1) * patch {
                for &v in &resized[y * input_size + gx * patch..y * input_size + (gx + 1) * patch] {
                    max_inv = max_inv.max(1.0 - v);
                }
            }
            out[gy * grid + gx] = 1.0 - max_inv;
        }
    }
    out
}

/// What one category learned from the reference images.
#[derive(Clone, Debug)]
pub struct CategoryReference {
    /// Category id (the order of categories is ascending id).
    pub id: u32,
    /// Every reference patch of every image the category appears on, `[n × dim]`, zero rows
    /// appended so that all categories have the same `n`.
    pub ref_embeddings: Vec<f32>,
    /// The pooled mask value of each of those patches (0 for padding).
    pub ref_mask: Vec<f32>,
    /// Mean of the in-mask patches, re-normalised; `None` when no patch lies fully inside.
    pub prototype: Option<Vec<f32>>,
}

impl CategoryReference {
    pub fn n_ref(&self, dim: usize) -> usize {
        self.ref_embeddings.len() / dim
    }

    /// Indices of in-mask reference patches, ascending.
    pub fn in_mask(&self) -> Vec<usize> {
        self.ref_mask
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, _)| i)
            .collect()
    }
}

/// All categories' reference features.
#[derive(Clone, Debug)]
pub struct ReferenceFeatures {
    pub dim: usize,
    pub grid: usize,
    pub categories: Vec<CategoryReference>,
}

/// One reference image: its features and, per category, the pooled masks drawn on it (several
/// masks of one category are merged).
pub struct ReferenceShot<'a> {
    pub features: &'a PatchFeatures,
    /// `(category id, pooled mask)`; see [`pool_mask`].
    pub pooled_masks: Vec<(u32, Vec<f32>)>,
}

/// Per category on one image: the union of its pixel masks, pooled onto the patch grid with
/// `pool` ([`pool_mask`], or [`pool_mask_by_coverage`]). Categories in first-seen order.
pub fn pool_category_masks(
    masks: &[(u32, MaskView<'_>)],
    input_size: usize,
    patch: usize,
    pool: fn(MaskView<'_>, usize, usize) -> Vec<f32>,
) -> Vec<(u32, Vec<f32>)> {
    let mut ids: Vec<u32> = Vec::new();
    for (id, _) in masks {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    ids.into_iter()
        .map(|id| {
            let mut merged: Option<(usize, usize, Vec<u8>)> = None;
            for (_, m) in masks.iter().filter(|(c, _)| *c == id) {
                match &mut merged {
                    None => merged = Some((m.width, m.height, m.data.to_vec())),
                    Some((_, _, data)) => {
                        for (d, s) in data.iter_mut().zip(m.data) {
                            *d = (*d).max(*s);
                        }
                    }
                }
            }
            let (width, height, data) = merged.expect("at least one mask per id");
            let view = MaskView {
                width,
                height,
                data: &data,
            };
            (id, pool(view, input_size, patch))
        })
        .collect()
}

/// Collects per category the reference patches and prototype, as the reference's masked feature
/// extractor does: categories sorted by id; each category's patches are the full grids of the
/// images it appears on, in image order; shorter lists padded with zero rows.
pub fn reference_features(shots: &[ReferenceShot<'_>]) -> ReferenceFeatures {
    let dim = shots.first().map_or(0, |s| s.features.dim);
    let grid = shots.first().map_or(0, |s| s.features.rows);
    let mut ids: Vec<u32> = shots
        .iter()
        .flat_map(|s| s.pooled_masks.iter().map(|(id, _)| *id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut categories: Vec<CategoryReference> = ids
        .iter()
        .map(|&id| {
            let mut ref_embeddings = Vec::new();
            let mut ref_mask = Vec::new();
            let mut sum = vec![0f32; dim];
            let mut count = 0usize;
            for shot in shots {
                for (_, pooled) in shot.pooled_masks.iter().filter(|(c, _)| *c == id) {
                    ref_embeddings.extend_from_slice(&shot.features.data);
                    ref_mask.extend_from_slice(pooled);
                    for (i, v) in pooled.iter().enumerate() {
                        if *v != 0.0 {
                            for (s, f) in sum.iter_mut().zip(shot.features.patch(i)) {
                                *s += f;
                            }
                            count += 1;
                        }
                    }
                }
            }
            let prototype = (count > 0).then(|| {
                let mean: Vec<f32> = sum.iter().map(|s| s / count as f32).collect();
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
                mean.iter().map(|v| v / norm).collect()
            });
            CategoryReference {
                id,
                ref_embeddings,
                ref_mask,
                prototype,
            }
        })
        .collect();
    let longest = categories
        .iter()
        .map(|c| c.ref_mask.len())
        .max()
        .unwrap_or(0);
    for c in &mut categories {
        let pad = longest - c.ref_mask.len();
        c.ref_mask.extend(std::iter::repeat_n(0.0, pad));
        c.ref_embeddings.extend(std::iter::repeat_n(0.0, pad * dim));
    }
    ReferenceFeatures {
        dim,
        grid,
        categories,
    }
}

/// A fallback for masks too small to cover one patch completely: patches at least half covered
/// (by the mean of the resized mask), or else the single most covered patch. The reference fails
/// on such masks; a user who marked a small object expects it to be found.
pub fn pool_mask_by_coverage(mask: MaskView<'_>, input_size: usize, patch: usize) -> Vec<f32> {
    let resized = resized_to_input(mask, input_size);
    let grid = input_size / patch;
    let mut cover = vec![0f32; grid * grid];
    for (g, c) in cover.iter_mut().enumerate() {
        let (gy, gx) = (g / grid, g % grid);
        let mut sum = 0f32;
        for y in gy * patch..(gy + 1) * patch {
            sum += resized[y * input_size + gx * patch..y * input_size + (gx + 1) * patch]
                .iter()
                .sum::<f32>();
        }
        *c = sum / (patch * patch) as f32;
    }
    let mut out: Vec<f32> = cover.iter().map(|&c| f32::from(c >= 0.5)).collect();
    if out.iter().all(|&v| v == 0.0)
        && let Some((best, &c)) = cover
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        && c > 0.0
    {
        out[best] = 1.0;
    }
    out
}
