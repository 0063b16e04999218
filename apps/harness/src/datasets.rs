//! Datasets on disk: which images of which class, with which masks.
//!
//! Four layouts are read, found by what the root holds:
//! - **PerSeg**: `Images/<class>/<name>.jpg|png` and `Annotations/<class>/<name>.png`;
//! - **folder** (FSS-1000 as the reference library arranges it): `images/<class>/<name>.jpg|png`
//!   and `masks/<class>/<name>.png`;
//! - **FSS-1000** as published: `<class>/<n>.jpg` with its mask `<class>/<n>.png` beside it;
//! - **COCO**: `annotations.json` with instance segmentations and `images/` ([`crate::coco`]).
//!
//! Classes and images are in name order (natural order: `2` before `10`), so a seed picks the same
//! references on every machine. A mask is the image's non-zero pixels. Anything malformed (an
//! image without its mask, an empty class, no class at all) is an error naming the path.

use std::path::{Path, PathBuf};

use visprompt_runtime::BitMask;

use crate::coco::CocoMask;

/// Where an image's object mask comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum MaskSource {
    /// A mask image: its non-zero pixels.
    File(PathBuf),
    /// COCO instance segmentations of the class on the image.
    Coco(CocoMask),
}

impl MaskSource {
    pub fn load(&self) -> Result<BitMask, DatasetError> {
        match self {
            MaskSource::File(path) => {
                let img = image::open(path)
                    .map_err(|e| DatasetError::Unreadable(path.clone(), e.to_string()))?
                    .to_luma8();
                Ok(BitMask::from_fn(img.width(), img.height(), |x, y| {
                    img.get_pixel(x, y).0[0] != 0
                }))
            }
            MaskSource::Coco(m) => m
                .rasterize()
                .map_err(|e| DatasetError::Unreadable(PathBuf::from("annotations.json"), e)),
        }
    }

    /// For messages: the file, or the annotations it comes from.
    pub fn describe(&self) -> String {
        match self {
            MaskSource::File(path) => path.display().to_string(),
            MaskSource::Coco(_) => "the COCO annotations".into(),
        }
    }
}

/// One image and its object mask.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub image: PathBuf,
    pub mask: MaskSource,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    pub name: String,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    PerSeg,
    Folder,
    Fss1000,
    Coco,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub root: PathBuf,
    pub layout: Layout,
    pub classes: Vec<Class>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatasetError {
    #[error(
        "{0}: not a dataset: expected Images/ and Annotations/ (PerSeg), images/ and masks/ (folder layout), class folders of N.jpg with N.png masks (FSS-1000) or annotations.json and images/ (COCO)"
    )]
    UnknownLayout(PathBuf),
    #[error("{image}: no mask for this image (looked for {expected})")]
    MissingMask { image: PathBuf, expected: PathBuf },
    #[error("{0}: a class folder without images")]
    EmptyClass(PathBuf),
    #[error("{0}: cannot be read: {1}")]
    Unreadable(PathBuf, String),
}

/// Sorts names so that embedded numbers compare by value (`2.jpg` before `10.jpg`).
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for ch in name.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else {
            if !digits.is_empty() {
                out.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(ch);
        }
    }
    out.push((text, digits.parse().unwrap_or(0)));
    out
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| DatasetError::Unreadable(dir.to_path_buf(), e.to_string()))?;
    let mut out: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    out.sort_by_key(|p| natural_key(&p.file_name().unwrap_or_default().to_string_lossy()));
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

fn is_jpeg(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg")
    )
}

