//! The neural detectors through the live pipeline's port: weights found in a models folder
//! (small random-weight models), fitted from the synthetic scene's annotated frames with every
//! kind of annotation, run on later frames. Random weights make *what* is found arbitrary, so
//! these tests check the plumbing and its contracts (shapes, determinism, errors that name the
//! problem, weights loaded once); `algorithms_parity.rs` checks the maths against the reference.

use std::sync::Arc;

use visprompt_domain::{
    Algorithm, AlgorithmParams, Device, DisplayName, EncoderModel, LabelId, MatcherParams,
    ModelConfig, ModelConfigId, Point, Precision, ProjectId, Shape, Timestamp,
};
use visprompt_media::SyntheticScene;
use visprompt_media::synthetic::ObjectKind;
use visprompt_runtime::mask::rasterize;
use visprompt_runtime::{
    Detection, DetectorError, DetectorFactory, Reference, ReferenceAnnotation,
};
use visprompt_vision::detector::VisionDetectorFactory;
use visprompt_vision::store::{EncoderPrecision, ModelStore, ModelStoreSettings};

fn store(models: Option<&std::path::Path>, cache: &std::path::Path) -> Arc<ModelStore> {
    Arc::new(ModelStore::new(ModelStoreSettings {
        models_dir: models.map(|p| p.to_path_buf()),
        cache_dir: cache.to_path_buf(),
        offline: true,
        hub_endpoint: None,
        hub_token: None,
    }))
}

fn config(params: AlgorithmParams) -> ModelConfig {
    ModelConfig {
        id: ModelConfigId::new(),
        project_id: ProjectId::new(),
        name: DisplayName::parse("neural").unwrap(),
        active: true,
        device: Device::Cpu,
        params,
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    }
}

/// Product defaults of `algorithm`, with thresholds at their floor so random weights still
/// produce candidates, in f32.
fn permissive(algorithm: Algorithm) -> ModelConfig {
    let params = match algorithm.default_params() {
        AlgorithmParams::Matcher(mut p) => {
            p.confidence_threshold = 0.01;
            p.precision = Precision::Fp32;
            AlgorithmParams::Matcher(p)
        }
        AlgorithmParams::SoftMatcher(mut p) => {
            p.confidence_threshold = 0.01;
            p.precision = Precision::Fp32;
            p.num_foreground_points = 8;
            AlgorithmParams::SoftMatcher(p)
        }
        AlgorithmParams::PerDino(mut p) => {
            p.confidence_threshold = 0.01;
            p.precision = Precision::Fp32;
            p.num_foreground_points = 8;
            AlgorithmParams::PerDino(p)
        }
        other => other,
    };
    config(params)
}

/// How a test draws an object's annotation from its exact mask.
type ShapeOf = fn(&visprompt_runtime::BitMask) -> Shape;

/// Frame `t` with one annotation per `(kind, label, shape maker)`.
fn reference(
    scene: &SyntheticScene,
    t: u64,
    marks: &[(ObjectKind, LabelId, ShapeOf)],
) -> Reference {
    let truth = scene.ground_truth(t);
    let size = visprompt_domain::FrameSize::new(scene.width(), scene.height()).unwrap();
    Reference {
        image: Arc::new(scene.render(t)),
        annotations: marks
            .iter()
            .map(|&(kind, label_id, make)| {
                let object = &truth.iter().find(|(k, _)| *k == kind).unwrap().1;
                let shape = make(object);
                let mask = rasterize(&shape, size, 5.0);
                ReferenceAnnotation {
                    label_id,
                    shape,
                    mask,
                }
            })
            .collect(),
    }
}

fn as_mask(m: &visprompt_runtime::BitMask) -> Shape {
    Shape::Mask(m.to_rle())
}

fn as_box(m: &visprompt_runtime::BitMask) -> Shape {
    let b = m.bounding_box().unwrap();
    Shape::Rectangle {
        min: Point {
            x: f64::from(b.x_min),
            y: f64::from(b.y_min),
        },
        max: Point {
            x: f64::from(b.x_max),
            y: f64::from(b.y_max),
        },
    }
}

fn as_points(m: &visprompt_runtime::BitMask) -> Shape {
    let b = m.bounding_box().unwrap();
    let c = Point {
        x: f64::from(b.x_min + b.x_max) / 2.0,
        y: f64::from(b.y_min + b.y_max) / 2.0,
    };
    // A click in the middle and a negative one at the image corner.
    Shape::Points(vec![(c, true), (Point { x: 1.0, y: 1.0 }, false)])
}

fn summary(d: &[Detection]) -> Vec<(LabelId, u32, u64)> {
    d.iter()
        .map(|d| (d.label_id, (d.score * 1e6) as u32, d.mask.area()))
        .collect()
}

