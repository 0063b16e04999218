//! The classical detector against the synthetic scene's exact ground truth: fitted from one or
//! two annotated frames, it must segment the same kinds of object in later frames where they
//! have moved, and report nothing on frames where they are absent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use visprompt_classical::ClassicalDetectorFactory;
use visprompt_domain::{
    Algorithm, AlgorithmParams, ClassicalParams, Device, DisplayName, FrameSize, LabelId,
    ModelConfig, ModelConfigId, Point, ProjectId, Shape, Timestamp,
};
use visprompt_media::SyntheticScene;
use visprompt_media::synthetic::ObjectKind;
use visprompt_runtime::mask::rasterize;
use visprompt_runtime::{
    BitMask, Detection, Detector, DetectorError, DetectorFactory, Reference, ReferenceAnnotation,
    RgbImage,
};

/// Frames the detector is evaluated on: well after the reference frames, spread over a few
/// periods of the objects' paths.
const EVALUATION_FRAMES: std::ops::Range<u64> = 40..60;
const FRAME_STEP: u64 = 9;

fn model(params: AlgorithmParams) -> ModelConfig {
    ModelConfig {
        id: ModelConfigId::new(),
        project_id: ProjectId::new(),
        name: DisplayName::parse("classical").unwrap(),
        active: true,
        device: Device::Cpu,
        params,
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    }
}

fn classical() -> ModelConfig {
    model(AlgorithmParams::Classical(ClassicalParams::default()))
}

/// Frame `t` of `scene` with the ground-truth masks of `labelled` kinds as annotations, the way
/// a user's mask prompt arrives: the shape as RLE and the rasterised mask.
fn reference(scene: &SyntheticScene, t: u64, labelled: &[(ObjectKind, LabelId)]) -> Reference {
    let truth = scene.ground_truth(t);
    let annotations = labelled
        .iter()
        .map(|&(kind, label_id)| {
            let mask = truth.iter().find(|(k, _)| *k == kind).unwrap().1.clone();
            ReferenceAnnotation {
                label_id,
                shape: Shape::Mask(mask.to_rle()),
                mask,
            }
        })
        .collect();
    Reference {
        image: Arc::new(scene.render(t)),
        annotations,
    }
}

fn build(references: &[Reference]) -> Box<dyn Detector> {
    ClassicalDetectorFactory
        .build(&classical(), references)
        .expect("the classical detector builds")
}

fn best_iou(detections: &[Detection], label_id: LabelId, truth: &BitMask) -> f64 {
    detections
        .iter()
        .filter(|d| d.label_id == label_id)
        .map(|d| d.mask.iou(truth))
        .fold(0.0, f64::max)
}

/// Mean over the evaluation frames of the best IoU per labelled kind, and the mean time a detect
/// took (for the log only: timings in tests vary with the machine's load).
fn evaluate(
    detector: &mut dyn Detector,
    scene: &SyntheticScene,
    labelled: &[(ObjectKind, LabelId)],
) -> (Vec<f64>, Duration) {
    let mut totals = vec![0.0; labelled.len()];
    let mut spent = Duration::ZERO;
    let frames: Vec<u64> = EVALUATION_FRAMES.map(|i| i * FRAME_STEP).collect();
    for &t in &frames {
        let frame = scene.render(t);
        let started = Instant::now();
        let detections = detector.detect(&frame).unwrap();
        spent += started.elapsed();
        let truth = scene.ground_truth(t);
        for (total, &(kind, label_id)) in totals.iter_mut().zip(labelled) {
            let mask = &truth.iter().find(|(k, _)| *k == kind).unwrap().1;
            *total += best_iou(&detections, label_id, mask);
        }
        for d in &detections {
            assert!(
                (0.0..=1.0).contains(&d.score),
                "score {} out of range",
                d.score
            );
            assert!(labelled.iter().any(|&(_, id)| id == d.label_id));
        }
    }
    let means = totals.iter().map(|t| t / frames.len() as f64).collect();
    (means, spent / frames.len() as u32)
}

