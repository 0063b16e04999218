//! Builds the classical detector from a stored model configuration; every other algorithm needs
//! model weights, which this crate does not have.

use visprompt_domain::{AlgorithmParams, ModelConfig};
use visprompt_runtime::{Detector, DetectorError, DetectorFactory, Reference};

use crate::detector::ClassicalDetector;

/// Builds [`ClassicalDetector`]s for `classical` model configurations.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClassicalDetectorFactory;

impl DetectorFactory for ClassicalDetectorFactory {
    fn build(
        &self,
        model: &ModelConfig,
        references: &[Reference],
    ) -> Result<Box<dyn Detector>, DetectorError> {
        match &model.params {
            AlgorithmParams::Classical(params) => Ok(Box::new(ClassicalDetector::fit(
                params.clone(),
                references,
            )?)),
            other => Err(DetectorError::Unavailable(format!(
                "the {} algorithm needs model weights; not available in this build, which runs \
                 only the weights-free classical detector (choose the \"{}\" model)",
                other.algorithm().display_name(),
                visprompt_domain::Algorithm::Classical.as_str(),
            ))),
        }
    }
}
