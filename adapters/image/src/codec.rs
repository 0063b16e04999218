//! [`ImageCodec`], the runtime's [`FrameCodec`]: decodes stored reference frames to RGB (bounded
//! like [`crate::inspect`]) and encodes captured frames as JPEG for storage.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageReader, Limits};
use visprompt_domain::FrameSize;
use visprompt_runtime::{CodecError, FrameCodec, RgbImage};

#[derive(Clone, Copy, Debug, Default)]
pub struct ImageCodec;

impl FrameCodec for ImageCodec {
    fn decode(&self, bytes: &[u8]) -> Result<RgbImage, CodecError> {
        let mut reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| CodecError(e.to_string()))?;
        let max = FrameSize::MAX_SIDE;
        let mut limits = Limits::default();
        limits.max_image_width = Some(max);
        limits.max_image_height = Some(max);
        limits.max_alloc = Some(u64::from(max) * u64::from(max) * 4 + (64 << 20));
        reader.limits(limits);
        let rgb = reader
            .decode()
            .map_err(|e| CodecError(e.to_string()))?
            .into_rgb8();
        let (w, h) = rgb.dimensions();
        RgbImage::from_raw(w, h, rgb.into_raw()).map_err(|e| CodecError(e.to_string()))
    }

    fn encode_jpeg(&self, image: &RgbImage, quality: u8) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
            .encode(
                image.as_raw(),
                image.width(),
                image.height(),
                ExtendedColorType::Rgb8,
            )
            .map_err(|e| CodecError(e.to_string()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_round_trip_keeps_size_and_approximate_colour() {
        let mut img = RgbImage::new(64, 48);
        for y in 0..48 {
            for x in 0..64 {
                img.put_pixel(x, y, [200, 30, 60]);
            }
        }
        let jpeg = ImageCodec.encode_jpeg(&img, 95).unwrap();
        assert_eq!(
            crate::inspect(&jpeg).unwrap().format,
            visprompt_domain::ImageFormat::Jpeg
        );
        let back = ImageCodec.decode(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (64, 48));
        let [r, g, b] = back.pixel(32, 24);
        assert!(r.abs_diff(200) < 6 && g.abs_diff(30) < 6 && b.abs_diff(60) < 6);
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(ImageCodec.decode(b"not an image").is_err());
    }
}
