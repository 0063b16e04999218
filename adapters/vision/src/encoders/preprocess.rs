//! Image pre-processing as the reference's Hugging Face image processors do it (torchvision
//! backend, `do_center_crop=False`, a fixed output size): 8-bit RGB in, a normalised
//! `[B, 3, H, W]` `f32` tensor out.
//!
//! - DINOv3 (`DINOv3ViTImageProcessor`): rescale to [0, 1], antialiased **bilinear** resize in
//!   floating point, ImageNet normalisation.
//! - DINOv2 (`BitImageProcessor`): antialiased **bicubic** resize of the 8-bit image (the result
//!   rounded back to 8 bits, as torchvision does for `uint8` tensors), then rescale and ImageNet
//!   normalisation.

use candle_core::{Device, Result, Tensor};

use super::resize::{Filter, resize_aa};

/// ImageNet mean, per RGB channel.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation, per RGB channel.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An 8-bit RGB image, pixels interleaved row by row (`data.len() == width · height · 3`).
#[derive(Debug, Clone, Copy)]
pub struct RgbImage<'a> {
    pub width: usize,
    pub height: usize,
    pub data: &'a [u8],
}

/// How to turn an image into encoder input.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Output `(height, width)`.
    pub size: (usize, usize),
    pub filter: Filter,
    /// Resize the 8-bit values and round back to 8 bits before rescaling (torchvision on a
    /// `uint8` tensor) instead of rescaling first and resizing floats.
    pub resize_8bit: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// The DINOv3 processor at `height × width` (the reference runs 512 × 512).
    pub fn dinov3(height: usize, width: usize) -> Self {
        Preprocess {
            size: (height, width),
            filter: Filter::Bilinear,
            resize_8bit: false,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// The DINOv2 processor at `height × width`.
    pub fn dinov2(height: usize, width: usize) -> Self {
        Preprocess {
            size: (height, width),
            filter: Filter::Bicubic,
            resize_8bit: true,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// One image → `3 · H · W` normalised values, channel planes one after the other.
    pub fn planar(&self, image: RgbImage<'_>) -> Vec<f32> {
        let (w, h) = (image.width, image.height);
        assert_eq!(image.data.len(), w * h * 3, "RGB data of the stated size");
        let mut planes = vec![0f32; 3 * h * w];
        let scale = if self.resize_8bit { 1.0 } else { 1.0 / 255.0 };
        for (i, px) in image.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                planes[c * h * w + i] = px[c] as f32 * scale;
            }
        }
        let (oh, ow) = self.size;
        let mut out = resize_aa(&planes, 3, (h, w), (oh, ow), self.filter);
        let n = oh * ow;
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            for v in &mut out[c * n..(c + 1) * n] {
                let x = if self.resize_8bit {
                    v.round().clamp(0.0, 255.0) / 255.0
                } else {
                    *v
                };
                *v = (x - m) / s;
            }
        }
        out
    }

    /// A batch of images → `[B, 3, H, W]` on `device`.
    pub fn tensor(&self, images: &[RgbImage<'_>], device: &Device) -> Result<Tensor> {
        let (oh, ow) = self.size;
        let mut data = Vec::with_capacity(images.len() * 3 * oh * ow);
        for image in images {
            data.extend(self.planar(*image));
        }
        Tensor::from_vec(data, (images.len(), 3, oh, ow), device)
    }
}
