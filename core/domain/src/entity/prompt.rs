//! Prompts: what the user showed the system. A visual prompt is a reference frame with annotations
//! (points, a rectangle, a polygon or a mask, each tied to a label); a text prompt is a phrase per
//! label. Shapes are validated against the size of the frame they annotate.

use crate::entity::Timestamp;
use crate::error::DomainError;
use crate::id::{FrameId, LabelId, ProjectId, PromptId};
use crate::value::Phrase;

/// Width and height of an image in pixels, both 1..=[`FrameSize::MAX_SIDE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSize {
    width: u32,
    height: u32,
}

impl FrameSize {
    /// Larger reference images are refused: nothing the pipeline runs needs them, and a 16k×16k
    /// RGB image already takes 768 MiB once decoded.
    pub const MAX_SIDE: u32 = 16_384;

    pub fn new(width: u32, height: u32) -> Result<Self, DomainError> {
        for (field, v) in [("width", width), ("height", height)] {
            if v == 0 || v > Self::MAX_SIDE {
                return Err(DomainError::invalid(
                    field,
                    format!("must be between 1 and {} pixels, got {v}", Self::MAX_SIDE),
                ));
            }
        }
        Ok(Self { width, height })
    }

    pub const fn width(&self) -> u32 {
        self.width
    }

    pub const fn height(&self) -> u32 {
        self.height
    }

    pub const fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }
}

/// A position in pixel coordinates of the frame; (0, 0) is the top-left corner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    fn check(&self, field: &str, size: FrameSize) -> Result<(), DomainError> {
        let (w, h) = (f64::from(size.width()), f64::from(size.height()));
        if !self.x.is_finite() || !self.y.is_finite() {
            return Err(DomainError::invalid(
                field,
                "coordinates must be finite numbers",
            ));
        }
        if !(0.0..=w).contains(&self.x) || !(0.0..=h).contains(&self.y) {
            return Err(DomainError::invalid(
                field,
                format!(
                    "point ({}, {}) lies outside the {}x{} frame",
                    self.x,
                    self.y,
                    size.width(),
                    size.height()
                ),
            ));
        }
        Ok(())
    }
}

/// A binary mask as uncompressed run-length encoding in COCO's convention: `counts` alternate
/// runs of 0 and 1 starting with 0, over the pixels in column-major order; they sum to w·h.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rle {
    pub size: FrameSize,
    pub counts: Vec<u32>,
}

impl Rle {
    /// Number of pixels that are set.
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| u64::from(c))
            .sum()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Clicks on the object (positive) or on what is not the object (negative).
    Points(Vec<(Point, bool)>),
    /// A box from its top-left to its bottom-right corner.
    Rectangle { min: Point, max: Point },
    /// A closed polygon, vertices in order.
    Polygon(Vec<Point>),
    /// A mask the size of the frame.
    Mask(Rle),
}

impl Shape {
    pub const MAX_POINTS: usize = 10_000;

