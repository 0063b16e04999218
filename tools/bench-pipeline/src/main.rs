//! `just bench-pipeline`: how fast the live pipeline runs frames from a synthetic source through a
//! detector to an in-process subscriber, at 640x480. Two detectors: the classical one (fitted
//! one-shot on the scene's striped disc) and a pass-through one that finds nothing, whose figures
//! are the pipeline's own overhead. Each is compared with the same detector called in a bare loop
//! on the same frames in the same run, so the ratio shows what the pipeline costs.
//!
//! The source replays pre-rendered frames faster than the detector takes them, so the detector is
//! always busy and the newest-frame-wins channels drop what it cannot take; the figures are the
//! detector stage's. For the pass-through run the source is not paced at all (the point is the
//! overhead); for the classical run it is paced at 1,000 frames/s, which keeps the detector busy
//! without a flood of frame copies competing with it for the two cores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use visprompt_classical::ClassicalDetectorFactory;
use visprompt_domain::{
    Algorithm, Annotation, Device, DisplayName, LabelId, ModelConfig, ModelConfigId, ProjectId,
    Shape, SinkConfig, SourceConfig, SourceId,
};
use visprompt_media::SyntheticScene;
use visprompt_media::synthetic::ObjectKind;
use visprompt_runtime::{
    Detection, Detector, DetectorError, DetectorFactory, FrameSource, PipelineOutputs,
    PipelineSpec, Reference, ReferenceAnnotation, ResultSink, RgbImage, RunningPipeline, SinkError,
    SinkFactory, SinkHealthReporter, SourceError, SourceFactory, SourceSpec,
};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
/// Distinct frames replayed in a loop; enough that objects move between results.
const FRAMES: u64 = 120;

/// Replays pre-rendered frames, one per `every` or as fast as they are asked for.
struct Replay {
    frames: Arc<Vec<RgbImage>>,
    next: usize,
    every: Option<tokio::time::Interval>,
}

#[async_trait]
impl FrameSource for Replay {
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        match &mut self.every {
            Some(interval) => {
                interval.tick().await;
            }
            // Yield so that the source shares the executor fairly instead of spinning on it.
            None => tokio::task::yield_now().await,
        }
        let frame = self.frames[self.next % self.frames.len()].clone();
        self.next += 1;
        Ok(Some(frame))
    }
}

struct ReplayFactory {
    frames: Arc<Vec<RgbImage>>,
    every: Option<Duration>,
}

#[async_trait]
impl SourceFactory for ReplayFactory {
    async fn open(&self, _: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        Ok(Box::new(Replay {
            frames: self.frames.clone(),
            next: 0,
            every: self.every.map(|every| {
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                interval
            }),
        }))
    }
}

/// No sinks in this benchmark: the subscriber is the benchmark itself.
struct NoSinks;

#[async_trait]
impl SinkFactory for NoSinks {
    async fn build(
        &self,
        _: &SinkConfig,
        _: SinkHealthReporter,
    ) -> Result<Box<dyn ResultSink>, SinkError> {
        Err(SinkError::Invalid("no sinks in the benchmark".into()))
    }
}

/// Finds nothing: what remains is the cost of moving frames through the pipeline.
struct PassThrough;

impl Detector for PassThrough {
    fn detect(&mut self, _: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
        Ok(Vec::new())
    }
}

