//! A full evaluation of the classical detector on a generated dataset: every target is scored,
//! and the figures lie in range (the synthetic objects are easy for it: mIoU well above chance).

use visprompt_classical::ClassicalDetectorFactory;
use visprompt_domain::{
    Algorithm, Device, DisplayName, ModelConfig, ModelConfigId, ProjectId, Timestamp,
};
use visprompt_harness::datasets::Dataset;
use visprompt_harness::eval::{Protocol, evaluate};
use visprompt_harness::synthetic::write_synthetic;

#[test]
fn a_classical_evaluation_on_the_synthetic_dataset_completes_with_figures_in_range() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic(dir.path(), 4, (160, 120), 11).unwrap();
    let dataset = Dataset::open(dir.path()).unwrap();
    let model = ModelConfig {
        id: ModelConfigId::new(),
        project_id: ProjectId::new(),
        name: DisplayName::parse("classical").unwrap(),
        active: true,
        device: Device::Cpu,
        params: Algorithm::Classical.default_params(),
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    };
    let mut seen = 0;
    let outcome = evaluate(
        &dataset,
        &ClassicalDetectorFactory,
        &model,
        Protocol { shots: 1, seed: 7 },
        |done, total| {
            assert_eq!(total, 9);
            seen = done;
        },
    )
    .unwrap();
    assert_eq!(seen, 9, "3 classes x (4 images - 1 reference)");
    assert_eq!(outcome.latencies_ms.len(), 9);
    assert_eq!(outcome.fit_ms.len(), 3);
    let miou = outcome.report.miou_cumulative.unwrap();
    assert!((0.0..=1.0).contains(&miou));
    assert!(
        miou > 0.3,
        "the classical detector finds the synthetic objects: mIoU {miou}"
    );
    assert_eq!(outcome.report.classes.len(), 3);
    let fb = outcome.report.fb_iou.unwrap();
    assert!(fb > 0.5 && fb <= 1.0, "FB-IoU {fb}");
}