#[test]
fn each_algorithm_fits_from_every_annotation_kind_and_runs_deterministically() {
    let models = tempfile::tempdir().unwrap();
    visprompt_testkit::tiny_models_dir(models.path());
    let store = store(Some(models.path()), &models.path().join("cache"));
    let factory = VisionDetectorFactory::new(store);
    let scene = SyntheticScene::default();
    let (a, b) = (LabelId::new(), LabelId::new());
    let kinds = scene.kinds();
    let refs = [
        reference(&scene, 0, &[(kinds[0], a, as_mask), (kinds[1], b, as_box)]),
        reference(&scene, 7, &[(kinds[0], a, as_points)]),
    ];
    let target = scene.render(31);
    for algorithm in [
        Algorithm::Matcher,
        Algorithm::SoftMatcher,
        Algorithm::PerDino,
    ] {
        let cfg = permissive(algorithm);
        let mut detector = factory
            .build(&cfg, &refs)
            .unwrap_or_else(|e| panic!("{algorithm:?} builds: {e}"));
        let first = detector.detect(&target).expect("detects");
        // With these fixed weights and floor thresholds every algorithm keeps something.
        assert!(!first.is_empty(), "{algorithm:?}: no detection at all");
        for d in &first {
            assert!(
                d.label_id == a || d.label_id == b,
                "{algorithm:?}: a known label"
            );
            assert_eq!(
                (d.mask.width(), d.mask.height()),
                (target.width(), target.height()),
                "{algorithm:?}: masks the frame's size"
            );
            assert!(d.mask.area() > 0 && (0.0..=1.0).contains(&d.score));
            assert_eq!(Some(d.bbox), d.mask.bounding_box(), "box from the mask");
        }
        // A fresh fit on the same references gives the same detections.
        let mut again = factory.build(&cfg, &refs).unwrap();
        assert_eq!(
            summary(&first),
            summary(&again.detect(&target).unwrap()),
            "{algorithm:?}: deterministic"
        );
    }
}

#[test]
fn weights_are_loaded_once_and_shared() {
    let models = tempfile::tempdir().unwrap();
    visprompt_testkit::tiny_models_dir(models.path());
    let store = store(Some(models.path()), &models.path().join("cache"));
    let e1 = store
        .encoder("dinov3_small", EncoderPrecision::F32)
        .unwrap();
    let e2 = store
        .encoder("dinov3_small", EncoderPrecision::F32)
        .unwrap();
    assert!(Arc::ptr_eq(&e1, &e2));
    let s1 = store
        .segmenter("sam_hq_tiny", EncoderPrecision::F32)
        .unwrap();
    assert!(Arc::ptr_eq(
        &s1,
        &store
            .segmenter("sam_hq_tiny", EncoderPrecision::F32)
            .unwrap()
    ));
    // Each precision is its own model (the bf16 one packs TinyViT's linear layers in bf16),
    // also loaded once.
    let s2 = store
        .segmenter("sam_hq_tiny", EncoderPrecision::Bf16)
        .unwrap();
    assert!(!Arc::ptr_eq(&s1, &s2));
    assert!(Arc::ptr_eq(
        &s2,
        &store
            .segmenter("sam_hq_tiny", EncoderPrecision::Bf16)
            .unwrap()
    ));
}

#[test]
fn missing_weights_offline_name_the_file_and_how_to_provide_it() {
    let empty = tempfile::tempdir().unwrap();
    let factory = VisionDetectorFactory::new(store(None, empty.path()));
    let scene = SyntheticScene::default();
    let refs = [reference(
        &scene,
        0,
        &[(scene.kinds()[0], LabelId::new(), as_mask)],
    )];
    let err = match factory.build(&permissive(Algorithm::Matcher), &refs) {
        Err(e) => e,
        Ok(_) => panic!("no weights anywhere, yet it built"),
    };
    let DetectorError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}");
    };
    for needle in ["dinov3_small", "model.safetensors", "MODELS_DIR", "OFFLINE"] {
        assert!(message.contains(needle), "{needle:?} in {message:?}");
    }
}

#[test]
fn unsupported_choices_are_refused_with_the_reason() {
    let models = tempfile::tempdir().unwrap();
    visprompt_testkit::tiny_models_dir(models.path());
    let factory = VisionDetectorFactory::new(store(Some(models.path()), models.path()));
    let scene = SyntheticScene::default();
    let refs = [reference(
        &scene,
        0,
        &[(scene.kinds()[0], LabelId::new(), as_mask)],
    )];
    let huge = config(AlgorithmParams::Matcher(MatcherParams {
        encoder_model: EncoderModel::Dinov3Huge,
        ..MatcherParams::default()
    }));
    let msg = factory.build(&huge, &refs).err().unwrap().to_string();
    assert!(msg.contains("dinov3_huge"), "{msg}");
    let mut cuda = permissive(Algorithm::Matcher);
    cuda.device = Device::Cuda(0);
    let msg = factory.build(&cuda, &refs).err().unwrap().to_string();
    assert!(msg.contains("cpu"), "{msg}");
}
