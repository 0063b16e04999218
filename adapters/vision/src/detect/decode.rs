//! From point prompts to scored masks with the promptable segmenter, as the reference's SAM
//! decoder does in point mode:
//!
//! 1. every foreground point is its own prompt, `[point, background points...]`, with the
//!    background points passed as padding (label −1, as the reference passes them; SAM then
//!    ignores their position);
//! 2. one mask per prompt (SAM-HQ: the best of the three multimask outputs plus the HQ mask);
//!    empty masks are dropped;
//! 3. optionally a refinement pass with the same points, the mask's box and its low-resolution
//!    logits;
//! 4. score = mean of the similarity map (bilinearly resized to the image) over the mask × the
//!    predicted IoU; scores at or below the threshold become 0 (removed by post-processing);
//! 5. the first [`MAX_MASKS_PER_CATEGORY`] masks are kept. Prompts are decoded in order and
//!    decoding stops once that many non-empty masks are in hand: the reference decodes every
//!    prompt and then truncates, which gives the same masks for more work.
//!
//! Images with a side above 1024 px are segmented at a downscaled size and the masks scaled
//! back (nearest), as the reference does.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::encoders::RgbImage;
use crate::encoders::profiling::time;
use crate::segmenters::{ImageEmbedding, Prompts, Sam};

use super::DetectError;
use super::prompts::CategoryPrompts;
use super::raster::{BinaryMask, resize_bilinear};

/// Masks per category kept after decoding.
pub const MAX_MASKS_PER_CATEGORY: usize = 40;
/// Longest image side the segmenter works at.
pub const MAX_IMAGE_SIDE: usize = 1024;
/// Prompts decoded (and upsampled) together; bounds the memory of the full-size logits.
const CHUNK: usize = 16;

/// A decoded candidate before post-processing.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub category: u32,
    pub score: f32,
    pub mask: BinaryMask,
}

/// An image prepared for decoding: possibly downscaled, embedded once.
pub struct PreparedImage {
    pub embedding: ImageEmbedding,
    /// (height, width) the segmenter works at.
    pub work_size: (usize, usize),
    /// (height, width) of the original image.
    pub original_size: (usize, usize),
    /// work / original (1 when not downscaled).
    pub scale: f32,
}

/// Downscales an image whose longest side exceeds `max_side` (bilinear, no antialias, the
/// values truncated back to 8 bits as the reference's `.to(uint8)` does).
pub fn downscale(image: RgbImage<'_>, max_side: usize) -> Option<(Vec<u8>, usize, usize, f32)> {
    let (h, w) = (image.height, image.width);
    let longest = h.max(w);
    if longest <= max_side {
        return None;
    }
    let scale = max_side as f64 / longest as f64;
    let (nh, nw) = ((h as f64 * scale) as usize, (w as f64 * scale) as usize);
    let mut planes = vec![0f32; 3 * h * w];
    for (i, px) in image.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            planes[c * h * w + i] = f32::from(px[c]);
        }
    }
    let mut out = vec![0u8; nh * nw * 3];
    for c in 0..3 {
        let plane = resize_bilinear(&planes[c * h * w..(c + 1) * h * w], (h, w), (nh, nw));
        for (i, v) in plane.iter().enumerate() {
            out[i * 3 + c] = v.clamp(0.0, 255.0) as u8;
        }
    }
    Some((out, nh, nw, scale as f32))
}

/// Embeds `image` for decoding.
pub fn prepare(sam: &Sam, image: RgbImage<'_>) -> Result<PreparedImage, DetectError> {
    let original_size = (image.height, image.width);
    match downscale(image, MAX_IMAGE_SIDE) {
        None => Ok(PreparedImage {
            embedding: sam.embed_image(image.data, image.height, image.width)?,
            work_size: original_size,
            original_size,
            scale: 1.0,
        }),
        Some((data, nh, nw, scale)) => Ok(PreparedImage {
            embedding: sam.embed_image(&data, nh, nw)?,
            work_size: (nh, nw),
            original_size,
            scale,
        }),
    }
}

/// Decoding options.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    pub confidence_threshold: f32,
    pub mask_refinement: bool,
}

