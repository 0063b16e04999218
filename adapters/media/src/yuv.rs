//! Conversions from the YUV layouts that decoders and cameras produce (planar 4:2:0 from H.264,
//! packed YUYV 4:2:2 from V4L2) to the RGB frames every stage uses.
//! Both use the BT.601 limited-range matrix, which is what SD and most HD camera and H.264
//! streams carry when they do not say otherwise; the few that signal BT.709 come out with
//! slightly shifted colours, which matters little for matching against reference frames that
//! came through the same path.

use visprompt_runtime::RgbImage;

/// One pixel, BT.601 limited range, fixed point with 8 fractional bits.
#[inline]
fn to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// Planar YUV 4:2:0 (I420) with the given row strides to RGB. Odd sizes round the chroma up, as
/// H.264 does. Panics if a plane is shorter than its strides and the size say.
pub fn i420_to_rgb(
    (y_plane, u_plane, v_plane): (&[u8], &[u8], &[u8]),
    (y_stride, u_stride, v_stride): (usize, usize, usize),
    width: u32,
    height: u32,
) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    let w = width as usize;
    let raw = out.as_raw_mut();
    for row in 0..height as usize {
        let y_row = &y_plane[row * y_stride..row * y_stride + w];
        let u_row = &u_plane[(row / 2) * u_stride..];
        let v_row = &v_plane[(row / 2) * v_stride..];
        let out_row = &mut raw[row * w * 3..(row + 1) * w * 3];
        for (col, px) in out_row.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&to_rgb(y_row[col], u_row[col / 2], v_row[col / 2]));
        }
    }
    out
}

/// Packed YUYV 4:2:2 (Y0 U Y1 V for each pair of pixels) with `stride` bytes a row to RGB.
/// Returns `None` when `data` is too short for the size, as a truncated camera buffer can be.
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32, stride: usize) -> Option<RgbImage> {
    let w = width as usize;
    let row_bytes = w.div_ceil(2) * 4;
    let needed = stride
        .checked_mul(height.saturating_sub(1) as usize)?
        .checked_add(row_bytes)?;
    if width == 0 || height == 0 || stride < row_bytes || data.len() < needed {
        return None;
    }
    let mut out = RgbImage::new(width, height);
    let raw = out.as_raw_mut();
    for row in 0..height as usize {
        let src = &data[row * stride..row * stride + row_bytes];
        let dst = &mut raw[row * w * 3..(row + 1) * w * 3];
        for (pair, quad) in src.chunks_exact(4).enumerate() {
            let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
            let x = pair * 2;
            dst[x * 3..x * 3 + 3].copy_from_slice(&to_rgb(y0, u, v));
            if x + 1 < w {
                dst[(x + 1) * 3..(x + 1) * 3 + 3].copy_from_slice(&to_rgb(y1, u, v));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Studio-range YUV of a few colours, as an encoder produces them.
    const COLOURS: [([u8; 3], [u8; 3]); 5] = [
        ([16, 128, 128], [0, 0, 0]),
        ([235, 128, 128], [255, 255, 255]),
        ([81, 90, 240], [255, 0, 0]),
        ([145, 54, 34], [0, 255, 0]),
        ([41, 240, 110], [0, 0, 255]),
    ];

    fn near(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter()
            .zip(b)
            .all(|(&x, y)| (i16::from(x) - i16::from(y)).abs() <= 3)
    }

    #[test]
    fn primary_colours_convert_to_themselves() {
        for (yuv, rgb) in COLOURS {
            let got = to_rgb(yuv[0], yuv[1], yuv[2]);
            assert!(near(got, rgb), "{yuv:?} gave {got:?}, expected {rgb:?}");
        }
    }

    #[test]
    fn i420_shares_chroma_between_two_by_two_pixels_and_honours_strides() {
        // A 3x2 image: luma stride 4, chroma stride 3, chroma rounded up to 2 columns.
        let y = [81, 81, 41, 0, 81, 81, 41, 0];
        let u = [90, 240, 0];
        let v = [240, 110, 0];
        let img = i420_to_rgb((&y, &u, &v), (4, 3, 3), 3, 2);
        for row in 0..2 {
            assert!(near(img.pixel(0, row), [255, 0, 0]));
            assert!(near(img.pixel(1, row), [255, 0, 0]));
            assert!(near(img.pixel(2, row), [0, 0, 255]));
        }
    }

    #[test]
    fn yuyv_pairs_share_their_chroma() {
        // Two rows of 2 pixels: red pair, then a black and a white pixel sharing neutral chroma.
        let data = [81, 90, 81, 240, 16, 128, 235, 128];
        let img = yuyv_to_rgb(&data, 2, 2, 4).unwrap();
        assert!(near(img.pixel(0, 0), [255, 0, 0]));
        assert!(near(img.pixel(1, 0), [255, 0, 0]));
        assert!(near(img.pixel(0, 1), [0, 0, 0]));
        assert!(near(img.pixel(1, 1), [255, 255, 255]));
    }

    #[test]
    fn a_truncated_yuyv_buffer_is_refused() {
        assert!(yuyv_to_rgb(&[0; 7], 2, 2, 4).is_none());
        assert!(yuyv_to_rgb(&[0; 8], 2, 2, 3).is_none());
        assert!(yuyv_to_rgb(&[0; 8], 0, 2, 4).is_none());
    }
}
