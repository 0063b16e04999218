//! A pipeline in a few dozen lines: the synthetic scene as the live source, the classical
//! detector fitted from one reference image and the mask of one object on it, and a callback sink
//! printing what each frame shows. `cargo run --example detect_synthetic [-- FRAMES]` (30).
//!
//! With a camera or a video instead, pass its `SourceConfig` (`UsbCamera`, `VideoFile`, ...) to
//! `.source`; with a neural model, build the detector with `visprompt_vision`'s factory.

use std::sync::Arc;

use visprompt_classical::ClassicalDetector;
use visprompt_domain::{
    ClassicalParams, Color, LabelId, LabelName, MediaRoots, Shape, SourceConfig,
};
use visprompt_media::synthetic::ObjectKind;
use visprompt_media::{MediaSourceFactory, SyntheticScene};
use visprompt_runtime::embedded::{LivePipeline, callback_sink};
use visprompt_runtime::{Reference, ReferenceAnnotation};

#[tokio::main]
async fn main() {
    let frames: u64 = std::env::args()
        .nth(1)
        .map_or(30, |n| n.parse().expect("FRAMES: a number"));

    // The reference: the scene's first frame and the exact mask of its striped disc.
    let scene = SyntheticScene::default();
    let (_, disc) = scene
        .ground_truth(0)
        .into_iter()
        .find(|(kind, _)| *kind == ObjectKind::StripedDisc)
        .expect("the scene shows a striped disc");
    let label = LabelId::new();
    let reference = Reference {
        image: Arc::new(scene.render(0)),
        annotations: vec![ReferenceAnnotation {
            label_id: label,
            shape: Shape::Mask(disc.to_rle()),
            mask: disc,
        }],
    };
    let detector = ClassicalDetector::fit(ClassicalParams::default(), &[reference])
        .expect("one annotated object is enough to fit");

    // The callback sees every result; it tells `main` when enough frames went by.
    let (done, mut finished) = tokio::sync::mpsc::channel::<()>(1);
    let pipeline = LivePipeline::builder()
        .label(
            label,
            LabelName::parse("striped disc").expect("a valid label name"),
            Color::rgb(230, 57, 70),
        )
        .source(
            Arc::new(MediaSourceFactory::new(MediaRoots::default())),
            SourceConfig::Synthetic,
        )
        .detector(Box::new(detector))
        .sink(callback_sink(move |result| {
            let found: Vec<String> = result
                .detections
                .iter()
                .map(|d| {
                    let name = result
                        .labels
                        .get(d.label_id)
                        .map_or("?", |l| l.name.as_str());
                    let b = d.bbox;
                    format!(
                        "{name} {:.2} at ({:.0}, {:.0})-({:.0}, {:.0})",
                        d.score, b.x_min, b.y_min, b.x_max, b.y_max
                    )
                })
                .collect();
            println!("frame {}: {}", result.frame.seq, found.join("; "));
            if result.frame.seq >= frames {
                let _ = done.try_send(());
            }
        }))
        .start()
        .await;

    finished.recv().await;
    let status = pipeline.status();
    pipeline.stop().await;
    println!(
        "{} frames in, {} detected, inference p50 {:.1} ms",
        status.source.frames,
        status.detector.processed,
        status.detector.inference_p50_ms.unwrap_or(f64::NAN)
    );
}
