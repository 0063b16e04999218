//! Draws detections onto a frame for the live video: each mask alpha-blended in its label's colour
//! with its outline, the box, and a caption "label 87%" in white on the label colour. Sizes grow
//! with the frame so captions stay readable on HD and do not swamp VGA.

use visprompt_runtime::{Detection, FrameResult, RgbImage};

use crate::font;

/// What to draw. All on by default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayStyle {
    pub masks: bool,
    pub outlines: bool,
    pub boxes: bool,
    pub captions: bool,
    /// Opacity of the mask tint, 0..=1.
    pub mask_alpha: f32,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        Self {
            masks: true,
            outlines: true,
            boxes: true,
            captions: true,
            mask_alpha: 0.45,
        }
    }
}

const CAPTION_TEXT: [u8; 3] = [255, 255, 255];
/// Colour of detections whose label is no longer known (deleted while the result was in flight).
const UNKNOWN_LABEL: [u8; 3] = [128, 128, 128];

/// Line thickness and font pixel size for a frame: 2 px lines and 2x font at 1080p, scaled by
/// the square root of the area ratio and kept within 0.6x..2x of that.
fn scale_for(width: u32, height: u32) -> (u32, u32) {
    let ratio = ((f64::from(width) * f64::from(height)) / (1920.0 * 1080.0))
        .sqrt()
        .clamp(0.6, 2.0);
    let line = (3.0 * ratio).round().max(1.0) as u32;
    let font = (2.0 * ratio).round().max(1.0) as u32;
    (line, font)
}

/// Draws `result`'s detections onto `image`. Detections made on a frame of another size (the
/// source changed since) are skipped: their masks would not line up.
pub fn draw(image: &mut RgbImage, result: &FrameResult, style: &OverlayStyle) {
    let (line, font_px) = scale_for(image.width(), image.height());
    for detection in &result.detections {
        if detection.mask.width() != image.width() || detection.mask.height() != image.height() {
            continue;
        }
        let (colour, name) = match result.labels.get(detection.label_id) {
            Some(info) => (info.color.channels(), info.name.as_str()),
            None => (UNKNOWN_LABEL, "?"),
        };
        if style.masks {
            tint(image, detection, colour, style.mask_alpha);
        }
        if style.outlines {
            outline(image, detection, colour, line.div_ceil(2));
        }
        if style.boxes {
            rectangle(image, detection, colour, line);
        }
        if style.captions {
            let text = format!("{name} {:.0}%", (detection.score * 100.0).clamp(0.0, 100.0));
            caption(image, detection, &text, colour, font_px);
        }
    }
}

fn blend(pixel: [u8; 3], colour: [u8; 3], alpha: u16) -> [u8; 3] {
    let keep = 256 - alpha;
    let mix = |p: u8, c: u8| ((u16::from(p) * keep + u16::from(c) * alpha) >> 8) as u8;
    [
        mix(pixel[0], colour[0]),
        mix(pixel[1], colour[1]),
        mix(pixel[2], colour[2]),
    ]
}

fn tint(image: &mut RgbImage, detection: &Detection, colour: [u8; 3], alpha: f32) {
    let alpha = (alpha.clamp(0.0, 1.0) * 256.0) as u16;
    let Some((x0, y0, x1, y1)) = pixel_box(image, detection) else {
        return;
    };
    let width = image.width() as usize;
    let data = image.as_raw_mut();
    for y in y0..y1 {
        for x in x0..x1 {
            if detection.mask.get(x, y) {
                let i = (y as usize * width + x as usize) * 3;
                let out = blend([data[i], data[i + 1], data[i + 2]], colour, alpha);
                data[i..i + 3].copy_from_slice(&out);
            }
        }
    }
}

