//! COCO-style instance annotations (`annotations.json` + `images/`), the layout of COCO-20i and
//! LVIS-92i folds: per category, the images with at least one (non-crowd) instance of it; an
//! image's mask for the category is the union of those instances (semantic, as the reference
//! library's LVIS loader in its default mode).
//!
//! Segmentations may be polygons, uncompressed RLE (`counts` as numbers) or compressed RLE
//! (`counts` as COCO's text encoding); all are column-major, as COCO defines them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use visprompt_domain::{FrameSize, Point, Rle, Shape};
use visprompt_runtime::BitMask;
use visprompt_runtime::mask::rasterize;

use crate::datasets::{Class, Dataset, DatasetError, Layout, MaskSource, Sample};

/// One instance's outline or pixels.
#[derive(Clone, Debug, PartialEq)]
pub enum CocoShape {
    /// Vertices `x, y` in pixels.
    Polygon(Vec<(f64, f64)>),
    /// Runs of 0s and 1s, column-major, starting with 0s.
    Rle(Vec<u32>),
}

/// The instances of one category on one image.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoMask {
    pub width: u32,
    pub height: u32,
    pub shapes: Vec<CocoShape>,
}

impl CocoMask {
    pub fn rasterize(&self) -> Result<BitMask, String> {
        let size = FrameSize::new(self.width, self.height).map_err(|e| e.to_string())?;
        let mut out = BitMask::new(self.width, self.height);
        for shape in &self.shapes {
            let m = match shape {
                CocoShape::Polygon(v) => rasterize(
                    &Shape::Polygon(v.iter().map(|&(x, y)| Point { x, y }).collect()),
                    size,
                    0.0,
                ),
                CocoShape::Rle(counts) => {
                    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
                    if total != u64::from(self.width) * u64::from(self.height) {
                        return Err(format!(
                            "RLE covers {total} pixels, the image has {}",
                            u64::from(self.width) * u64::from(self.height)
                        ));
                    }
                    BitMask::from_rle(&Rle {
                        size,
                        counts: counts.clone(),
                    })
                }
            };
            out.union_with(&m);
        }
        Ok(out)
    }
}

/// COCO's compressed RLE text: 6-bit groups (offset by 48), 5 value bits each, a continuation
/// bit, a sign bit in the last group; from the third count on, each value is a difference to
/// the count two before.
pub fn decode_compressed_rle(text: &str) -> Result<Vec<u32>, String> {
    let bytes = text.as_bytes();
    let mut counts: Vec<i64> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let mut value: i64 = 0;
        let mut k = 0;
        loop {
            let c = i64::from(*bytes.get(p).ok_or("RLE text ends inside a number")?) - 48;
            if !(0..64).contains(&c) {
                return Err(format!("RLE text has an invalid character at {p}"));
            }
            value |= (c & 0x1f) << (5 * k);
            p += 1;
            k += 1;
            if c & 0x20 == 0 {
                if c & 0x10 != 0 {
                    value |= -1i64 << (5 * k);
                }
                break;
            }
            if k > 12 {
                return Err("RLE number too long".into());
            }
        }
        if counts.len() > 2 {
            value += counts[counts.len() - 2];
        }
        counts.push(value);
    }
    counts
        .into_iter()
        .map(|c| u32::try_from(c).map_err(|_| format!("RLE count {c} out of range")))
        .collect()
}

