//! A stored reference frame: an image (JPEG or PNG) that visual prompts annotate. The image bytes
//! live with the frame in the store, so that a deleted frame leaves nothing behind.

use crate::entity::Timestamp;
use crate::entity::prompt::FrameSize;
use crate::id::{FrameId, ProjectId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    pub const fn media_type(&self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }

    pub const fn extension(&self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
        }
    }

    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "image/jpeg" => Some(ImageFormat::Jpeg),
            "image/png" => Some(ImageFormat::Png),
            _ => None,
        }
    }
}

/// A frame's description; the bytes travel separately (see [`crate::StoredFrame`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub id: FrameId,
    pub project_id: ProjectId,
    pub format: ImageFormat,
    pub size: FrameSize,
    /// Length of the encoded image in bytes.
    pub byte_len: u64,
    pub created_at: Timestamp,
}