/// One mask per prompt, in prompt order: (full-size binary masks, low-res logits [B,1,l,l],
/// IoU [B]). Prompts are decoded in chunks: the decoder's attention holds the image embedding
/// once per prompt, so a whole batch of 80 would hold gigabytes at once.
///
/// With `enough`, decoding stops once that many non-empty masks are in hand: only the first
/// [`MAX_MASKS_PER_CATEGORY`] non-empty masks survive truncation, so the prompts after them
/// would be decoded for nothing. The result then covers the first `masks.len()` prompts.
fn masks_for(
    sam: &Sam,
    image: &PreparedImage,
    prompts: &Prompts,
    n: usize,
    enough: Option<usize>,
) -> Result<(Vec<BinaryMask>, Tensor, Vec<f32>), DetectError> {
    let mut masks: Vec<BinaryMask> = Vec::with_capacity(n);
    let mut lows = Vec::new();
    let mut ious = Vec::with_capacity(n);
    let mut non_empty = 0;
    let mut start = 0;
    while start < n {
        let missing = match enough {
            Some(enough) if non_empty >= enough => break,
            Some(enough) => enough - non_empty,
            None => CHUNK,
        };
        let len = CHUNK.min(n - start).min(missing);
        let part = |t: &Option<Tensor>| -> Result<Option<Tensor>, DetectError> {
            Ok(match t {
                Some(t) => Some(t.narrow(0, start, len)?),
                None => None,
            })
        };
        let chunk = Prompts {
            points: match &prompts.points {
                Some((c, l)) => Some((c.narrow(0, start, len)?, l.narrow(0, start, len)?)),
                None => None,
            },
            boxes: part(&prompts.boxes)?,
            masks: part(&prompts.masks)?,
        };
        let (m, low, iou) = decode_chunk(sam, image, &chunk)?;
        non_empty += m.iter().filter(|m| m.area() > 0).count();
        masks.extend(m);
        lows.push(low);
        ious.extend(iou);
        start += len;
    }
    Ok((masks, Tensor::cat(&lows, 0)?, ious))
}

fn decode_chunk(
    sam: &Sam,
    image: &PreparedImage,
    prompts: &Prompts,
) -> Result<(Vec<BinaryMask>, Tensor, Vec<f32>), DetectError> {
    let out = time("detect: decoder", || {
        sam.predict(&image.embedding, prompts, true)
    })?;
    let (b, m, l, _) = out.low_res_logits.dims4()?;
    let iou_all: Vec<Vec<f32>> = out.iou.to_dtype(DType::F32)?.to_vec2()?;
    // SAM-HQ gives one mask; plain SAM gives three: take the one with the best predicted IoU.
    let pick: Vec<usize> = iou_all
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                )
                .0
        })
        .collect();
    let low = if m == 1 {
        out.low_res_logits
    } else {
        let idx = Tensor::from_vec(
            pick.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            (b, 1, 1, 1),
            out.low_res_logits.device(),
        )?
        .broadcast_as((b, 1, l, l))?
        .contiguous()?;
        out.low_res_logits.gather(&idx, 1)?
    };
    let iou: Vec<f32> = iou_all.iter().zip(&pick).map(|(r, &i)| r[i]).collect();
    let (h, w) = image.work_size;
    let up = time("detect: upscale logits", || {
        sam.upscale_masks(&image.embedding, &low)
    })?;
    let masks = time(
        "detect: threshold",
        || -> Result<Vec<BinaryMask>, DetectError> {
            // One mask per prompt, in parallel, read in place from the logits.
            let up = up.to_dtype(DType::F32)?.contiguous()?;
            let threshold = |v: &[f32]| -> Vec<BinaryMask> {
                v.par_chunks_exact(h * w)
                    .take(b)
                    .map(|plane| BinaryMask::from_fn(w, h, |i| plane[i] > 0.0))
                    .collect()
            };
            match crate::encoders::kernels::with_f32(&up, threshold) {
                Some(masks) => Ok(masks),
                None => Ok(threshold(&up.flatten_all()?.to_vec1::<f32>()?)),
            }
        },
    )?;
    Ok((masks, low, iou))
}

/// Decodes one category's prompts into scored candidates at the work size.
pub fn decode_category(
    sam: &Sam,
    image: &PreparedImage,
    prompts: &CategoryPrompts,
    grid: (usize, usize),
    opts: &DecodeOptions,
) -> Result<Vec<Candidate>, DetectError> {
    decode_category_until(
        sam,
        image,
        prompts,
        grid,
        opts,
        Some(MAX_MASKS_PER_CATEGORY),
    )
}