fn shapes_of(segmentation: &Value) -> Result<Vec<CocoShape>, String> {
    match segmentation {
        Value::Array(polys) => polys
            .iter()
            .map(|p| {
                let v: Vec<f64> = p
                    .as_array()
                    .ok_or("a polygon is not a list of numbers")?
                    .iter()
                    .map(|x| x.as_f64().ok_or("a polygon coordinate is not a number"))
                    .collect::<Result<_, _>>()?;
                if v.len() < 6 || !v.len().is_multiple_of(2) {
                    return Err("a polygon needs at least 3 x, y pairs".to_string());
                }
                Ok(CocoShape::Polygon(
                    v.chunks(2).map(|c| (c[0], c[1])).collect(),
                ))
            })
            .collect(),
        Value::Object(o) => {
            let counts = match o.get("counts") {
                Some(Value::String(s)) => decode_compressed_rle(s)?,
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|c| {
                        c.as_u64()
                            .and_then(|c| u32::try_from(c).ok())
                            .ok_or("an RLE count is not a small non-negative number")
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err("an RLE segmentation without counts".into()),
            };
            Ok(vec![CocoShape::Rle(counts)])
        }
        _ => Err("a segmentation is neither polygons nor RLE".into()),
    }
}

/// Reads `root/annotations.json` with its images under `root/images/`.
pub fn open_coco(root: &Path) -> Result<Dataset, DatasetError> {
    let json_path = root.join("annotations.json");
    let bad = |message: String| DatasetError::Unreadable(json_path.clone(), message);
    let text = std::fs::read_to_string(&json_path).map_err(|e| bad(e.to_string()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let list = |key: &str| -> Result<&Vec<Value>, DatasetError> {
        doc.get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("no \"{key}\" list")))
    };
    let mut images: BTreeMap<u64, (String, u32, u32)> = BTreeMap::new();
    for im in list("images")? {
        let id = im["id"]
            .as_u64()
            .ok_or_else(|| bad("an image without an id".into()))?;
        let name = im["file_name"]
            .as_str()
            .ok_or_else(|| bad(format!("image {id} without a file_name")))?;
        if name.contains("..") || name.starts_with('/') {
            return Err(bad(format!(
                "image {id}: file_name {name:?} leaves the images folder"
            )));
        }
        let dim = |k: &str| {
            im[k]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .ok_or_else(|| bad(format!("image {id} without a positive {k}")))
        };
        images.insert(id, (name.to_string(), dim("width")?, dim("height")?));
    }
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for c in list("categories")? {
        let id = c["id"]
            .as_u64()
            .ok_or_else(|| bad("a category without an id".into()))?;
        names.insert(id, c["name"].as_str().unwrap_or("?").to_string());
    }
    // category → image → shapes
    let mut per: BTreeMap<u64, BTreeMap<u64, Vec<CocoShape>>> = BTreeMap::new();
    for (n, a) in list("annotations")?.iter().enumerate() {
        if a["iscrowd"].as_u64() == Some(1) {
            continue;
        }
        let image = a["image_id"]
            .as_u64()
            .filter(|i| images.contains_key(i))
            .ok_or_else(|| bad(format!("annotation {n} refers to no listed image")))?;
        let category = a["category_id"]
            .as_u64()
            .filter(|c| names.contains_key(c))
            .ok_or_else(|| bad(format!("annotation {n} refers to no listed category")))?;
        let shapes =
            shapes_of(&a["segmentation"]).map_err(|e| bad(format!("annotation {n}: {e}")))?;
        per.entry(category)
            .or_default()
            .entry(image)
            .or_default()
            .extend(shapes);
    }
    let mut classes = Vec::new();
    for (category, by_image) in per {
        let samples = by_image
            .into_iter()
            .map(|(image, shapes)| {
                let (file, width, height) = &images[&image];
                let path = root.join("images").join(file);
                if !path.is_file() {
                    return Err(DatasetError::Unreadable(path, "no such image".into()));
                }
                Ok(Sample {
                    image: path,
                    mask: MaskSource::Coco(CocoMask {
                        width: *width,
                        height: *height,
                        shapes,
                    }),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        classes.push(Class {
            name: names[&category].clone(),
            samples,
        });
    }
    if classes.is_empty() {
        return Err(bad("no annotated category".into()));
    }
    Ok(Dataset {
        root: root.to_path_buf(),
        layout: Layout::Coco,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_rle_decodes_as_coco_encodes_it() {
        // Counts [1, 2, 3, 1, 2] encoded by hand as COCO's encoder does: the first three as they
        // are ('1', '2', '3'), then differences to the count two before: 1 - 2 = -1 and
        // 2 - 3 = -1, each one 5-bit group 0x1f with the sign bit set, + 48 = 'O'.
        assert_eq!(decode_compressed_rle("123OO").unwrap(), vec![1, 2, 3, 1, 2]);
        assert!(decode_compressed_rle("1\u{7f}").is_err());
    }

    #[test]
    fn polygons_and_rle_of_a_category_merge_per_image() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("images")).unwrap();
        std::fs::write(r.join("images/a.jpg"), b"x").unwrap();
        std::fs::write(r.join("images/b.jpg"), b"x").unwrap();
        let doc = serde_json::json!({
            "images": [
                {"id": 1, "file_name": "a.jpg", "width": 4, "height": 3},
                {"id": 2, "file_name": "b.jpg", "width": 4, "height": 3}
            ],
            "categories": [{"id": 5, "name": "cup"}, {"id": 2, "name": "cat"}],
            "annotations": [
                {"image_id": 1, "category_id": 5, "segmentation": [[0, 0, 2, 0, 2, 3, 0, 3]], "iscrowd": 0},
                {"image_id": 1, "category_id": 5, "segmentation": {"size": [3, 4], "counts": [9, 3]}, "iscrowd": 0},
                {"image_id": 2, "category_id": 2, "segmentation": {"size": [3, 4], "counts": "123OO"}, "iscrowd": 1}
            ]
        });
        std::fs::write(r.join("annotations.json"), doc.to_string()).unwrap();
        let d = open_coco(r).unwrap();
        // Only the cup has a non-crowd instance.
        assert_eq!(d.classes.len(), 1);
        assert_eq!(d.classes[0].name, "cup");
        let MaskSource::Coco(m) = &d.classes[0].samples[0].mask else {
            panic!("a COCO mask")
        };
        let mask = m.rasterize().unwrap();
        // The polygon covers columns 0-1, the RLE the last column (pixels 9..12 column-major).
        assert_eq!(mask.area(), 6 + 3);
        assert!(mask.get(0, 0) && mask.get(1, 2) && mask.get(3, 1) && !mask.get(2, 1));
    }

    #[test]
    fn malformed_annotations_name_the_file_and_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("images")).unwrap();
        let doc = serde_json::json!({
            "images": [{"id": 1, "file_name": "../escape.jpg", "width": 4, "height": 3}],
            "categories": [], "annotations": []
        });
        std::fs::write(r.join("annotations.json"), doc.to_string()).unwrap();
        let err = open_coco(r).unwrap_err().to_string();
        assert!(
            err.contains("annotations.json") && err.contains("leaves the images folder"),
            "{err}"
        );
        let doc = serde_json::json!({
            "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
            "categories": [{"id": 1, "name": "x"}],
            "annotations": [{"image_id": 7, "category_id": 1, "segmentation": [[0,0,1,0,1,1]]}]
        });
        std::fs::write(r.join("annotations.json"), doc.to_string()).unwrap();
        let err = open_coco(r).unwrap_err().to_string();
        assert!(
            err.contains("annotation 0 refers to no listed image"),
            "{err}"
        );
    }
}
