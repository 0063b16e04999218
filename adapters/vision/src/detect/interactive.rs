//! Interactive segmentation: a user's clicks (positive and negative) and/or a box on an image
//! become one mask, as when annotating a reference frame.

use candle_core::Tensor;

use crate::encoders::profiling::time;
use crate::segmenters::{Prompts, Sam};

use super::DetectError;
use super::decode::PreparedImage;
use super::raster::BinaryMask;

/// A click in image pixels; `positive` marks the object, otherwise what is not the object.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Click {
    pub x: f32,
    pub y: f32,
    pub positive: bool,
}

/// The segmenter's mask for `clicks` and `bbox` (`x1, y1, x2, y2` in image pixels) on `image`,
/// at the image's original size, with its predicted IoU. A single click is ambiguous (a part or
/// the whole?): the segmenter proposes three masks and the one it rates best is returned.
pub fn segment(
    sam: &Sam,
    image: &PreparedImage,
    clicks: &[Click],
    bbox: Option<[f32; 4]>,
) -> Result<(BinaryMask, f32), DetectError> {
    if clicks.is_empty() && bbox.is_none() {
        return Err(DetectError::InvalidReferences(
            "a segmentation needs at least one point or a box".into(),
        ));
    }
    let device = image.embedding.embedding.device().clone();
    let s = image.scale;
    let points = if clicks.is_empty() {
        None
    } else {
        let coords: Vec<f32> = clicks.iter().flat_map(|c| [c.x * s, c.y * s]).collect();
        let labels: Vec<f32> = clicks
            .iter()
            .map(|c| if c.positive { 1.0 } else { 0.0 })
            .collect();
        Some((
            Tensor::from_vec(coords, (1, clicks.len(), 2), &device)?,
            Tensor::from_vec(labels, (1, clicks.len()), &device)?,
        ))
    };
    let boxes = match bbox {
        Some(b) => Some(Tensor::from_vec(
            b.iter().map(|v| v * s).collect::<Vec<f32>>(),
            (1, 4),
            &device,
        )?),
        None => None,
    };
    let multimask = clicks.len() == 1 && bbox.is_none();
    let out = sam.predict(
        &image.embedding,
        &Prompts {
            points,
            boxes,
            masks: None,
        },
        multimask,
    )?;
    let iou: Vec<f32> = out.iou.to_dtype(candle_core::DType::F32)?.to_vec2()?[0].clone();
    let best = iou
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
    let low = out.low_res_logits.narrow(1, best.0, 1)?;
    let up = time("click: upscale logits", || {
        sam.upscale_masks(&image.embedding, &low)
    })?;
    let (h, w) = image.work_size;
    let mask = time("click: threshold", || -> Result<BinaryMask, DetectError> {
        let v: Vec<f32> = up.flatten_all()?.to_vec1()?;
        let mut mask = BinaryMask::from_fn(w, h, |i| v[i] > 0.0);
        if image.scale < 1.0 {
            mask = mask.resize_nearest(image.original_size.0, image.original_size.1);
        }
        Ok(mask)
    })?;
    Ok((mask, best.1))
}
