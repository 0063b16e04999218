//! A detected instance: which label, how sure, where (box and mask). Detectors produce these; the
//! payload and the overlays read them.

use visprompt_domain::LabelId;

use crate::mask::{BitMask, BoundingBox};

#[derive(Clone, Debug)]
pub struct Detection {
    pub label_id: LabelId,
    /// Confidence in 0..=1.
    pub score: f32,
    pub bbox: BoundingBox,
    /// The instance's pixels, the size of the frame.
    pub mask: BitMask,
}

impl Detection {
    /// A detection whose box is the tight box around `mask`; `None` for an empty mask.
    pub fn from_mask(label_id: LabelId, score: f32, mask: BitMask) -> Option<Self> {
        let bbox = mask.bounding_box()?;
        Some(Self {
            label_id,
            score,
            bbox,
            mask,
        })
    }
}
