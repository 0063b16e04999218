//! Model configurations: which algorithm a project runs, with its parameters and device. Each new
//! project gets one configuration per algorithm with the defaults below; one is active at a time
//! (the store keeps a single active-model slot per project).
//!
//! The defaults of the neural algorithms are those of the system users migrate from, so that a
//! project behaves the same after the move.

use crate::entity::Timestamp;
use crate::error::DomainError;
use crate::id::{ModelConfigId, ProjectId};
use crate::value::{Device, DisplayName};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Matcher,
    PerDino,
    SoftMatcher,
    /// Weights-free matching on colour and texture: runs anywhere, nothing to download.
    Classical,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Matcher,
        Algorithm::PerDino,
        Algorithm::SoftMatcher,
        Algorithm::Classical,
    ];

    pub const fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Matcher => "matcher",
            Algorithm::PerDino => "perdino",
            Algorithm::SoftMatcher => "soft_matcher",
            Algorithm::Classical => "classical",
        }
    }

    pub const fn display_name(&self) -> &'static str {
        match self {
            Algorithm::Matcher => "Matcher",
            Algorithm::PerDino => "PerDINO",
            Algorithm::SoftMatcher => "SoftMatcher",
            Algorithm::Classical => "Classical",
        }
    }

    pub const fn needs_weights(&self) -> bool {
        !matches!(self, Algorithm::Classical)
    }

    pub fn default_params(&self) -> AlgorithmParams {
        match self {
            Algorithm::Matcher => AlgorithmParams::Matcher(MatcherParams::default()),
            Algorithm::PerDino => AlgorithmParams::PerDino(PerDinoParams::default()),
            Algorithm::SoftMatcher => AlgorithmParams::SoftMatcher(SoftMatcherParams::default()),
            Algorithm::Classical => AlgorithmParams::Classical(ClassicalParams::default()),
        }
    }
}

/// The promptable segmenter a neural algorithm uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SamModel {
    #[default]
    SamHqTiny,
    SamHq,
    SamHqBase,
    SamHqLarge,
    SamBase,
    MobileSam,
}

impl SamModel {
    pub const ALL: [SamModel; 6] = [
        SamModel::SamHqTiny,
        SamModel::SamHq,
        SamModel::SamHqBase,
        SamModel::SamHqLarge,
        SamModel::SamBase,
        SamModel::MobileSam,
    ];

    pub const fn as_str(&self) -> &'static str {
        match self {
            SamModel::SamHqTiny => "SAM-HQ-tiny",
            SamModel::SamHq => "SAM-HQ",
            SamModel::SamHqBase => "SAM-HQ-base",
            SamModel::SamHqLarge => "SAM-HQ-large",
            SamModel::SamBase => "SAM-base",
            SamModel::MobileSam => "MobileSAM",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }
}

/// The image encoder a neural algorithm uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EncoderModel {
    #[default]
    Dinov3Small,
    Dinov3SmallPlus,
    Dinov3Base,
    Dinov3Large,
    Dinov3Huge,
    Dinov2Small,
    Dinov2Base,
    Dinov2SmallReg,
    Dinov2BaseReg,
}

impl EncoderModel {
    pub const ALL: [EncoderModel; 9] = [
        EncoderModel::Dinov3Small,
        EncoderModel::Dinov3SmallPlus,
        EncoderModel::Dinov3Base,
        EncoderModel::Dinov3Large,
        EncoderModel::Dinov3Huge,
        EncoderModel::Dinov2Small,
        EncoderModel::Dinov2Base,
        EncoderModel::Dinov2SmallReg,
        EncoderModel::Dinov2BaseReg,
    ];

    pub const fn as_str(&self) -> &'static str {
        match self {
            EncoderModel::Dinov3Small => "dinov3_small",
            EncoderModel::Dinov3SmallPlus => "dinov3_small_plus",
            EncoderModel::Dinov3Base => "dinov3_base",
            EncoderModel::Dinov3Large => "dinov3_large",
            EncoderModel::Dinov3Huge => "dinov3_huge",
            EncoderModel::Dinov2Small => "dinov2_small",
            EncoderModel::Dinov2Base => "dinov2_base",
            EncoderModel::Dinov2SmallReg => "dinov2_small_reg",
            EncoderModel::Dinov2BaseReg => "dinov2_base_reg",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Fp16, Precision::Bf16];

