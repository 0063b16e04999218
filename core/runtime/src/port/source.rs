//! Frame sources: cameras, streams, files and folders. A continuous source paces itself (a camera
//! by its clock, a file by its frame rate); a manual source (image folder, dataset) yields the
//! frame at its position and moves only when told to.

use async_trait::async_trait;
use visprompt_domain::SourceConfig;

use crate::image::RgbImage;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceMode {
    /// Frames keep coming; the pipeline asks for the next one as soon as it has the last.
    Continuous,
    /// One frame per position; the pipeline reads again only after a seek.
    Manual,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The device, stream or file cannot be used now (missing, busy, unreachable, dropped). The
    /// pipeline retries with back-off.
    #[error("{0}")]
    Unavailable(String),
    /// The data arrived but could not be decoded.
    #[error("{0}")]
    Corrupt(String),
    /// A navigation request outside the source's frames.
    #[error("index {index} is out of range: the source has {len} frames")]
    OutOfRange { index: usize, len: usize },
    /// The source cannot do what was asked (seek a camera, list a stream's frames), or cannot be
    /// opened by this build at all (a scheme it does not speak). From `open` it is final: the
    /// pipeline reports it and does not retry until the configuration changes.
    #[error("{0}")]
    Unsupported(String),
}

/// A media path outside the roots cannot be opened, like a missing file.
impl From<crate::confine::ConfinementError> for SourceError {
    fn from(e: crate::confine::ConfinementError) -> Self {
        SourceError::Unavailable(e.0)
    }
}

#[async_trait]
pub trait FrameSource: Send {
    fn mode(&self) -> SourceMode {
        SourceMode::Continuous
    }

    /// The next frame. A continuous source waits for it (and MUST NOT return faster than its
    /// nominal frame rate); a manual source returns the frame at its current position at once.
    /// `Ok(None)` means the stream ended for good (a file that does not loop).
    /// MUST return `Unavailable` when the stream dropped, so the pipeline reconnects.
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError>;

    /// Position control for sources that have positions; `None` for live streams.
    fn navigation(&mut self) -> Option<&mut dyn Navigation> {
        None
    }
}

/// A small preview of one position of a navigable source.
#[derive(Clone, Debug)]
pub struct Thumbnail {
    pub index: usize,
    pub image: RgbImage,
}

/// Positions of a navigable source, counted from 0.
pub trait Navigation: Send {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position whose frame `next_frame` returns next.
    fn position(&self) -> usize;

    /// MUST return `OutOfRange` for `index >= len()`, leaving the position unchanged.
    fn seek(&mut self, index: usize) -> Result<(), SourceError>;

    /// Thumbnails of positions `offset..offset + limit` (fewer at the end), longest side at most
    /// `max_side` pixels. Blocking: the pipeline calls it off the async executor.
    fn thumbnails(
        &mut self,
        offset: usize,
        limit: usize,
        max_side: u32,
    ) -> Result<Vec<Thumbnail>, SourceError>;
}

/// Opens sources from their stored configuration.
#[async_trait]
pub trait SourceFactory: Send + Sync {
    /// MUST return `Unavailable` with a message naming the device, path or URL when it cannot be
    /// opened, and `Unsupported` for a kind this build cannot open.
    async fn open(&self, config: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError>;
}