/// The detection's box clipped to the image, as pixel bounds (end exclusive).
fn pixel_box(image: &RgbImage, detection: &Detection) -> Option<(u32, u32, u32, u32)> {
    let b = &detection.bbox;
    let clip = |v: f32, max: u32| (v.max(0.0) as u32).min(max);
    let x0 = clip(b.x_min.floor(), image.width());
    let y0 = clip(b.y_min.floor(), image.height());
    let x1 = clip(b.x_max.ceil(), image.width());
    let y1 = clip(b.y_max.ceil(), image.height());
    (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
}

fn fill(image: &mut RgbImage, x0: u32, y0: u32, x1: u32, y1: u32, colour: [u8; 3]) {
    let (w, h) = (image.width(), image.height());
    let (x1, y1) = (x1.min(w), y1.min(h));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let width = w as usize;
    let data = image.as_raw_mut();
    for y in y0..y1 {
        let row = y as usize * width;
        for x in x0..x1 {
            let i = (row + x as usize) * 3;
            data[i..i + 3].copy_from_slice(&colour);
        }
    }
}

/// Pixels of the mask with a neighbour outside it, thickened inwards-and-outwards to `radius`.
fn outline(image: &mut RgbImage, detection: &Detection, colour: [u8; 3], radius: u32) {
    let Some((x0, y0, x1, y1)) = pixel_box(image, detection) else {
        return;
    };
    let mask = &detection.mask;
    let (w, h) = (mask.width(), mask.height());
    let on = |x: i64, y: i64| {
        x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h && mask.get(x as u32, y as u32)
    };
    let r = radius.saturating_sub(1);
    for y in y0..y1 {
        for x in x0..x1 {
            if !mask.get(x, y) {
                continue;
            }
            let (xi, yi) = (i64::from(x), i64::from(y));
            let edge = !on(xi - 1, yi) || !on(xi + 1, yi) || !on(xi, yi - 1) || !on(xi, yi + 1);
            if edge {
                fill(
                    image,
                    x.saturating_sub(r),
                    y.saturating_sub(r),
                    x + r + 1,
                    y + r + 1,
                    colour,
                );
            }
        }
    }
}

fn rectangle(image: &mut RgbImage, detection: &Detection, colour: [u8; 3], thickness: u32) {
    let Some((x0, y0, x1, y1)) = pixel_box(image, detection) else {
        return;
    };
    let t = thickness;
    fill(image, x0, y0, x1, (y0 + t).min(y1), colour);
    fill(image, x0, y1.saturating_sub(t).max(y0), x1, y1, colour);
    fill(image, x0, y0, (x0 + t).min(x1), y1, colour);
    fill(image, x1.saturating_sub(t).max(x0), y0, x1, y1, colour);
}

/// White text on a box of the label colour, above the detection's box (inside it when there is
/// no room above).
fn caption(image: &mut RgbImage, detection: &Detection, text: &str, colour: [u8; 3], px: u32) {
    let Some((x0, y0, _, _)) = pixel_box(image, detection) else {
        return;
    };
    let pad = px;
    let box_w = font::text_width(text) * px + 2 * pad;
    let box_h = font::GLYPH_HEIGHT * px + 2 * pad;
    let top = if y0 >= box_h { y0 - box_h } else { y0 };
    let left = x0.min(image.width().saturating_sub(box_w));
    fill(image, left, top, left + box_w, top + box_h, colour);
    let mut pen_x = left + pad;
    for c in text.chars() {
        let rows = font::glyph(c);
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..font::GLYPH_WIDTH {
                if bits & (1 << (font::GLYPH_WIDTH - 1 - col)) != 0 {
                    let x = pen_x + col * px;
                    let y = top + pad + row as u32 * px;
                    fill(image, x, y, x + px, y + px, CAPTION_TEXT);
                }
            }
        }
        pen_x += font::ADVANCE * px;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use visprompt_domain::{Color, LabelId, ProjectId};
    use visprompt_runtime::{BitMask, LabelTable, VideoFrame};

    use super::*;

    fn result_with_disc(label: LabelId, labels: LabelTable) -> FrameResult {
        let mask = BitMask::from_fn(200, 150, |x, y| {
            let (dx, dy) = (x as i32 - 120, y as i32 - 90);
            dx * dx + dy * dy < 30 * 30
        });
        let frame = VideoFrame {
            seq: 1,
            captured_at: Instant::now(),
            timestamp: chrono::Utc::now(),
            image: Arc::new(RgbImage::new(200, 150)),
            index: None,
        };
        FrameResult::new(
            ProjectId::new(),
            frame,
            vec![Detection::from_mask(label, 0.87, mask).unwrap()],
            Arc::new(labels),
            Duration::ZERO,
        )
    }

    fn table(label: LabelId, name: &str, color: Color) -> LabelTable {
        LabelTable::from_entries([(label, name, color)])
    }

    #[test]
    fn masks_are_tinted_in_the_label_colour_and_the_rest_is_untouched() {
        let label = LabelId::new();
        let result = result_with_disc(label, table(label, "cup", Color::rgb(255, 0, 0)));
        let mut image = RgbImage::new(200, 150);
        let style = OverlayStyle {
            outlines: false,
            boxes: false,
            captions: false,
            ..OverlayStyle::default()
        };
        draw(&mut image, &result, &style);
        let centre = image.pixel(120, 90);
        assert!(
            centre[0] > 100 && centre[1] == 0 && centre[2] == 0,
            "{centre:?}"
        );
        assert_eq!(image.pixel(10, 10), [0, 0, 0]);
        assert_eq!(image.pixel(120, 90 + 31), [0, 0, 0]);
    }

    #[test]
    fn boxes_outlines_and_captions_are_drawn_where_the_object_is() {
        let label = LabelId::new();
        let result = result_with_disc(label, table(label, "cup", Color::rgb(0, 200, 0)));
        let mut image = RgbImage::new(200, 150);
        draw(&mut image, &result, &OverlayStyle::default());
        // Box edge (left side of the box at x = 91).
        assert_eq!(image.pixel(91, 90), [0, 200, 0]);
        // Caption above the box: some white text pixels in the band above y = 61.
        let white = (0..200)
            .flat_map(|x| (40..61).map(move |y| (x, y)))
            .filter(|&(x, y)| image.pixel(x, y) == [255, 255, 255])
            .count();
        assert!(white > 20, "{white} caption pixels");
        // Nothing far from the object.
        assert_eq!(image.pixel(10, 140), [0, 0, 0]);
    }

    #[test]
    fn detections_for_a_frame_of_another_size_are_skipped() {
        let label = LabelId::new();
        let result = result_with_disc(label, table(label, "cup", Color::rgb(255, 0, 0)));
        let mut image = RgbImage::new(320, 240);
        draw(&mut image, &result, &OverlayStyle::default());
        assert!(image.as_raw().iter().all(|&b| b == 0));
    }

    #[test]
    fn an_unknown_label_is_drawn_grey() {
        let result = result_with_disc(LabelId::new(), LabelTable::default());
        let mut image = RgbImage::new(200, 150);
        draw(&mut image, &result, &OverlayStyle::default());
        assert_eq!(image.pixel(91, 90), UNKNOWN_LABEL);
    }
}
