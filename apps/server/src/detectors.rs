//! The detector factory the pipeline gets: the weights-free classical detector for `classical`
//! configurations, the neural models (`visprompt-vision`) for every other algorithm.

use std::sync::Arc;

use visprompt_classical::ClassicalDetectorFactory;
use visprompt_domain::{AlgorithmParams, ModelConfig};
use visprompt_runtime::{Detector, DetectorError, DetectorFactory, Reference};
use visprompt_vision::detector::VisionDetectorFactory;
use visprompt_vision::store::ModelStore;

pub struct DetectorRouter {
    classical: ClassicalDetectorFactory,
    neural: VisionDetectorFactory,
}

impl DetectorRouter {
    pub fn new(models: Arc<ModelStore>) -> Self {
        Self {
            classical: ClassicalDetectorFactory,
            neural: VisionDetectorFactory::new(models),
        }
    }
}

impl DetectorFactory for DetectorRouter {
    fn build(
        &self,
        model: &ModelConfig,
        references: &[Reference],
    ) -> Result<Box<dyn Detector>, DetectorError> {
        match model.params {
            AlgorithmParams::Classical(_) => self.classical.build(model, references),
            _ => self.neural.build(model, references),
        }
    }
}