#[test]
fn one_annotated_frame_is_enough_to_segment_each_kind_in_later_frames() {
    let scene = SyntheticScene::default();
    for kind in ObjectKind::ALL {
        let label = LabelId::new();
        let labelled = [(kind, label)];
        let mut detector = build(&[reference(&scene, 0, &labelled)]);
        let (iou, mean_time) = evaluate(detector.as_mut(), &scene, &labelled);
        eprintln!(
            "{}: mean IoU {:.3}, mean detect {mean_time:?}",
            kind.name(),
            iou[0]
        );
        assert!(iou[0] >= 0.8, "{}: mean IoU {:.3}", kind.name(), iou[0]);
    }
}

#[test]
fn frames_without_the_object_have_no_detections() {
    let scene = SyntheticScene::default();
    for kind in ObjectKind::ALL {
        let label = LabelId::new();
        let mut detector = build(&[reference(&scene, 0, &[(kind, label)])]);
        let others: Vec<ObjectKind> = ObjectKind::ALL.into_iter().filter(|&k| k != kind).collect();
        let without = scene.clone().with_kinds(&others);
        let empty = scene.clone().with_kinds(&[]);
        for t in EVALUATION_FRAMES.map(|i| i * FRAME_STEP).step_by(4) {
            for frame in [without.render(t), empty.render(t)] {
                let detections = detector.detect(&frame).unwrap();
                assert!(
                    detections.is_empty(),
                    "{} reported at frame {t} where it is absent: {:?}",
                    kind.name(),
                    detections
                        .iter()
                        .map(|d| (d.score, d.bbox))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn two_labels_from_one_frame_are_told_apart() {
    let scene = SyntheticScene::default();
    let labelled = [
        (ObjectKind::StripedDisc, LabelId::new()),
        (ObjectKind::DottedTriangle, LabelId::new()),
    ];
    let mut detector = build(&[reference(&scene, 0, &labelled)]);
    let (iou, mean_time) = evaluate(detector.as_mut(), &scene, &labelled);
    eprintln!("two labels: mean IoU {iou:.3?}, mean detect {mean_time:?}");
    for (mean, (kind, _)) in iou.iter().zip(&labelled) {
        assert!(*mean >= 0.8, "{}: mean IoU {mean:.3}", kind.name());
    }
    // The unlabelled square is neither label.
    let square = scene.clone().with_kinds(&[ObjectKind::CheckeredSquare]);
    assert!(detector.detect(&square.render(400)).unwrap().is_empty());
}

#[test]
fn two_reference_frames_fit_one_detector() {
    // The disc is annotated in one frame and the square in another; each frame's other objects
    // are background there, unannotated, which the detector must survive.
    let scene = SyntheticScene::default();
    let (disc, square) = (LabelId::new(), LabelId::new());
    let references = [
        reference(&scene, 0, &[(ObjectKind::StripedDisc, disc)]),
        reference(&scene, 150, &[(ObjectKind::CheckeredSquare, square)]),
    ];
    let mut detector = build(&references);
    let labelled = [
        (ObjectKind::StripedDisc, disc),
        (ObjectKind::CheckeredSquare, square),
    ];
    let (iou, _) = evaluate(detector.as_mut(), &scene, &labelled);
    eprintln!("two references: mean IoU {iou:.3?}");
    for (mean, (kind, _)) in iou.iter().zip(&labelled) {
        assert!(*mean >= 0.8, "{}: mean IoU {mean:.3}", kind.name());
    }
}

#[test]
fn at_most_max_detections_are_reported_per_label() {
    // A frame with two squares and one of each other kind, only the square labelled: the cap
    // must be what decides how many squares are reported, and the best one must survive it.
    let scene = SyntheticScene::default();
    let label = LabelId::new();
    let labelled = [(ObjectKind::CheckeredSquare, label)];
    let references = [
        reference(&scene, 0, &labelled),
        reference(&scene, 99, &labelled),
    ];
    let detect_with_cap = |max_detections: u32, frame: &RgbImage| {
        let params = ClassicalParams {
            confidence_threshold: 0.5,
            max_detections,
            ..ClassicalParams::default()
        };
        ClassicalDetectorFactory
            .build(&model(AlgorithmParams::Classical(params)), &references)
            .unwrap()
            .detect(frame)
            .unwrap()
    };
    let (frame, truths) = two_instances(&scene, ObjectKind::CheckeredSquare, 300);
    let both = detect_with_cap(2, &frame);
    assert_eq!(both.len(), 2);
    for truth in &truths {
        let iou = best_iou(&both, label, truth);
        assert!(iou >= 0.8, "IoU {iou:.3}");
    }
    let one = detect_with_cap(1, &frame);
    assert_eq!(one.len(), 1);
    let best = both
        .iter()
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .unwrap();
    assert_eq!(one[0].score, best.score);
    assert_eq!(one[0].mask, best.mask);
}

#[test]
fn algorithms_that_need_weights_are_unavailable() {
    let scene = SyntheticScene::default();
    let references = [reference(
        &scene,
        0,
        &[(ObjectKind::StripedDisc, LabelId::new())],
    )];
    for algorithm in Algorithm::ALL.into_iter().filter(|a| a.needs_weights()) {
        let result =
            ClassicalDetectorFactory.build(&model(algorithm.default_params()), &references);
        match result {
            Err(DetectorError::Unavailable(message)) => {
                assert!(message.contains("weights"), "{message}");
                assert!(message.contains(algorithm.display_name()), "{message}");
            }
            Err(other) => panic!("{algorithm:?}: expected Unavailable, got {other:?}"),
            Ok(_) => panic!("{algorithm:?} built without weights"),
        }
    }
}

#[test]
fn references_that_mark_nothing_are_refused() {
    let scene = SyntheticScene::default();
    let empty = BitMask::new(scene.width(), scene.height());
    let references = [Reference {
        image: Arc::new(scene.render(0)),
        annotations: vec![ReferenceAnnotation {
            label_id: LabelId::new(),
            shape: Shape::Mask(empty.to_rle()),
            mask: empty,
        }],
    }];
    let result = ClassicalDetectorFactory.build(&classical(), &references);
    assert!(matches!(result, Err(DetectorError::InvalidReferences(_))));
}

/// A grey, slightly noisy frame with two squares painted in the same two reds, one striped and
/// one checkered, at the given top-left corners.
fn same_colours_frame(
    striped_at: (u32, u32),
    checkered_at: (u32, u32),
) -> (RgbImage, [BitMask; 2]) {
    const SIDE: u32 = 64;
    let (w, h) = (320, 240);
    let mut image = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            // A cheap hash for noise, plus a gradient, so the background is not flat.
            let n =
                (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)).wrapping_mul(2_654_435_761) >> 28;
            let v = (100 + x / 8 + y / 8 + n) as u8;
            image.put_pixel(x, y, [v, v, v]);
        }
    }
    let (light, dark) = ([200, 40, 40], [110, 20, 25]);
    let inside = |(x0, y0): (u32, u32), x: u32, y: u32| {
        (x0..x0 + SIDE).contains(&x) && (y0..y0 + SIDE).contains(&y)
    };
    let striped = BitMask::from_fn(w, h, |x, y| inside(striped_at, x, y));
    let checkered = BitMask::from_fn(w, h, |x, y| inside(checkered_at, x, y));
    for y in 0..h {
        for x in 0..w {
            if striped.get(x, y) {
                let stripe = ((x - striped_at.0) + (y - striped_at.1)) / 6 % 2 == 1;
                image.put_pixel(x, y, if stripe { dark } else { light });
            } else if checkered.get(x, y) {
                let check = ((x - checkered_at.0) / 16 + (y - checkered_at.1) / 16) % 2 == 1;
                image.put_pixel(x, y, if check { dark } else { light });
            }
        }
    }
    (image, [striped, checkered])
}

#[test]
fn texture_tells_apart_objects_of_the_same_colours() {
    let (striped, checkered) = (LabelId::new(), LabelId::new());
    let (image, [striped_mask, checkered_mask]) = same_colours_frame((30, 40), (200, 130));
    let annotation = |label_id, mask: BitMask| ReferenceAnnotation {
        label_id,
        shape: Shape::Mask(mask.to_rle()),
        mask,
    };
    let mut detector = build(&[Reference {
        image: Arc::new(image),
        annotations: vec![
            annotation(striped, striped_mask),
            annotation(checkered, checkered_mask),
        ],
    }]);
    // The two squares swap sides.
    let (frame, [striped_truth, checkered_truth]) = same_colours_frame((220, 20), (40, 150));
    let detections = detector.detect(&frame).unwrap();
    let striped_iou = best_iou(&detections, striped, &striped_truth);
    let checkered_iou = best_iou(&detections, checkered, &checkered_truth);
    eprintln!("same colours: IoU striped {striped_iou:.3}, checkered {checkered_iou:.3}");
    assert!(striped_iou >= 0.8 && checkered_iou >= 0.8);
    // Neither label claims the other square.
    assert_eq!(best_iou(&detections, striped, &checkered_truth), 0.0);
    assert_eq!(best_iou(&detections, checkered, &striped_truth), 0.0);
}

#[test]
fn a_change_of_lighting_is_tolerated() {
    let scene = SyntheticScene::default();
    let labelled = [
        (ObjectKind::StripedDisc, LabelId::new()),
        (ObjectKind::CheckeredSquare, LabelId::new()),
        (ObjectKind::DottedTriangle, LabelId::new()),
    ];
    let mut detector = build(&[reference(&scene, 0, &labelled)]);
    for gain in [0.75, 1.2] {
        let mut totals = [0.0; 3];
        let frames: Vec<u64> = (0..10).map(|i| 100 + 37 * i).collect();
        for &t in &frames {
            let mut frame = scene.render(t);
            for byte in frame.as_raw_mut() {
                *byte = (f64::from(*byte) * gain).round().min(255.0) as u8;
            }
            let detections = detector.detect(&frame).unwrap();
            for ((total, (_, mask)), &(_, label_id)) in
                totals.iter_mut().zip(scene.ground_truth(t)).zip(&labelled)
            {
                *total += best_iou(&detections, label_id, &mask);
            }
        }
        let means = totals.map(|t| t / frames.len() as f64);
        eprintln!("lighting x{gain}: mean IoU {means:.3?}");
        for (mean, (kind, _)) in means.iter().zip(&labelled) {
            assert!(*mean >= 0.7, "x{gain}, {}: mean IoU {mean:.3}", kind.name());
        }
    }
}

/// Frame 0 with each kind annotated by `shape_of(ground-truth mask)`, rasterised as the pipeline
/// does, and the mean IoU per kind over the evaluation frames.
fn iou_with_prompts(shape_of: impl Fn(&BitMask) -> Shape) -> Vec<f64> {
    let scene = SyntheticScene::default();
    let size = FrameSize::new(scene.width(), scene.height()).unwrap();
    let labelled: Vec<(ObjectKind, LabelId)> = ObjectKind::ALL
        .iter()
        .map(|&k| (k, LabelId::new()))
        .collect();
    let annotations = scene
        .ground_truth(0)
        .iter()
        .zip(&labelled)
        .map(|((_, truth), &(_, label_id))| {
            let shape = shape_of(truth);
            ReferenceAnnotation {
                label_id,
                mask: rasterize(&shape, size, 9.6),
                shape,
            }
        })
        .collect();
    let mut detector = build(&[Reference {
        image: Arc::new(scene.render(0)),
        annotations,
    }]);
    evaluate(detector.as_mut(), &scene, &labelled).0
}

#[test]
fn a_few_clicks_on_each_object_are_enough() {
    // Three positive clicks near the middle of each object, and one negative click beside it.
    let iou = iou_with_prompts(|truth| {
        let b = truth.bounding_box().unwrap();
        let (cx, cy) = (
            (b.x_min + b.x_max) as f64 / 2.0,
            (b.y_min + b.y_max) as f64 / 2.0,
        );
        let at = |x: f64, y: f64| Point { x, y };
        Shape::Points(vec![
            (at(cx, cy + 8.0), true),
            (at(cx - 15.0, cy + 15.0), true),
            (at(cx + 15.0, cy + 15.0), true),
            (at(f64::from(b.x_max) + 20.0, cy), false),
        ])
    });
    eprintln!("clicks: mean IoU {iou:.3?}");
    assert!(iou.iter().all(|&m| m >= 0.8), "{iou:.3?}");
}

#[test]
fn a_box_around_each_object_is_enough() {
    let iou = iou_with_prompts(|truth| {
        let b = truth.bounding_box().unwrap();
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
    });
    eprintln!("boxes: mean IoU {iou:.3?}");
    assert!(iou.iter().all(|&m| m >= 0.8), "{iou:.3?}");
}

/// Frame `t` of `scene` with a second `kind` pasted in from a later frame where it is well clear
/// of the first (no object is more than 95 pixels across), and both instances' masks.
fn two_instances(scene: &SyntheticScene, kind: ObjectKind, t: u64) -> (RgbImage, [BitMask; 2]) {
    let mask_at = |t: u64| {
        let truth = scene.ground_truth(t);
        truth.into_iter().find(|(k, _)| *k == kind).unwrap().1
    };
    let (_, y) = scene.centre(kind, t);
    let other = (t + 40..t + 400)
        .find(|&u| (scene.centre(kind, u).1 - y).abs() > 130)
        .expect("every object moves far enough within a few hundred frames");
    let (first, second) = (mask_at(t), mask_at(other));
    assert_eq!(first.intersection_area(&second), 0);
    let mut frame = scene.render(t);
    paste(&mut frame, &scene.render(other), &second);
    (frame, [first, second])
}

/// Copies the pixels of `mask` from `from` onto `onto`.
fn paste(onto: &mut RgbImage, from: &RgbImage, mask: &BitMask) {
    for y in 0..mask.height() {
        for x in 0..mask.width() {
            if mask.get(x, y) {
                onto.put_pixel(x, y, from.pixel(x, y));
            }
        }
    }
}

#[test]
fn every_instance_is_found_even_when_the_reference_leaves_some_unannotated() {
    // Two discs on the reference frame, only one annotated: the other one is "background" to
    // the fit. Then frames with two discs must give two detections.
    let scene = SyntheticScene::default().with_kinds(&[ObjectKind::StripedDisc]);
    let two_discs = |t: u64| two_instances(&scene, ObjectKind::StripedDisc, t);
    let label = LabelId::new();
    let (reference_image, [annotated, _]) = two_discs(0);
    let mut detector = build(&[Reference {
        image: Arc::new(reference_image),
        annotations: vec![ReferenceAnnotation {
            label_id: label,
            shape: Shape::Mask(annotated.to_rle()),
            mask: annotated,
        }],
    }]);
    for t in [150, 300, 450] {
        let (frame, truths) = two_discs(t);
        let detections = detector.detect(&frame).unwrap();
        assert_eq!(detections.len(), 2, "frame {t}");
        for truth in &truths {
            let iou = best_iou(&detections, label, truth);
            assert!(iou >= 0.8, "frame {t}: IoU {iou:.3}");
        }
    }
}

#[test]
fn instances_smaller_than_min_area_of_the_annotation_are_dropped() {
    // The disc of frame 300, its lower part hidden behind background: about a third remains.
    let scene = SyntheticScene::default();
    let label = LabelId::new();
    let references = [reference(&scene, 0, &[(ObjectKind::StripedDisc, label)])];
    let t = 300;
    let disc = scene
        .ground_truth(t)
        .into_iter()
        .find(|(k, _)| *k == ObjectKind::StripedDisc)
        .unwrap()
        .1;
    let top = disc.bounding_box().unwrap();
    let cut = top.y_min + (top.y_max - top.y_min) * 0.4;
    let hidden = BitMask::from_fn(disc.width(), disc.height(), |x, y| {
        disc.get(x, y) && y as f32 >= cut
    });
    let mut frame = scene.render(t);
    let without_disc = scene
        .clone()
        .with_kinds(&[ObjectKind::CheckeredSquare, ObjectKind::DottedTriangle])
        .render(t);
    paste(&mut frame, &without_disc, &hidden);
    let visible = disc.area() - hidden.area();
    let share = visible as f64 / disc.area() as f64;
    assert!((0.2..0.45).contains(&share), "visible share {share:.2}");

    let detect = |min_area: f64| {
        let params = ClassicalParams {
            min_area,
            ..ClassicalParams::default()
        };
        ClassicalDetectorFactory
            .build(&model(AlgorithmParams::Classical(params)), &references)
            .unwrap()
            .detect(&frame)
            .unwrap()
    };
    let kept = detect(0.1);
    assert_eq!(kept.len(), 1, "the visible part is found with min_area 0.1");
    assert!(kept[0].mask.area() as f64 >= 0.8 * visible as f64);
    assert!(detect(0.6).is_empty(), "and dropped with min_area 0.6");
}