/// A root of class folders, some holding a `.jpg` with a `.png` of the same name beside it.
fn looks_like_fss1000(root: &Path) -> Result<bool, DatasetError> {
    for class_dir in entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let paired = entries(&class_dir)?
            .iter()
            .any(|p| is_jpeg(p) && p.with_extension("png").is_file());
        if paired {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Dataset {
    /// Reads the dataset at `root`, finding its layout.
    pub fn open(root: &Path) -> Result<Self, DatasetError> {
        if root.join("annotations.json").is_file() && root.join("images").is_dir() {
            return crate::coco::open_coco(root);
        }
        let (layout, images, masks) =
            if root.join("Images").is_dir() && root.join("Annotations").is_dir() {
                (
                    Layout::PerSeg,
                    root.join("Images"),
                    root.join("Annotations"),
                )
            } else if root.join("images").is_dir() && root.join("masks").is_dir() {
                (Layout::Folder, root.join("images"), root.join("masks"))
            } else if looks_like_fss1000(root)? {
                // Images and masks share the class folders: the .jpg files are the images.
                (Layout::Fss1000, root.to_path_buf(), root.to_path_buf())
            } else {
                return Err(DatasetError::UnknownLayout(root.to_path_buf()));
            };
        let mut classes = Vec::new();
        for class_dir in entries(&images)?.into_iter().filter(|p| p.is_dir()) {
            let name = class_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut samples = Vec::new();
            let is_sample = |p: &Path| match layout {
                Layout::Fss1000 => is_jpeg(p),
                _ => is_image(p),
            };
            for image in entries(&class_dir)?.into_iter().filter(|p| is_sample(p)) {
                let stem = image
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let mask = masks.join(&name).join(format!("{stem}.png"));
                if !mask.is_file() {
                    return Err(DatasetError::MissingMask {
                        image,
                        expected: mask,
                    });
                }
                samples.push(Sample {
                    image,
                    mask: MaskSource::File(mask),
                });
            }
            if samples.is_empty() {
                return Err(DatasetError::EmptyClass(class_dir));
            }
            classes.push(Class { name, samples });
        }
        if classes.is_empty() {
            return Err(DatasetError::EmptyClass(images));
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            layout,
            classes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn perseg_and_folder_layouts_read_in_natural_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for n in ["10", "2", "1"] {
            touch(&r.join(format!("Images/dog/{n}.jpg")));
            touch(&r.join(format!("Annotations/dog/{n}.png")));
        }
        touch(&r.join("Images/cat/a.png"));
        touch(&r.join("Annotations/cat/a.png"));
        let d = Dataset::open(r).unwrap();
        assert_eq!(d.layout, Layout::PerSeg);
        let names: Vec<&str> = d.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["cat", "dog"]);
        let dogs: Vec<String> = d.classes[1]
            .samples
            .iter()
            .map(|s| s.image.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(dogs, ["1", "2", "10"]);

        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("images/apple/1.jpg"));
        touch(&dir.path().join("masks/apple/1.png"));
        assert_eq!(Dataset::open(dir.path()).unwrap().layout, Layout::Folder);
    }

    #[test]
    fn fss1000_pairs_each_jpeg_with_the_png_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for n in ["10", "2", "1"] {
            touch(&r.join(format!("abacus/{n}.jpg")));
            touch(&r.join(format!("abacus/{n}.png")));
        }
        touch(&r.join("zebra/1.jpg"));
        touch(&r.join("zebra/1.png"));
        let d = Dataset::open(r).unwrap();
        assert_eq!(d.layout, Layout::Fss1000);
        assert_eq!(d.classes.len(), 2);
        let abacus = &d.classes[0];
        assert_eq!(abacus.name, "abacus");
        let pairs: Vec<(String, String)> = abacus
            .samples
            .iter()
            .map(|s| {
                (
                    s.image.file_name().unwrap().to_string_lossy().into_owned(),
                    s.mask.describe(),
                )
            })
            .collect();
        assert_eq!(pairs.len(), 3, "masks are not taken for images: {pairs:?}");
        assert_eq!(pairs[0].0, "1.jpg");
        assert_eq!(pairs[2].0, "10.jpg");
        assert!(pairs[2].1.ends_with("abacus/10.png"), "{pairs:?}");

        // An image whose mask is missing is named.
        touch(&r.join("zebra/2.jpg"));
        let err = Dataset::open(r).unwrap_err();
        assert!(err.to_string().contains("zebra/2.jpg"), "{err}");
        assert!(err.to_string().contains("zebra/2.png"), "{err}");
    }

    #[test]
    fn malformed_datasets_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        assert!(matches!(
            Dataset::open(r),
            Err(DatasetError::UnknownLayout(_))
        ));
        touch(&r.join("Images/dog/1.jpg"));
        std::fs::create_dir_all(r.join("Annotations/dog")).unwrap();
        let err = Dataset::open(r).unwrap_err();
        assert!(err.to_string().contains("Images/dog/1.jpg"), "{err}");
        assert!(err.to_string().contains("Annotations/dog/1.png"), "{err}");
        touch(&r.join("Annotations/dog/1.png"));
        std::fs::create_dir_all(r.join("Images/empty")).unwrap();
        let err = Dataset::open(r).unwrap_err();
        assert_eq!(err, DatasetError::EmptyClass(r.join("Images/empty")));
    }
}
