//! Inspection of uploaded reference images: which format they are, how large, and whether they
//! decode completely. An image is only stored after it decoded here, so the pipeline never meets a
//! truncated or hostile file. Dimensions are checked before pixels are allocated.

mod codec;

use std::io::Cursor;

pub use codec::ImageCodec;

use image::{ImageFormat as Codec, ImageReader, Limits};
use visprompt_domain::{FrameSize, ImageFormat};

/// What an image turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub size: FrameSize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the data is not a JPEG or PNG image")]
    UnsupportedFormat,
    #[error("the image is {width}x{height} pixels; each side must be 1 to {max}")]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error("the image does not decode: {0}")]
    Corrupt(String),
}

/// Identifies, bounds and fully decodes `bytes`.
pub fn inspect(bytes: &[u8]) -> Result<ImageInfo, ImageError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let format = match reader.format() {
        Some(Codec::Jpeg) => ImageFormat::Jpeg,
        Some(Codec::Png) => ImageFormat::Png,
        _ => return Err(ImageError::UnsupportedFormat),
    };
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let max = FrameSize::MAX_SIDE;
    let size =
        FrameSize::new(width, height).map_err(|_| ImageError::TooLarge { width, height, max })?;

    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max);
    limits.max_image_height = Some(max);
    // Four bytes a pixel for the largest allowed image, plus decoder working space.
    limits.max_alloc = Some(u64::from(max) * u64::from(max) * 4 + (64 << 20));
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    Ok(ImageInfo { format, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn encode(width: u32, height: u32, codec: Codec) -> Vec<u8> {
        let img = ImageBuffer::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, codec).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_png_is_recognised_with_its_size() {
        let info = inspect(&encode(31, 17, Codec::Png)).unwrap();
        assert_eq!(info.format, ImageFormat::Png);
        assert_eq!((info.size.width(), info.size.height()), (31, 17));
    }

    #[test]
    fn a_jpeg_is_recognised_with_its_size() {
        let info = inspect(&encode(64, 48, Codec::Jpeg)).unwrap();
        assert_eq!(info.format, ImageFormat::Jpeg);
        assert_eq!((info.size.width(), info.size.height()), (64, 48));
    }

    #[test]
    fn text_is_not_an_image() {
        assert_eq!(
            inspect(b"hello, world").unwrap_err(),
            ImageError::UnsupportedFormat
        );
    }

    #[test]
    fn a_truncated_png_is_corrupt() {
        let png = encode(64, 64, Codec::Png);
        let err = inspect(&png[..png.len() / 2]).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused_before_decoding() {
        // A valid PNG signature and IHDR chunk declaring 100000 x 100000 pixels, and nothing else.
        let mut png = encode(1, 1, Codec::Png);
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let err = inspect(&png).unwrap_err();
        assert!(
            matches!(err, ImageError::TooLarge { .. } | ImageError::Corrupt(_)),
            "{err:?}"
        );
    }
}
