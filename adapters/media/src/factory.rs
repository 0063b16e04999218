//! Opens the source a stored configuration describes.

use async_trait::async_trait;
use visprompt_domain::SourceConfig;
use visprompt_runtime::{FrameSource, SourceError, SourceFactory};

use crate::synthetic::SyntheticSource;

/// Opens sources of every kind this build supports.
#[derive(Clone, Debug, Default)]
pub struct MediaSourceFactory {}

impl MediaSourceFactory {
    pub fn new() -> Self {
        Self {}
    }
}

#[async_trait]
impl SourceFactory for MediaSourceFactory {
    async fn open(&self, config: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        match config {
            SourceConfig::Synthetic => Ok(Box::new(SyntheticSource::default())),
            other => Err(SourceError::Unsupported(format!(
                "{} sources are not supported by this build yet",
                other.kind().as_str()
            ))),
        }
    }
}
