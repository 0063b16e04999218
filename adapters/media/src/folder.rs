//! The images-folder source: the still images of one folder, in natural order ("img_2" before
//! "img_10"), shown one at a time and moved through by the API (manual navigation).
//! Each image is decoded when it is shown, on a blocking thread, with its size bounded before any
//! pixel is allocated; a file that does not decode is reported and skipped over, never fatal.
//! It does not watch the folder: files added after opening appear when the source is reopened.

use std::cmp::Ordering;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use image::ImageReader;
use visprompt_runtime::{FrameSource, Navigation, RgbImage, SourceError, SourceMode, Thumbnail};

use visprompt_runtime::Confinement;

use crate::decode::{decode_bounded, shrink};

/// File extensions recognised as images, compared without regard to case.
const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tiff", "tif", "webp"];

/// One still image: a file on disk, or bytes built into the program (the sample datasets).
#[derive(Clone, Debug)]
pub(crate) enum Still {
    File(PathBuf),
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
}

impl Still {
    fn name(&self) -> String {
        match self {
            Still::File(path) => path.display().to_string(),
            Still::Embedded { name, .. } => (*name).to_owned(),
        }
    }

    /// Decodes the whole image to RGB. Blocking.
    ///
    /// A file is resolved against `confinement` again right before it is opened, so a file
    /// swapped for a link out of the media roots after the folder was listed is still refused.
    pub(crate) fn decode(
        &self,
        confinement: Option<&Confinement>,
    ) -> Result<RgbImage, SourceError> {
        match self {
            Still::File(listed) => {
                let path = match confinement {
                    Some(confinement) => confinement.resolve(listed)?,
                    None => listed.clone(),
                };
                let reader = ImageReader::open(&path).map_err(|e| {
                    SourceError::Unavailable(format!("cannot read {}: {e}", path.display()))
                })?;
                decode_bounded(reader, &self.name())
            }
            Still::Embedded { bytes, .. } => {
                decode_bounded(ImageReader::new(Cursor::new(*bytes)), &self.name())
            }
        }
    }
}

/// Orders names as people do: runs of digits compare by value, letters without regard to case.
/// Ties (such as "a01" and "a1") fall back to the plain byte order, so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = trim_zeros(&ab[si..i]);
            let nb = trim_zeros(&bb[sj..j]);
            // Without leading zeros, a longer run of digits is a larger number.
            let by_value = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if by_value != Ordering::Equal {
                return by_value;
            }
        } else {
            let by_letter = ab[i].to_ascii_lowercase().cmp(&bb[j].to_ascii_lowercase());
            if by_letter != Ordering::Equal {
                return by_letter;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j)).then_with(|| a.cmp(b))
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[first..]
}

fn is_image_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|ext| {
            EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

/// A manual source over a fixed list of still images.
#[derive(Debug)]
pub struct ImagesFolderSource {
    /// What the source shows, for messages: the folder path or the dataset name.
    origin: String,
    stills: Arc<[Still]>,
    /// The media roots files are checked against when decoded; `None` for built-in images.
    confinement: Option<Arc<Confinement>>,
    position: usize,
}

impl ImagesFolderSource {
    /// Lists the images of `folder` (not its subfolders), in natural order. Blocking.
    ///
    /// Entries that resolve (through symlinks) outside `confinement` are left out, so a link
    /// inside a media root cannot expose a file elsewhere.
    /// Returns `Unavailable` naming the folder when it is missing, unreadable or has no images.
    pub fn open(folder: &Path, confinement: &Confinement) -> Result<Self, SourceError> {
        let shown = folder.display();
        let entries = std::fs::read_dir(folder)
            .map_err(|e| SourceError::Unavailable(format!("cannot read folder {shown}: {e}")))?;
        let mut named = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                SourceError::Unavailable(format!("cannot read folder {shown}: {e}"))
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(message = "Skipping a file whose name is not UTF-8.", folder = %shown);
                continue;
            };
            if name.starts_with('.') || !is_image_name(&name) {
                continue;
            }
            let path = entry.path();
            match confinement.resolve(&path) {
                Ok(resolved) if resolved.is_file() => named.push((name, path)),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(message = "Skipping an image outside the media roots.", %error);
                }
            }
        }
        if named.is_empty() {
            return Err(SourceError::Unavailable(format!(
                "folder {shown} has no images ({})",
                EXTENSIONS.join(", ")
            )));
        }
        named.sort_by(|(a, _), (b, _)| natural_cmp(a, b));
        let stills = named
            .into_iter()
            .map(|(_, path)| Still::File(path))
            .collect();
        let mut source = Self::from_stills(shown.to_string(), stills);
        source.confinement = Some(Arc::new(confinement.clone()));
        Ok(source)
    }

    pub(crate) fn from_stills(origin: String, stills: Vec<Still>) -> Self {
        Self {
            origin,
            stills: stills.into(),
            confinement: None,
            position: 0,
        }
    }

    /// Where the images come from: the folder path, or the dataset's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

