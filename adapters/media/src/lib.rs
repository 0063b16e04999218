//! Frame sources: every [`visprompt_runtime::FrameSource`] this build can open, and the
//! [`MediaSourceFactory`] that opens the right one for a stored source configuration.
//!
//! # Layout
//!
//! - [`synthetic`]: moving textured shapes at known positions (demo source, test ground truth).
//! - [`folder`]: the still images of a folder, navigated by hand.
//! - [`dataset`]: the sample datasets built into the program.
//! - [`video`]: H.264 MP4 files, paced at their frame rate, looping, seekable.
//! - [`rtsp`]: H.264 camera streams over RTSP.
//! - [`v4l2`]: USB cameras through Video4Linux2 (Linux), and camera discovery.
//! - `decode`: bounded still-image decoding and thumbnail shrinking shared by the sources.
//! - `h264`, [`yuv`]: decoding and pixel-format conversion shared by the video sources.
//! - [`factory`]: [`MediaSourceFactory`], configuration → source.

pub mod dataset;
mod decode;
pub mod factory;
pub mod folder;
mod h264;
pub mod rtsp;
pub mod synthetic;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub mod v4l2;
pub mod video;
pub mod yuv;

pub use dataset::{SAMPLE_DATASETS, SampleDataset, open_sample_dataset};
pub use decode::MAX_PIXELS;
pub use factory::MediaSourceFactory;
pub use folder::ImagesFolderSource;
pub use rtsp::RtspSource;
pub use synthetic::{SyntheticScene, SyntheticSource};
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub use v4l2::{CameraInfo, V4l2Source, discover_cameras};
pub use video::{VideoFileSource, VideoOptions};
