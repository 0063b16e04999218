//! Still-image decoding and thumbnail shrinking shared by the image sources: folder images and
//! sample datasets (`folder`), MJPEG camera frames (`v4l2`), and thumbnails of any source
//! (`folder`, `video`). Every decode is bounded by size before a pixel is allocated.

use std::io::{BufRead, Seek};

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use visprompt_domain::FrameSize;
use visprompt_runtime::{RgbImage, SourceError};

/// The most pixels a decoded frame may have: 40 megapixels, above 8K video (33 MP) and most
/// camera sensors. A frame is 3 bytes a pixel here, but the detector then allocates several
/// buffers per pixel (features, scores, masks), so a frame at the side limit alone
/// ([`FrameSize::MAX_SIDE`] squared, 268 MP) would cost gigabytes downstream.
pub const MAX_PIXELS: u64 = 40_000_000;

/// The widest pixel a still format decodes to before conversion: 16-bit RGBA.
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Working space a decoder may use besides the picture itself.
const DECODER_SLACK: u64 = 64 << 20;

/// Decodes with the format guessed from the content (not the extension, which may lie). The size
/// the header claims is checked against [`FrameSize::MAX_SIDE`] a side and [`MAX_PIXELS`] in all
/// before any pixel is decoded. Blocking.
///
/// Returns `Corrupt` naming `name` for data that does not decode or claims too large a size.
pub(crate) fn decode_bounded<R: BufRead + Seek>(
    reader: ImageReader<R>,
    name: &str,
) -> Result<RgbImage, SourceError> {
    let corrupt = |e: &dyn std::fmt::Display| SourceError::Corrupt(format!("{name}: {e}"));
    let mut reader = reader.with_guessed_format().map_err(|e| corrupt(&e))?;
    let side = FrameSize::MAX_SIDE;
    let mut limits = Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(MAX_PIXELS * MAX_BYTES_PER_PIXEL + DECODER_SLACK);
    reader.limits(limits);
    // Reading the header only; the limits above are checked against it here.
    let decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => SourceError::Corrupt(format!(
            "{name}: the image is larger than {side} pixels a side ({e})"
        )),
        other => corrupt(&other),
    })?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(SourceError::Corrupt(format!(
            "{name}: the image is {width}x{height}, more than the {} megapixels accepted",
            MAX_PIXELS / 1_000_000
        )));
    }
    let decoded = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(&e))?;
    // A move, not a copy, when the image already is 8-bit RGB.
    let rgb = decoded.into_rgb8();
    let (width, height) = rgb.dimensions();
    RgbImage::from_raw(width, height, rgb.into_raw()).map_err(|e| corrupt(&e))
}

/// `image` with its longest side brought down to `max_side` pixels (at least 1), aspect ratio
/// kept. An image already that small is returned as it is, never enlarged or copied.
pub(crate) fn shrink(image: RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let longest = w.max(h);
    let max_side = max_side.max(1);
    if longest <= max_side {
        return image;
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let tw = ((f64::from(w) * scale).round() as u32).clamp(1, max_side);
    let th = ((f64::from(h) * scale).round() as u32).clamp(1, max_side);
    // A view over the frame's own bytes: resizing reads them in place.
    let view = image::ImageBuffer::<image::Rgb<u8>, &[u8]>::from_raw(w, h, image.as_raw())
        .expect("an RgbImage always holds width * height * 3 bytes");
    let small = image::imageops::thumbnail(&view, tw, th);
    RgbImage::from_raw(tw, th, small.into_raw()).expect("thumbnail returns the size it was asked")
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn decode(bytes: &[u8], name: &str) -> Result<RgbImage, SourceError> {
        decode_bounded(ImageReader::new(Cursor::new(bytes)), name)
    }

    /// The CRC-32 that PNG chunks end with (ISO 3309, as in zlib).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG of a header claiming `width`x`height` RGB and a data chunk holding only the start of
    /// a zlib stream: no pixel data at all, so only a check on the header can give a size error.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let chunk = |kind: &[u8; 4], body: &[u8]| {
            let mut typed = kind.to_vec();
            typed.extend_from_slice(body);
            let mut out = (body.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&typed);
            out.extend_from_slice(&crc32(&typed).to_be_bytes());
            out
        };
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        // 8 bits a channel, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        // The decoder reads chunks up to the first data chunk before it reports the size.
        png.extend(chunk(b"IDAT", &[0x78, 0x9c]));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    #[test]
    fn a_header_claiming_more_pixels_than_accepted_is_refused_before_decoding() {
        // Each side is within the side limit; the whole is 256 megapixels.
        match decode(&png_header_only(16_000, 16_000), "huge.png") {
            Err(SourceError::Corrupt(msg)) => {
                assert!(msg.contains("huge.png"), "{msg}");
                assert!(msg.contains("16000x16000"), "{msg}");
                assert!(msg.contains("megapixels"), "{msg}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // The same header at an accepted size gets past the check and fails on the missing data.
        match decode(&png_header_only(64, 64), "small.png") {
            Err(SourceError::Corrupt(msg)) => assert!(!msg.contains("megapixels"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn an_image_wider_than_a_frame_may_be_is_refused() {
        match decode(&png_header_only(FrameSize::MAX_SIDE + 1, 1), "wide.png") {
            Err(SourceError::Corrupt(msg)) => {
                assert!(msg.contains("wide.png") && msg.contains("larger"), "{msg}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn images_within_the_bounds_decode() {
        let img = image::RgbImage::from_pixel(6, 4, image::Rgb([10, 200, 30]));
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let frame = decode(png.get_ref(), "ok.png").unwrap();
        assert_eq!((frame.width(), frame.height()), (6, 4));
        assert_eq!(frame.pixel(5, 3), [10, 200, 30]);
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio_and_never_enlarge() {
        let mut big = RgbImage::new(400, 100);
        big.put_pixel(399, 99, [255, 255, 255]);
        let small = shrink(big, 100);
        assert_eq!((small.width(), small.height()), (100, 25));
        let tiny = RgbImage::new(30, 20);
        assert_eq!(shrink(tiny.clone(), 100), tiny);
        let one = shrink(RgbImage::new(1000, 1), 10);
        assert_eq!((one.width(), one.height()), (10, 1));
    }
}