fn classical(scene: &SyntheticScene) -> Box<dyn Detector> {
    let disc = scene
        .ground_truth(0)
        .into_iter()
        .find(|(k, _)| *k == ObjectKind::StripedDisc)
        .expect("the scene has a disc")
        .1;
    let now = chrono::Utc::now();
    let model = ModelConfig {
        id: ModelConfigId::new(),
        project_id: ProjectId::new(),
        name: DisplayName::parse("Classical").expect("valid"),
        active: true,
        device: Device::Cpu,
        params: Algorithm::Classical.default_params(),
        created_at: now,
        updated_at: now,
    };
    let annotation = Annotation {
        label_id: LabelId::new(),
        shape: Shape::Mask(disc.to_rle()),
    };
    let reference = Reference {
        image: Arc::new(scene.render(0)),
        annotations: vec![ReferenceAnnotation {
            label_id: annotation.label_id,
            shape: annotation.shape,
            mask: disc,
        }],
    };
    ClassicalDetectorFactory
        .build(&model, &[reference])
        .expect("the classical detector fits")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize - 1;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

struct Figures {
    fps: f64,
    frames_in: u64,
    processed: u64,
    /// Capture → detector done (includes the wait for the detector and the hop to its thread).
    to_result: Vec<Duration>,
    inference: Vec<Duration>,
    /// Result published → subscriber woke with it.
    delivery: Vec<Duration>,
    /// Capture → subscriber.
    end_to_end: Vec<Duration>,
}

async fn through_pipeline(
    frames: Arc<Vec<RgbImage>>,
    every: Option<Duration>,
    detector: Box<dyn Detector>,
    run_for: Duration,
) -> Figures {
    let spec = PipelineSpec {
        project_id: ProjectId::new(),
        source: Some(SourceSpec {
            id: SourceId::new(),
            config: SourceConfig::Synthetic,
        }),
        detector: None,
        labels: vec![],
        sinks: BTreeMap::new(),
    };
    let outputs = PipelineOutputs::default();
    let mut results = outputs.results.subscribe();
    let pipeline = RunningPipeline::start(
        spec,
        outputs.clone(),
        Arc::new(ReplayFactory { frames, every }),
        Arc::new(NoSinks),
    )
    .await;
    pipeline.set_detector(Some(detector));
    // Warm-up: the first results pay for thread start-up and cold caches.
    for _ in 0..20 {
        results.next().await;
    }
    let before = pipeline.stats().snapshot();
    let mut figures = Figures {
        fps: 0.0,
        frames_in: 0,
        processed: 0,
        to_result: vec![],
        inference: vec![],
        delivery: vec![],
        end_to_end: vec![],
    };
    let started = Instant::now();
    while started.elapsed() < run_for {
        let Some(result) = results.next().await else {
            break;
        };
        let now = Instant::now();
        figures.to_result.push(result.latency());
        figures.inference.push(result.inference);
        figures
            .delivery
            .push(now.saturating_duration_since(result.completed_at));
        figures
            .end_to_end
            .push(now.saturating_duration_since(result.frame.captured_at));
    }
    let elapsed = started.elapsed();
    let after = pipeline.stats().snapshot();
    pipeline.stop().await;
    figures.processed = after.detector.processed - before.detector.processed;
    figures.frames_in = after.source.frames - before.source.frames;
    figures.fps = figures.processed as f64 / elapsed.as_secs_f64();
    for v in [
        &mut figures.to_result,
        &mut figures.inference,
        &mut figures.delivery,
        &mut figures.end_to_end,
    ] {
        v.sort_unstable();
    }
    figures
}

/// The same detector on the same frames, called in a plain loop: the reference for the pipeline.
fn bare_loop(frames: &[RgbImage], detector: &mut dyn Detector, run_for: Duration) -> f64 {
    for frame in frames.iter().take(20) {
        let _ = detector.detect(frame);
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run_for {
        let _ = detector.detect(&frames[(n % frames.len() as u64) as usize]);
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn report(name: &str, figures: &Figures, bare_fps: f64) {
    let p = |v: &[Duration]| format!("{:.3} / {:.3}", percentile(v, 50.0), percentile(v, 95.0));
    println!("{name}");
    println!(
        "  through the pipeline      {:>10.1} frames/s   ({} processed of {} captured)",
        figures.fps, figures.processed, figures.frames_in
    );
    println!("  bare loop, same detector  {bare_fps:>10.1} frames/s");
    // A detector that does nothing has no meaningful bare-loop rate to divide by.
    if bare_fps < 1e6 {
        println!(
            "  pipeline / bare loop      {:>10.3}",
            figures.fps / bare_fps
        );
    }
    println!(
        "  per-frame cost in the pipeline {:.3} ms (bare loop {:.3} ms, difference {:.3} ms)",
        1e3 / figures.fps,
        1e3 / bare_fps,
        1e3 / figures.fps - 1e3 / bare_fps
    );
    println!("  latency p50 / p95, ms:");
    println!("    detector (inference)      {}", p(&figures.inference));
    println!("    capture -> result         {}", p(&figures.to_result));
    println!("    result -> subscriber      {}", p(&figures.delivery));
    println!("    capture -> subscriber     {}", p(&figures.end_to_end));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let run_for = Duration::from_secs(seconds);
    let scene = SyntheticScene::new(WIDTH, HEIGHT, 0);
    let frames: Arc<Vec<RgbImage>> = Arc::new((0..FRAMES).map(|t| scene.render(t * 3)).collect());
    println!(
        "visprompt pipeline benchmark: {WIDTH}x{HEIGHT}, {FRAMES} replayed synthetic frames, {seconds} s per run, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let bare = bare_loop(&frames, &mut PassThrough, run_for);
    let piped = through_pipeline(frames.clone(), None, Box::new(PassThrough), run_for).await;
    report(
        "pass-through detector (pipeline overhead alone)",
        &piped,
        bare,
    );
    println!(
        "  overhead target: <= 1 ms per frame (>= 500 frames/s); measured {:.3} ms, {:.1}x the target rate",
        1e3 / piped.fps,
        piped.fps / 500.0
    );

    let mut detector = classical(&scene);
    let bare = bare_loop(&frames, &mut *detector, run_for);
    let piped = through_pipeline(
        frames.clone(),
        Some(Duration::from_millis(1)),
        classical(&scene),
        run_for,
    )
    .await;
    report("classical detector, one label", &piped, bare);
}
