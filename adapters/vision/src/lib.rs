//! visprompt's neural models, in candle, on CPU (CUDA behind the `cuda` feature).
//!
//! - [`encoders`]: DINOv2 / DINOv3 vision transformers that turn an image into patch features.
//! - [`segmenters`]: SAM, SAM-HQ and MobileSAM: an image encoder run once per frame, and a
//!   prompt encoder + mask decoder that turn batches of point/box/mask prompts into masks.
//! - [`weights`]: where weights come from (a local folder, a `.pth` checkpoint, or the Hugging
//!   Face hub cache) and the catalogue of supported models.
//!
//! Every model is proven against its reference implementation by parity fixtures made with
//! random weights on small configurations (`tools/parity/`).

pub mod detect;
pub mod detector;
pub mod encoders;
pub mod segmenters;
pub mod store;
pub mod weights;
