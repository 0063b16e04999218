//! The ports the runtime drives; adapters implement them. Each is dyn-compatible because the
//! pipeline switches implementations at run time (`Box<dyn FrameSource>` and friends).
//!
//! - [`FrameSource`] / [`SourceFactory`]: frames in.
//! - [`Detector`] / [`DetectorFactory`]: frames to detections, fitted from references.
//! - [`ResultSink`] / [`SinkFactory`]: results out to MQTT, webhooks, files.
//! - [`FrameCodec`]: decoding stored reference images and encoding captured frames.

mod codec;
pub(crate) mod detector;
mod sink;
mod source;

pub use codec::{CodecError, FrameCodec};
pub use detector::{Detector, DetectorError, DetectorFactory, Reference, ReferenceAnnotation};
pub use sink::{ResultSink, SinkError, SinkFactory, SinkHealth, SinkHealthReporter};
pub use source::{FrameSource, Navigation, SourceError, SourceFactory, SourceMode, Thumbnail};