    /// Checks the shape against the frame it annotates; `field` is the JSON path for errors.
    pub fn check(&self, field: &str, size: FrameSize) -> Result<(), DomainError> {
        match self {
            Shape::Points(points) => {
                if points.is_empty() || points.len() > Self::MAX_POINTS {
                    return Err(DomainError::invalid(
                        format!("{field}.points"),
                        format!("must hold 1 to {} points", Self::MAX_POINTS),
                    ));
                }
                if !points.iter().any(|(_, positive)| *positive) {
                    return Err(DomainError::invalid(
                        format!("{field}.points"),
                        "must hold at least one positive point",
                    ));
                }
                for (i, (p, _)) in points.iter().enumerate() {
                    p.check(&format!("{field}.points[{i}]"), size)?;
                }
            }
            Shape::Rectangle { min, max } => {
                min.check(&format!("{field}.min"), size)?;
                max.check(&format!("{field}.max"), size)?;
                if !(min.x < max.x && min.y < max.y) {
                    return Err(DomainError::invalid(
                        field.to_owned(),
                        "a rectangle's max corner must lie right of and below its min corner",
                    ));
                }
            }
            Shape::Polygon(points) => {
                if points.len() < 3 || points.len() > Self::MAX_POINTS {
                    return Err(DomainError::invalid(
                        format!("{field}.points"),
                        format!("a polygon needs 3 to {} vertices", Self::MAX_POINTS),
                    ));
                }
                for (i, p) in points.iter().enumerate() {
                    p.check(&format!("{field}.points[{i}]"), size)?;
                }
                if polygon_area(points) <= f64::EPSILON {
                    return Err(DomainError::invalid(
                        format!("{field}.points"),
                        "the polygon encloses no area",
                    ));
                }
            }
            Shape::Mask(rle) => {
                if rle.size != size {
                    return Err(DomainError::invalid(
                        format!("{field}.size"),
                        format!(
                            "mask is {}x{} but the frame is {}x{}",
                            rle.size.width(),
                            rle.size.height(),
                            size.width(),
                            size.height()
                        ),
                    ));
                }
                let total: u64 = rle.counts.iter().map(|&c| u64::from(c)).sum();
                if total != size.pixels() {
                    return Err(DomainError::invalid(
                        format!("{field}.counts"),
                        format!("runs cover {total} pixels, the frame has {}", size.pixels()),
                    ));
                }
                if rle.area() == 0 {
                    return Err(DomainError::invalid(
                        format!("{field}.counts"),
                        "the mask has no pixel set",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Shoelace formula; the absolute area enclosed by the polygon.
fn polygon_area(points: &[Point]) -> f64 {
    let n = points.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a.x * b.y - b.x * a.y
        })
        .sum();
    twice.abs() / 2.0
}

/// One marked object on a reference frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    pub label_id: LabelId,
    pub shape: Shape,
}

/// A phrase describing the objects of one label.
#[derive(Clone, Debug, PartialEq)]
pub struct TextPhrase {
    pub label_id: LabelId,
    pub text: Phrase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKind {
    Visual,
    Text,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PromptContent {
    Visual {
        frame_id: FrameId,
        annotations: Vec<Annotation>,
    },
    Text {
        phrases: Vec<TextPhrase>,
    },
}

impl PromptContent {
    pub const MAX_ITEMS: usize = 1_000;

    pub fn kind(&self) -> PromptKind {
        match self {
            PromptContent::Visual { .. } => PromptKind::Visual,
            PromptContent::Text { .. } => PromptKind::Text,
        }
    }

    /// Every label the prompt refers to, once each, in first-use order.
    pub fn label_ids(&self) -> Vec<LabelId> {
        let all: Vec<LabelId> = match self {
            PromptContent::Visual { annotations, .. } => {
                annotations.iter().map(|a| a.label_id).collect()
            }
            PromptContent::Text { phrases } => phrases.iter().map(|p| p.label_id).collect(),
        };
        let mut unique = Vec::with_capacity(all.len());
        for id in all {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        unique
    }

    pub fn frame_id(&self) -> Option<FrameId> {
        match self {
            PromptContent::Visual { frame_id, .. } => Some(*frame_id),
            PromptContent::Text { .. } => None,
        }
    }

    /// Checks counts; shapes are checked against the frame by [`Shape::check`].
    pub fn check_counts(&self) -> Result<(), DomainError> {
        let (field, n) = match self {
            PromptContent::Visual { annotations, .. } => ("annotations", annotations.len()),
            PromptContent::Text { phrases } => ("phrases", phrases.len()),
        };
        if n == 0 || n > Self::MAX_ITEMS {
            return Err(DomainError::invalid(
                field,
                format!("must hold 1 to {} items, got {n}", Self::MAX_ITEMS),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub id: PromptId,
    pub project_id: ProjectId,
    pub content: PromptContent,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size() -> FrameSize {
        FrameSize::new(100, 50).unwrap()
    }

    fn p(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    fn check(shape: Shape) -> Result<(), String> {
        shape
            .check("annotations[0].shape", size())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn frame_sizes_of_zero_or_beyond_the_maximum_are_refused() {
        assert!(FrameSize::new(0, 10).is_err());
        assert!(FrameSize::new(10, FrameSize::MAX_SIDE + 1).is_err());
    }

    #[test]
    fn points_on_the_frame_edge_are_inside() {
        assert!(check(Shape::Points(vec![(p(100.0, 50.0), true)])).is_ok());
    }

    #[test]
    fn a_point_outside_the_frame_is_refused_with_its_path() {
        let err = check(Shape::Points(vec![
            (p(1.0, 1.0), true),
            (p(100.5, 1.0), false),
        ]));
        assert!(
            err.unwrap_err()
                .starts_with("annotations[0].shape.points[1]")
        );
    }

    #[test]
    fn non_finite_coordinates_are_refused() {
        assert!(check(Shape::Points(vec![(p(f64::NAN, 1.0), true)])).is_err());
        assert!(check(Shape::Points(vec![(p(f64::INFINITY, 1.0), true)])).is_err());
    }

    #[test]
    fn only_negative_points_are_refused() {
        assert!(check(Shape::Points(vec![(p(1.0, 1.0), false)])).is_err());
    }

    #[test]
    fn a_rectangle_must_have_positive_extent() {
        assert!(
            check(Shape::Rectangle {
                min: p(1.0, 1.0),
                max: p(5.0, 5.0)
            })
            .is_ok()
        );
        assert!(
            check(Shape::Rectangle {
                min: p(5.0, 1.0),
                max: p(5.0, 5.0)
            })
            .is_err()
        );
        assert!(
            check(Shape::Rectangle {
                min: p(6.0, 6.0),
                max: p(5.0, 5.0)
            })
            .is_err()
        );
    }

    #[test]
    fn a_polygon_needs_three_vertices_and_some_area() {
        assert!(
            check(Shape::Polygon(vec![
                p(0.0, 0.0),
                p(10.0, 0.0),
                p(0.0, 10.0)
            ]))
            .is_ok()
        );
        assert!(check(Shape::Polygon(vec![p(0.0, 0.0), p(10.0, 0.0)])).is_err());
        assert!(check(Shape::Polygon(vec![p(0.0, 0.0), p(5.0, 0.0), p(10.0, 0.0)])).is_err());
    }

    #[test]
    fn a_mask_must_match_the_frame_and_cover_every_pixel() {
        let ok = Rle {
            size: size(),
            counts: vec![10, 20, 4970],
        };
        assert!(check(Shape::Mask(ok)).is_ok());
        let short = Rle {
            size: size(),
            counts: vec![10, 20],
        };
        assert!(check(Shape::Mask(short)).is_err());
        let other_size = Rle {
            size: FrameSize::new(50, 100).unwrap(),
            counts: vec![0, 5000],
        };
        assert!(check(Shape::Mask(other_size)).is_err());
        let empty = Rle {
            size: size(),
            counts: vec![5000],
        };
        assert!(check(Shape::Mask(empty)).is_err());
    }

    #[test]
    fn a_mask_whose_counts_overflow_32_bits_when_summed_is_still_checked_exactly() {
        let rle = Rle {
            size: size(),
            counts: vec![u32::MAX, u32::MAX, 2],
        };
        assert!(check(Shape::Mask(rle)).is_err());
    }

    #[test]
    fn label_ids_are_listed_once_each_in_first_use_order() {
        let (a, b) = (LabelId::new(), LabelId::new());
        let shape = Shape::Points(vec![(p(1.0, 1.0), true)]);
        let content = PromptContent::Visual {
            frame_id: FrameId::new(),
            annotations: [a, b, a]
                .iter()
                .map(|&label_id| Annotation {
                    label_id,
                    shape: shape.clone(),
                })
                .collect(),
        };
        assert_eq!(content.label_ids(), vec![a, b]);
    }
}
