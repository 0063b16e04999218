//! A source: where a project's live frames come from. At most one source per project is active;
//! the store keeps a single active-source slot per project, so two can never be active at once.

use crate::entity::Timestamp;
use crate::error::DomainError;
use crate::id::{ProjectId, SourceId};
use crate::value::DisplayName;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    UsbCamera,
    VideoFile,
    ImagesFolder,
    Rtsp,
    SampleDataset,
    Synthetic,
}

impl SourceKind {
    pub const fn as_str(&self) -> &'static str {
        match self {
            SourceKind::UsbCamera => "usb_camera",
            SourceKind::VideoFile => "video_file",
            SourceKind::ImagesFolder => "images_folder",
            SourceKind::Rtsp => "rtsp",
            SourceKind::SampleDataset => "sample_dataset",
            SourceKind::Synthetic => "synthetic",
        }
    }

    /// The name a source gets when the user gives none.
    pub const fn default_name(&self) -> &'static str {
        match self {
            SourceKind::UsbCamera => "USB camera",
            SourceKind::VideoFile => "Video file",
            SourceKind::ImagesFolder => "Images folder",
            SourceKind::Rtsp => "RTSP camera",
            SourceKind::SampleDataset => "Sample dataset",
            SourceKind::Synthetic => "Synthetic scene",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    /// A V4L2 camera, `/dev/video{device_id}`.
    UsbCamera { device_id: u32 },
    /// A video file on the server, inside one of the media roots; `looping` starts it again at
    /// the end, otherwise the last frame stays.
    VideoFile { video_path: String, looping: bool },
    /// A folder of images on the server, inside one of the media roots.
    ImagesFolder { images_folder_path: String },
    /// An RTSP (or RTSPS) camera stream.
    Rtsp { url: String },
    /// A bundled sample dataset; `None` picks the first one.
    SampleDataset { dataset_id: Option<uuid::Uuid> },
    /// Moving textured shapes at known positions: the demo source and ground truth for tests.
    Synthetic,
}

impl SourceConfig {
    pub const MAX_DEVICE_ID: u32 = 255;
    pub const MAX_URL_LEN: usize = 2048;

    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::UsbCamera { .. } => SourceKind::UsbCamera,
            SourceConfig::VideoFile { .. } => SourceKind::VideoFile,
            SourceConfig::ImagesFolder { .. } => SourceKind::ImagesFolder,
            SourceConfig::Rtsp { .. } => SourceKind::Rtsp,
            SourceConfig::SampleDataset { .. } => SourceKind::SampleDataset,
            SourceConfig::Synthetic => SourceKind::Synthetic,
        }
    }

    /// Checks what can be checked without the file system; media paths are confined by
    /// [`crate::MediaRoots`] in the service.
    pub fn check(&self) -> Result<(), DomainError> {
        match self {
            SourceConfig::UsbCamera { device_id } if *device_id > Self::MAX_DEVICE_ID => {
                Err(DomainError::invalid(
                    "device_id",
                    format!("must be between 0 and {}", Self::MAX_DEVICE_ID),
                ))
            }
            SourceConfig::Rtsp { url } => check_url("url", url, &["rtsp", "rtsps"]),
            _ => Ok(()),
        }
    }

    /// The server-side path this source reads, if any.
    pub fn media_path(&self) -> Option<(&'static str, &str)> {
        match self {
            SourceConfig::VideoFile { video_path, .. } => Some(("video_path", video_path)),
            SourceConfig::ImagesFolder { images_folder_path } => {
                Some(("images_folder_path", images_folder_path))
            }
            _ => None,
        }
    }
}

/// A URL check without a URL parser: scheme from `schemes`, a host, no spaces or control
/// characters, bounded length. Enough to refuse garbage early; adapters parse for real.
pub(crate) fn check_url(field: &str, url: &str, schemes: &[&str]) -> Result<(), DomainError> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    if url.len() > SourceConfig::MAX_URL_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {} bytes", SourceConfig::MAX_URL_LEN),
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(DomainError::invalid(
            field,
            format!("must start with {expected}"),
        ));
    };
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err(DomainError::invalid(
            field,
            format!("must start with {expected}"),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(DomainError::invalid(field, "must name a host"));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub id: SourceId,
    pub project_id: ProjectId,
    pub name: DisplayName,
    pub active: bool,
    pub config: SourceConfig,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_urls_need_the_rtsp_scheme_and_a_host() {
        let ok = |url: &str| SourceConfig::Rtsp { url: url.into() }.check().is_ok();
        assert!(ok("rtsp://camera.local:8554/stream"));
        assert!(ok("rtsps://user:pw@10.0.0.5/live"));
        assert!(!ok("http://camera.local/stream"));
        assert!(!ok("rtsp://"));
        assert!(!ok("rtsp://:554/x"));
        assert!(!ok("rtsp://cam era/x"));
        assert!(!ok(&format!("rtsp://h/{}", "a".repeat(3000))));
    }

    #[test]
    fn usb_device_ids_are_bounded() {
        assert!(SourceConfig::UsbCamera { device_id: 0 }.check().is_ok());
        assert!(SourceConfig::UsbCamera { device_id: 256 }.check().is_err());
    }
}