    pub const fn as_str(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MatcherParams {
    pub sam_model: SamModel,
    pub encoder_model: EncoderModel,
    pub precision: Precision,
    pub num_foreground_points: u32,
    pub num_background_points: u32,
    pub confidence_threshold: f64,
    pub use_mask_refinement: bool,
    pub similarity_threshold: Option<f64>,
    pub num_grid_cells: u32,
}

impl Default for MatcherParams {
    fn default() -> Self {
        Self {
            sam_model: SamModel::default(),
            encoder_model: EncoderModel::default(),
            precision: Precision::Bf16,
            num_foreground_points: 5,
            num_background_points: 3,
            confidence_threshold: 0.75,
            use_mask_refinement: false,
            similarity_threshold: None,
            num_grid_cells: 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PerDinoParams {
    pub sam_model: SamModel,
    pub encoder_model: EncoderModel,
    pub precision: Precision,
    pub num_foreground_points: u32,
    pub num_background_points: u32,
    pub num_grid_cells: u32,
    pub point_selection_threshold: f64,
    pub confidence_threshold: f64,
}

impl Default for PerDinoParams {
    fn default() -> Self {
        Self {
            sam_model: SamModel::default(),
            encoder_model: EncoderModel::default(),
            precision: Precision::Bf16,
            num_foreground_points: 80,
            num_background_points: 2,
            num_grid_cells: 16,
            point_selection_threshold: 0.65,
            confidence_threshold: 0.01,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SoftMatcherParams {
    pub sam_model: SamModel,
    pub encoder_model: EncoderModel,
    pub precision: Precision,
    pub num_foreground_points: u32,
    pub num_background_points: u32,
    pub confidence_threshold: f64,
    pub use_sampling: bool,
    pub use_spatial_sampling: bool,
    pub approximate_matching: bool,
    pub softmatching_score_threshold: f64,
    pub softmatching_bidirectional: bool,
}

impl Default for SoftMatcherParams {
    fn default() -> Self {
        Self {
            sam_model: SamModel::default(),
            encoder_model: EncoderModel::default(),
            precision: Precision::Bf16,
            num_foreground_points: 40,
            num_background_points: 2,
            confidence_threshold: 0.42,
            use_sampling: false,
            use_spatial_sampling: false,
            approximate_matching: false,
            softmatching_score_threshold: 0.4,
            softmatching_bidirectional: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClassicalParams {
    /// Minimum match score (0..1) for a detection to be reported.
    pub confidence_threshold: f64,
    /// At most this many detections per frame and label.
    pub max_detections: u32,
    /// The smallest instance reported, as a fraction of the area of the smallest annotated
    /// reference object: 0.01 to 1 inclusive. Smaller blobs are treated as noise. 1 is allowed
    /// (report only objects at least as large as the smallest example); 0 is not, since it would
    /// report single stray cells.
    pub min_area: f64,
}

impl ClassicalParams {
    /// The accepted range of `min_area`, both ends included.
    pub const MIN_AREA_RANGE: (f64, f64) = (0.01, 1.0);
}

impl Default for ClassicalParams {
    fn default() -> Self {
        Self {
            confidence_threshold: 0.5,
            max_detections: 20,
            // The share the detector used before it was configurable, so existing projects
            // keep their behaviour.
            min_area: 0.2,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum AlgorithmParams {
    Matcher(MatcherParams),
    PerDino(PerDinoParams),
    SoftMatcher(SoftMatcherParams),
    Classical(ClassicalParams),
}

fn in_range_u32(field: &str, v: u32, min: u32, max: u32) -> Result<(), DomainError> {
    if v < min || v > max {
        return Err(DomainError::invalid(
            field,
            format!("must be {min} to {max}, got {v}"),
        ));
    }
    Ok(())
}

/// Closed interval `[min, max]`; NaN is refused because no comparison holds for it.
fn in_range_f64(field: &str, v: f64, min: f64, max: f64) -> Result<(), DomainError> {
    if !(v >= min && v <= max) {
        return Err(DomainError::invalid(
            field,
            format!("must be {min} to {max}, got {v}"),
        ));
    }
    Ok(())
}

/// Open interval (0, 1): thresholds of 0 or 1 would accept or refuse everything.
fn unit_open(field: &str, v: f64) -> Result<(), DomainError> {
    if !(v > 0.0 && v < 1.0) {
        return Err(DomainError::invalid(
            field,
            format!("must be above 0 and below 1, got {v}"),
        ));
    }
    Ok(())
}

impl AlgorithmParams {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            AlgorithmParams::Matcher(_) => Algorithm::Matcher,
            AlgorithmParams::PerDino(_) => Algorithm::PerDino,
            AlgorithmParams::SoftMatcher(_) => Algorithm::SoftMatcher,
            AlgorithmParams::Classical(_) => Algorithm::Classical,
        }
    }

    /// Checks every parameter against its range; fields are named as in the API.
    pub fn check(&self) -> Result<(), DomainError> {
        match self {
            AlgorithmParams::Matcher(p) => {
                in_range_u32("num_foreground_points", p.num_foreground_points, 1, 300)?;
                in_range_u32("num_background_points", p.num_background_points, 0, 10)?;
                unit_open("confidence_threshold", p.confidence_threshold)?;
                if let Some(s) = p.similarity_threshold {
                    unit_open("similarity_threshold", s)?;
                }
                in_range_u32("num_grid_cells", p.num_grid_cells, 0, 100)
            }
            AlgorithmParams::PerDino(p) => {
                in_range_u32("num_foreground_points", p.num_foreground_points, 1, 300)?;
                in_range_u32("num_background_points", p.num_background_points, 0, 10)?;
                in_range_u32("num_grid_cells", p.num_grid_cells, 1, 100)?;
                unit_open("point_selection_threshold", p.point_selection_threshold)?;
                unit_open("confidence_threshold", p.confidence_threshold)
            }
            AlgorithmParams::SoftMatcher(p) => {
                in_range_u32("num_foreground_points", p.num_foreground_points, 1, 300)?;
                in_range_u32("num_background_points", p.num_background_points, 0, 10)?;
                unit_open("confidence_threshold", p.confidence_threshold)?;
                unit_open(
                    "softmatching_score_threshold",
                    p.softmatching_score_threshold,
                )
            }
            AlgorithmParams::Classical(p) => {
                unit_open("confidence_threshold", p.confidence_threshold)?;
                in_range_u32("max_detections", p.max_detections, 1, 1000)?;
                let (min, max) = ClassicalParams::MIN_AREA_RANGE;
                in_range_f64("min_area", p.min_area, min, max)
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub id: ModelConfigId,
    pub project_id: ProjectId,
    /// Unique within the project.
    pub name: DisplayName,
    pub active: bool,
    pub device: Device,
    pub params: AlgorithmParams,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithms_defaults_are_valid() {
        for algorithm in Algorithm::ALL {
            algorithm.default_params().check().unwrap();
            assert_eq!(algorithm.default_params().algorithm(), algorithm);
        }
    }

    #[test]
    fn out_of_range_parameters_are_refused_by_name() {
        let mut p = MatcherParams {
            num_foreground_points: 0,
            ..MatcherParams::default()
        };
        let err = AlgorithmParams::Matcher(p.clone()).check().unwrap_err();
        assert!(err.to_string().starts_with("num_foreground_points"));
        p.num_foreground_points = 5;
        p.confidence_threshold = 1.0;
        assert!(AlgorithmParams::Matcher(p.clone()).check().is_err());
        p.confidence_threshold = f64::NAN;
        assert!(AlgorithmParams::Matcher(p).check().is_err());
    }

    #[test]
    fn min_area_is_accepted_from_one_percent_to_one_inclusive() {
        let check = |min_area| {
            AlgorithmParams::Classical(ClassicalParams {
                min_area,
                ..ClassicalParams::default()
            })
            .check()
        };
        for ok in [0.01, 0.2, 0.5, 1.0] {
            check(ok).unwrap();
        }
        for bad in [0.0, 0.009, -0.5, 1.0001, 2.0, f64::NAN, f64::INFINITY] {
            let err = check(bad).unwrap_err();
            assert!(
                matches!(&err, DomainError::Invalid { field, .. } if field == "min_area"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn names_of_models_round_trip() {
        for m in SamModel::ALL {
            assert_eq!(SamModel::parse(m.as_str()), Some(m));
        }
        for m in EncoderModel::ALL {
            assert_eq!(EncoderModel::parse(m.as_str()), Some(m));
        }
        assert_eq!(SamModel::parse("SAM2-tiny"), None);
    }
}
