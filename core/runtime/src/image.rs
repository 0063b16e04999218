//! Decoded frames in memory: 8-bit RGB, row-major, no padding. Every source produces this layout
//! and every detector and encoder consumes it, so no stage converts pixel formats twice.

use std::fmt;

/// An 8-bit RGB image, rows top to bottom, three bytes per pixel.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an RGB image of {width}x{height} needs {expected} bytes, got {got}")]
pub struct ImageSizeError {
    pub width: u32,
    pub height: u32,
    pub expected: usize,
    pub got: usize,
}

impl RgbImage {
    /// A black image.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize * 3],
        }
    }

    /// Wraps pixel data; refuses a buffer whose length does not match the size.
    pub fn from_raw(width: u32, height: u32, data: Vec<u8>) -> Result<Self, ImageSizeError> {
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(ImageSizeError {
                width,
                height,
                expected,
                got: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    pub fn as_raw_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn into_raw(self) -> Vec<u8> {
        self.data
    }

    /// The pixel at (x, y); panics outside the image, like slice indexing.
    #[inline]
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    #[inline]
    pub fn put_pixel(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }
}

impl fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RgbImage({}x{})", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_of_the_wrong_length_is_refused() {
        assert!(RgbImage::from_raw(2, 2, vec![0; 12]).is_ok());
        let err = RgbImage::from_raw(2, 2, vec![0; 11]).unwrap_err();
        assert_eq!(err.expected, 12);
    }

    #[test]
    fn pixels_are_addressed_row_major() {
        let mut img = RgbImage::new(3, 2);
        img.put_pixel(2, 1, [1, 2, 3]);
        assert_eq!(img.pixel(2, 1), [1, 2, 3]);
        assert_eq!(&img.as_raw()[15..18], &[1, 2, 3]);
    }
}
