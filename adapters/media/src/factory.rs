//! Opens the source a stored configuration describes. Media paths are confined to the media
//! roots here, at open time, with symlinks resolved; file-system work runs on a blocking thread.

use std::path::Path;

use async_trait::async_trait;
use visprompt_domain::{MediaRoots, SourceConfig};
use visprompt_runtime::{FrameSource, SourceError, SourceFactory};

use crate::dataset::open_sample_dataset;
use crate::folder::ImagesFolderSource;
use crate::rtsp::RtspSource;
use crate::synthetic::SyntheticSource;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
use crate::v4l2::V4l2Source;
use crate::video::{VideoFileSource, VideoOptions};
use visprompt_runtime::Confinement;

/// Opens sources of every kind this build supports.
#[derive(Clone, Debug, Default)]
pub struct MediaSourceFactory {
    confinement: Confinement,
}

impl MediaSourceFactory {
    /// Paths outside `roots` (after resolving symlinks) are refused without being read.
    pub fn new(roots: MediaRoots) -> Self {
        Self {
            confinement: Confinement::new(&roots),
        }
    }
}

/// Runs blocking file-system work off the async executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SourceError::Unavailable(format!("opening the source stopped: {e}")))?
}

#[async_trait]
impl SourceFactory for MediaSourceFactory {
    async fn open(&self, config: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        match config {
            SourceConfig::Synthetic => Ok(Box::new(SyntheticSource::default())),
            SourceConfig::ImagesFolder { images_folder_path } => {
                let confinement = self.confinement.clone();
                let raw = images_folder_path.clone();
                let source = blocking(move || {
                    let folder = confinement.resolve(Path::new(&raw))?;
                    ImagesFolderSource::open(&folder, &confinement)
                })
                .await?;
                Ok(Box::new(source))
            }
            SourceConfig::VideoFile {
                video_path,
                looping,
            } => {
                let options = VideoOptions { looping: *looping };
                let confinement = self.confinement.clone();
                let raw = video_path.clone();
                let source = blocking(move || {
                    let path = confinement.resolve(Path::new(&raw))?;
                    VideoFileSource::open(&path, options)
                })
                .await?;
                Ok(Box::new(source))
            }
            SourceConfig::Rtsp { url } => Ok(Box::new(RtspSource::open(url).await?)),
            #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
            SourceConfig::UsbCamera { device_id } => {
                let device_id = *device_id;
                Ok(Box::new(
                    blocking(move || V4l2Source::open(device_id)).await?,
                ))
            }
            SourceConfig::SampleDataset { dataset_id } => {
                Ok(Box::new(open_sample_dataset(*dataset_id)?))
            }
            #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
            SourceConfig::UsbCamera { .. } => Err(SourceError::Unsupported(
                "USB cameras are supported on 64-bit Linux only".into(),
            )),
        }
    }
}