#[async_trait]
impl FrameSource for ImagesFolderSource {
    fn mode(&self) -> SourceMode {
        SourceMode::Manual
    }

    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        let stills = Arc::clone(&self.stills);
        let confinement = self.confinement.clone();
        let index = self.position;
        tokio::task::spawn_blocking(move || stills[index].decode(confinement.as_deref()))
            .await
            .map_err(|e| SourceError::Unavailable(format!("the image decoder stopped: {e}")))?
            .map(Some)
    }

    fn navigation(&mut self) -> Option<&mut dyn Navigation> {
        Some(self)
    }
}

impl Navigation for ImagesFolderSource {
    fn len(&self) -> usize {
        self.stills.len()
    }

    fn position(&self) -> usize {
        self.position
    }

    fn seek(&mut self, index: usize) -> Result<(), SourceError> {
        if index >= self.stills.len() {
            return Err(SourceError::OutOfRange {
                index,
                len: self.stills.len(),
            });
        }
        self.position = index;
        Ok(())
    }

    fn thumbnails(
        &mut self,
        offset: usize,
        limit: usize,
        max_side: u32,
    ) -> Result<Vec<Thumbnail>, SourceError> {
        let end = offset.saturating_add(limit).min(self.stills.len());
        let mut thumbnails = Vec::with_capacity(end.saturating_sub(offset));
        for index in offset..end {
            match self.stills[index].decode(self.confinement.as_deref()) {
                Ok(image) => thumbnails.push(Thumbnail {
                    index,
                    image: shrink(image, max_side),
                }),
                // One file that does not decode leaves a gap in the page, as it is skipped in
                // playback; a folder that cannot be read fails the page.
                Err(SourceError::Corrupt(error)) => {
                    tracing::warn!(message = "No thumbnail for an image that does not decode.", %error);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(thumbnails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| natural_cmp(a, b));
        v
    }

    #[test]
    fn numbers_in_names_sort_by_value() {
        assert_eq!(
            sorted(&["img_10.png", "img_2.png", "img_1.png", "IMG_3.png", "a.png"]),
            ["a.png", "img_1.png", "img_2.png", "IMG_3.png", "img_10.png"]
        );
        assert_eq!(natural_cmp("x007", "x7"), "x007".cmp("x7"));
        assert_eq!(natural_cmp("x9", "x10"), Ordering::Less);
        assert_eq!(natural_cmp("frame", "frame_1"), Ordering::Less);
        assert_eq!(
            natural_cmp("99999999999999999999999", "100000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn image_extensions_are_recognised_without_regard_to_case() {
        for name in [
            "a.JPG", "b.jpeg", "c.Png", "d.bmp", "e.TIFF", "f.tif", "g.webp",
        ] {
            assert!(is_image_name(name), "{name}");
        }
        for name in ["a.txt", "b", "c.png.bak", "mp4"] {
            assert!(!is_image_name(name), "{name}");
        }
    }
}
