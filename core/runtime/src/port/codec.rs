//! Image coding the runtime needs but must not implement itself: decoding stored reference frames
//! (JPEG/PNG) and encoding a captured frame for storage.

use crate::image::RgbImage;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

pub trait FrameCodec: Send + Sync {
    fn decode(&self, bytes: &[u8]) -> Result<RgbImage, CodecError>;
    /// JPEG at `quality` (1..=100).
    fn encode_jpeg(&self, image: &RgbImage, quality: u8) -> Result<Vec<u8>, CodecError>;
}