/// [`decode_category`], decoding the first pass until `enough` non-empty masks are in hand
/// (`None`: every prompt, as the reference does).
fn decode_category_until(
    sam: &Sam,
    image: &PreparedImage,
    prompts: &CategoryPrompts,
    grid: (usize, usize),
    opts: &DecodeOptions,
    enough: Option<usize>,
) -> Result<Vec<Candidate>, DetectError> {
    let n_fg = prompts.foreground.len();
    if n_fg == 0 {
        return Ok(Vec::new());
    }
    let device = image.embedding.embedding.device().clone();
    let s = image.scale;
    let n_pts = 1 + prompts.background.len();
    let mut coords = Vec::with_capacity(n_fg * n_pts * 2);
    let mut labels = Vec::with_capacity(n_fg * n_pts);
    for fg in &prompts.foreground {
        coords.extend([fg.x * s, fg.y * s]);
        labels.push(1f32);
        for bg in &prompts.background {
            coords.extend([bg.x * s, bg.y * s]);
            labels.push(-1f32);
        }
    }
    let coords = Tensor::from_vec(coords, (n_fg, n_pts, 2), &device)?;
    let labels = Tensor::from_vec(labels, (n_fg, n_pts), &device)?;
    let first = Prompts {
        points: Some((coords.clone(), labels.clone())),
        boxes: None,
        masks: None,
    };
    let (masks, low, iou) = masks_for(sam, image, &first, n_fg, enough)?;
    let keep: Vec<usize> = (0..masks.len())
        .filter(|&i| masks[i].area() > 0)
        .take(MAX_MASKS_PER_CATEGORY)
        .collect();
    if keep.is_empty() {
        return Ok(Vec::new());
    }
    let (masks, weights) = if opts.mask_refinement {
        let idx = Tensor::from_vec(
            keep.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            keep.len(),
            &device,
        )?;
        let boxes: Vec<f32> = keep
            .iter()
            .flat_map(|&i| {
                let b = masks[i].bounds().expect("non-empty");
                [b.0 as f32, b.1 as f32, b.2 as f32, b.3 as f32]
            })
            .collect();
        let second = Prompts {
            points: Some((coords.index_select(&idx, 0)?, labels.index_select(&idx, 0)?)),
            boxes: Some(Tensor::from_vec(boxes, (keep.len(), 4), &device)?),
            masks: Some(low.index_select(&idx, 0)?),
        };
        let (m2, _, iou2) = masks_for(sam, image, &second, keep.len(), None)?;
        (m2, iou2)
    } else {
        let w: Vec<f32> = keep.iter().map(|&i| iou[i]).collect();
        let m: Vec<BinaryMask> = keep.iter().map(|&i| masks[i].clone()).collect();
        (m, w)
    };
    let (h, w) = image.work_size;
    let sim = resize_bilinear(&prompts.similarity, grid, (h, w));
    let threshold = opts.confidence_threshold;
    Ok(masks
        .into_iter()
        .zip(weights)
        .take(MAX_MASKS_PER_CATEGORY)
        .map(|(mask, weight)| {
            let area = mask.area() as f32;
            let total: f32 = mask.ones().map(|i| sim[i]).sum();
            let score = total / (area + 1e-6) * weight;
            Candidate {
                category: prompts.category,
                score: if score > threshold { score } else { 0.0 },
                mask,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::Device;

    use super::*;
    use crate::detect::prompts::PromptPoint;
    use crate::segmenters::SamConfig;

    fn fixture(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel)
    }

    fn tiny_sam() -> Sam {
        let text = std::fs::read_to_string(fixture("models/sam_hq_tiny.config.json")).unwrap();
        let cfg: SamConfig = serde_json::from_str(&text).unwrap();
        Sam::from_file(&cfg, &fixture("segmenters/tiny/model.pth"), &Device::Cpu).unwrap()
    }

    #[test]
    fn decoding_stops_at_the_masks_truncation_keeps_with_the_same_candidates() {
        let sam = tiny_sam();
        let img = image::open(fixture("algorithms/images/tgt_a.png"))
            .unwrap()
            .to_rgb8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        let rgb = RgbImage {
            data: img.as_raw(),
            height: h,
            width: w,
        };
        let image = prepare(&sam, rgb).unwrap();
        // 70 foreground points on a 10 x 7 lattice, more than truncation keeps.
        let foreground: Vec<PromptPoint> = (0..70)
            .map(|i| PromptPoint {
                x: (i % 10) as f32 * w as f32 / 10.0 + 3.0,
                y: (i / 10) as f32 * h as f32 / 7.0 + 3.0,
                score: 1.0 - i as f32 / 100.0,
            })
            .collect();
        let grid = (8, 8);
        let prompts = CategoryPrompts {
            category: 2,
            foreground,
            background: vec![PromptPoint {
                x: 1.0,
                y: 1.0,
                score: 0.0,
            }],
            similarity: (0..64).map(|i| (i % 9) as f32 / 8.0).collect(),
        };
        for mask_refinement in [false, true] {
            let opts = DecodeOptions {
                confidence_threshold: 0.1,
                mask_refinement,
            };
            let every = decode_category_until(&sam, &image, &prompts, grid, &opts, None).unwrap();
            let early = decode_category(&sam, &image, &prompts, grid, &opts).unwrap();
            assert_eq!(
                every.len(),
                MAX_MASKS_PER_CATEGORY,
                "truncation had work to do"
            );
            assert_eq!(early.len(), every.len());
            for (i, (a, b)) in early.iter().zip(&every).enumerate() {
                assert_eq!(a.mask, b.mask, "mask {i} (refinement {mask_refinement})");
                assert_eq!(a.score, b.score, "score {i} (refinement {mask_refinement})");
            }
        }
    }
}
