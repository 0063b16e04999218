//! Unit tests of the pipeline against fakes of its ports: a scripted source, `mockall` detectors
//! and repository, a recording sink. They check ordering, newest-frame-wins, error propagation
//! and reconfiguration without any adapter.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use visprompt_domain::{
    Algorithm, Annotation, Color, Device, DisplayName, Frame, FrameId, FrameSize, ImageFormat,
    Label, LabelId, LabelName, ModelConfig, ModelConfigId, Page, Paged, Project, ProjectId,
    ProjectName, Prompt, PromptContent, PromptId, Shape, Sink, SinkConfig, SinkId, Source,
    SourceConfig, SourceId,
};

use crate::detection::Detection;
use crate::frame::FrameResult;
use crate::image::RgbImage;
use crate::mask::BitMask;
use crate::pipeline::*;
use crate::port::detector::{MockDetector, MockDetectorFactory};
use crate::port::*;
use visprompt_domain::repository::MockRepository;

// ---------- fakes ----------

/// Yields numbered frames (pixel (0,0) red channel = frame number mod 256) every `every`.
struct ScriptedSource {
    every: Duration,
    n: u8,
    /// `Some(k)`: fail with `Unavailable` after k frames.
    fail_after: Option<u32>,
}

#[async_trait]
impl FrameSource for ScriptedSource {
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        tokio::time::sleep(self.every).await;
        if let Some(k) = &mut self.fail_after {
            if *k == 0 {
                return Err(SourceError::Unavailable("stream dropped".into()));
            }
            *k -= 1;
        }
        self.n = self.n.wrapping_add(1);
        let mut image = RgbImage::new(8, 8);
        image.put_pixel(0, 0, [self.n, 0, 0]);
        Ok(Some(image))
    }
}

/// Opens sources from a script of outcomes; the last one repeats.
struct ScriptedFactory {
    outcomes: Mutex<VecDeque<Result<Duration, String>>>,
    opened: Mutex<u32>,
}

impl ScriptedFactory {
    fn new(outcomes: Vec<Result<Duration, String>>) -> Arc<Self> {
        Arc::new(Self {
            outcomes: Mutex::new(outcomes.into()),
            opened: Mutex::new(0),
        })
    }
}

#[async_trait]
impl SourceFactory for ScriptedFactory {
    async fn open(&self, _config: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        *self.opened.lock().unwrap() += 1;
        let mut outcomes = self.outcomes.lock().unwrap();
        let next = if outcomes.len() > 1 {
            outcomes.pop_front().unwrap()
        } else {
            outcomes.front().cloned().unwrap()
        };
        match next {
            Ok(every) => Ok(Box::new(ScriptedSource {
                every,
                n: 0,
                fail_after: None,
            })),
            Err(message) => Err(SourceError::Unavailable(message)),
        }
    }
}

/// Records the sequence numbers it was given.
#[derive(Clone, Default)]
struct RecordingSinks {
    seen: Arc<Mutex<Vec<u64>>>,
}

struct RecordingSink(Arc<Mutex<Vec<u64>>>);

#[async_trait]
impl ResultSink for RecordingSink {
    async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(result.frame.seq);
        Ok(())
    }
}

#[async_trait]
impl SinkFactory for RecordingSinks {
    async fn build(
        &self,
        _config: &SinkConfig,
        health: SinkHealthReporter,
    ) -> Result<Box<dyn ResultSink>, SinkError> {
        health.set(SinkHealth::Connected);
        Ok(Box::new(RecordingSink(self.seen.clone())))
    }
}

struct PlainCodec;

impl FrameCodec for PlainCodec {
    fn decode(&self, _bytes: &[u8]) -> Result<RgbImage, CodecError> {
        Ok(RgbImage::new(8, 8))
    }
    fn encode_jpeg(&self, _image: &RgbImage, _quality: u8) -> Result<Vec<u8>, CodecError> {
        Ok(vec![])
    }
}

/// A detector that reports one detection of `label` per frame, after `delay`.
fn detector(label: LabelId, delay: Duration) -> Box<dyn Detector> {
    let mut d = MockDetector::new();
    d.expect_detect().returning(move |image| {
        std::thread::sleep(delay);
        let mask = BitMask::from_fn(image.width(), image.height(), |x, y| x < 2 && y < 2);
        Ok(vec![Detection::from_mask(label, 0.9, mask).unwrap()])
    });
    Box::new(d)
}

fn spec(project_id: ProjectId) -> PipelineSpec {
    PipelineSpec {
        project_id,
        source: Some(SourceSpec {
            id: SourceId::new(),
            config: SourceConfig::Synthetic,
        }),
        detector: None,
        labels: vec![],
        sinks: Default::default(),
    }
}

/// `spec` plus one sink, recorded by the test's `RecordingSinks`.
fn with_sink(mut spec: PipelineSpec) -> PipelineSpec {
    spec.sinks.insert(
        SinkId::new(),
        SinkConfig::File {
            path: "/tmp/unused".into(),
        },
    );
    spec
}

/// Starts `spec` with sources that yield a frame every `every`, and returns the outputs too.
async fn run_pipeline(
    spec: PipelineSpec,
    factory: Arc<ScriptedFactory>,
    sinks: &RecordingSinks,
) -> (RunningPipeline, PipelineOutputs) {
    let outputs = PipelineOutputs::default();
    let pipeline =
        RunningPipeline::start(spec, outputs.clone(), factory, Arc::new(sinks.clone())).await;
    (pipeline, outputs)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

// ---------- running pipeline ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_keep_their_frames_sequence_and_arrive_in_order() {
    let sinks = RecordingSinks::default();
    let (pipeline, outputs) = run_pipeline(
        with_sink(spec(ProjectId::new())),
        ScriptedFactory::new(vec![Ok(Duration::from_millis(5))]),
        &sinks,
    )
    .await;
    let mut results = outputs.results.subscribe();
    let label = LabelId::new();
    pipeline.set_detector(Some(detector(label, Duration::ZERO)));

    let mut last = 0;
    for _ in 0..10 {
        let r = results.next().await.unwrap();
        assert!(
            r.frame.seq > last,
            "sequence went from {last} to {}",
            r.frame.seq
        );
        // The result is of the frame it names: the scripted source writes its number in a pixel.
        assert_eq!(u64::from(r.frame.image.pixel(0, 0)[0]), r.frame.seq % 256);
        assert_eq!(r.detections[0].label_id, label);
        last = r.frame.seq;
    }
    eventually("the sink saw results", || {
        sinks.seen.lock().unwrap().len() >= 3
    })
    .await;
    let seen = sinks.seen.lock().unwrap().clone();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_detector_skips_stale_frames_instead_of_queueing_them() {
    let (pipeline, outputs) = run_pipeline(
        spec(ProjectId::new()),
        ScriptedFactory::new(vec![Ok(Duration::from_millis(2))]),
        &RecordingSinks::default(),
    )
    .await;
    let mut results = outputs.results.subscribe();
    pipeline.set_detector(Some(detector(LabelId::new(), Duration::from_millis(40))));
    let mut taken = Vec::new();
    for _ in 0..5 {
        taken.push(results.next().await.unwrap());
    }
    let status = pipeline.stats().snapshot();
    assert!(status.detector.dropped > 0, "{status:?}");
    assert!(status.source.frames > status.detector.processed);
    // Each result is of a frame at most a few frames old when it was taken: no backlog grows.
    for pair in taken.windows(2) {
        assert!(
            pair[1].frame.seq > pair[0].frame.seq + 1,
            "consecutive frames: no skipping"
        );
    }
    let newest = outputs.frames.latest().unwrap().seq;
    let last = taken.last().unwrap().frame.seq;
    assert!(
        newest - last < 60,
        "result lags {} frames behind",
        newest - last
    );
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_detector_frames_pass_through_and_sinks_get_nothing() {
    let sinks = RecordingSinks::default();
    let (pipeline, outputs) = run_pipeline(
        with_sink(spec(ProjectId::new())),
        ScriptedFactory::new(vec![Ok(Duration::from_millis(2))]),
        &sinks,
    )
    .await;
    let mut frames = outputs.frames.subscribe();
    for _ in 0..5 {
        frames.next().await.unwrap();
    }
    let stats = pipeline.stats().clone();
    eventually("frames pass through", || {
        stats.snapshot().detector.passed_through >= 3
    })
    .await;
    assert_eq!(stats.snapshot().detector.processed, 0);
    assert!(outputs.results.latest().is_none());
    assert!(sinks.seen.lock().unwrap().is_empty());
    assert_eq!(stats.snapshot().state, PipelineState::Running);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_open_reports_an_error_and_is_retried() {
    let factory = ScriptedFactory::new(vec![
        Err("camera /dev/video7 is busy".into()),
        Ok(Duration::from_millis(2)),
    ]);
    let (pipeline, _outputs) = run_pipeline(
        spec(ProjectId::new()),
        factory.clone(),
        &RecordingSinks::default(),
    )
    .await;
    let stats = pipeline.stats().clone();
    eventually("the error shows", || {
        matches!(&stats.snapshot().state, PipelineState::Error { message } if message.contains("/dev/video7 is busy"))
    })
    .await;
    eventually("the retry succeeds", || {
        stats.snapshot().state == PipelineState::Running && stats.snapshot().source.frames > 0
    })
    .await;
    assert_eq!(*factory.opened.lock().unwrap(), 2);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_this_build_cannot_open_is_an_error_and_not_retried() {
    struct Unsupported(Mutex<u32>);
    #[async_trait]
    impl SourceFactory for Unsupported {
        async fn open(&self, _: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
            *self.0.lock().unwrap() += 1;
            Err(SourceError::Unsupported("rtsps is not supported".into()))
        }
    }
    let factory = Arc::new(Unsupported(Mutex::new(0)));
    let outputs = PipelineOutputs::default();
    let pipeline = RunningPipeline::start(
        spec(ProjectId::new()),
        outputs,
        factory.clone(),
        Arc::new(RecordingSinks::default()),
    )
    .await;
    let stats = pipeline.stats().clone();
    eventually("the error shows", || {
        matches!(&stats.snapshot().state, PipelineState::Error { message } if message.contains("rtsps"))
    })
    .await;
    // Longer than the first retry delay (0.5 s): a retry would have opened it again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(*factory.0.lock().unwrap(), 1);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_change_swaps_the_source_and_keeps_subscribers() {
    let factory = ScriptedFactory::new(vec![Ok(Duration::from_millis(2))]);
    let first = spec(ProjectId::new());
    let (mut pipeline, outputs) =
        run_pipeline(first.clone(), factory.clone(), &RecordingSinks::default()).await;
    let mut frames = outputs.frames.subscribe();
    let before = frames.next().await.unwrap().seq;
    // Same spec again: nothing restarts.
    pipeline.apply(first.clone()).await;
    assert_eq!(*factory.opened.lock().unwrap(), 1);
    let mut second = first;
    second.source = Some(SourceSpec {
        id: SourceId::new(),
        config: SourceConfig::Synthetic,
    });
    pipeline.apply(second).await;
    eventually("the new source is opened", || {
        *factory.opened.lock().unwrap() == 2
    })
    .await;
    // The same subscription keeps receiving, and numbering continues across the swap.
    let after = frames.next().await.unwrap().seq;
    assert!(after > before);
    pipeline.stop().await;
}

// ---------- manager ----------

/// What the fake repository serves; tests change it and ask the manager to reconcile.
#[derive(Clone)]
struct Stored {
    project: Option<Project>,
    sources: Vec<Source>,
    model: Option<ModelConfig>,
    prompts: Vec<Prompt>,
    labels: Vec<Label>,
    sinks: Vec<Sink>,
}

fn paged<T: Clone>(items: &[T]) -> Paged<T> {
    Paged {
        items: items.to_vec(),
        total: items.len() as u64,
        page: Page::all(),
    }
}

fn repository(stored: Arc<Mutex<Stored>>) -> MockRepository {
    let mut repo = MockRepository::new();
    let s = stored.clone();
    repo.expect_active_project()
        .returning(move || Ok(s.lock().unwrap().project.clone()));
    let s = stored.clone();
    repo.expect_list_sources()
        .returning(move |_, _| Ok(paged(&s.lock().unwrap().sources)));
    let s = stored.clone();
    repo.expect_list_prompts()
        .returning(move |_, _| Ok(paged(&s.lock().unwrap().prompts)));
    let s = stored.clone();
    repo.expect_active_model()
        .returning(move |_| Ok(s.lock().unwrap().model.clone()));
    let s = stored.clone();
    repo.expect_list_labels()
        .returning(move |_, _| Ok(paged(&s.lock().unwrap().labels)));
    let s = stored.clone();
    repo.expect_list_sinks()
        .returning(move |_, _| Ok(paged(&s.lock().unwrap().sinks)));
    repo.expect_get_frame().returning(|project_id, id| {
        Ok(Some(Frame {
            id,
            project_id,
            format: ImageFormat::Png,
            size: FrameSize::new(8, 8).unwrap(),
            byte_len: 1,
            created_at: chrono::Utc::now(),
        }))
    });
    repo.expect_get_frame_bytes()
        .returning(|_, _| Ok(Some(vec![0])));
    repo
}

fn stored_project(label: LabelId) -> Stored {
    let now = chrono::Utc::now();
    let project_id = ProjectId::new();
    Stored {
        project: Some(Project {
            id: project_id,
            name: ProjectName::parse("p").unwrap(),
            active: true,
            created_at: now,
            updated_at: now,
        }),
        sources: vec![Source {
            id: SourceId::new(),
            project_id,
            name: DisplayName::parse("s").unwrap(),
            active: true,
            config: SourceConfig::Synthetic,
            created_at: now,
            updated_at: now,
        }],
        model: Some(ModelConfig {
            id: ModelConfigId::new(),
            project_id,
            name: DisplayName::parse("Classical").unwrap(),
            active: true,
            device: Device::Auto,
            params: Algorithm::Classical.default_params(),
            created_at: now,
            updated_at: now,
        }),
        prompts: vec![prompt(project_id, label)],
        labels: vec![Label {
            id: label,
            project_id,
            name: LabelName::parse("cup").unwrap(),
            color: Color::rgb(255, 0, 0),
            created_at: now,
            updated_at: now,
        }],
        sinks: vec![],
    }
}

fn prompt(project_id: ProjectId, label: LabelId) -> Prompt {
    let now = chrono::Utc::now();
    Prompt {
        id: PromptId::new(),
        project_id,
        content: PromptContent::Visual {
            frame_id: FrameId::new(),
            annotations: vec![Annotation {
                label_id: label,
                shape: Shape::Rectangle {
                    min: visprompt_domain::Point { x: 1.0, y: 1.0 },
                    max: visprompt_domain::Point { x: 4.0, y: 4.0 },
                },
            }],
        },
        created_at: now,
        updated_at: now,
    }
}

fn components(detectors: MockDetectorFactory) -> Components {
    Components {
        sources: ScriptedFactory::new(vec![Ok(Duration::from_millis(3))]),
        detectors: Arc::new(detectors),
        sinks: Arc::new(RecordingSinks::default()),
        codec: Arc::new(PlainCodec),
    }
}

fn start(stored: &Arc<Mutex<Stored>>, detectors: MockDetectorFactory) -> PipelineHandle {
    let (_tx, changes) = tokio::sync::broadcast::channel(4);
    PipelineManager::start(
        Arc::new(repository(stored.clone())),
        changes,
        components(detectors),
        ManagerSettings {
            resync_every: Duration::from_secs(3600),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_runs_the_active_project_and_refits_when_a_prompt_changes() {
    let label = LabelId::new();
    let stored = Arc::new(Mutex::new(stored_project(label)));
    let fits = Arc::new(Mutex::new(Vec::<usize>::new()));
    let mut detectors = MockDetectorFactory::new();
    let f = fits.clone();
    detectors
        .expect_build()
        .returning(move |model, references| {
            assert_eq!(model.params.algorithm(), Algorithm::Classical);
            f.lock().unwrap().push(references.len());
            // The rectangle (1,1)-(4,4) covers pixel centres 1..=3 in both axes.
            assert_eq!(references[0].annotations[0].mask.area(), 9);
            Ok(detector(
                references[0].annotations[0].label_id,
                Duration::ZERO,
            ))
        });
    let handle = start(&stored, detectors);
    let mut results = handle.outputs().results.subscribe();
    let first = results.next().await.unwrap();
    assert_eq!(first.detections[0].label_id, label);
    assert_eq!(first.labels.get(label).unwrap().name, "cup");
    assert_eq!(handle.status().state, PipelineState::Running);

    // A second prompt: the manager refits from both references without stopping the stream.
    {
        let mut s = stored.lock().unwrap();
        let project_id = s.project.as_ref().unwrap().id;
        s.prompts.push(prompt(project_id, label));
        s.labels[0].name = LabelName::parse("mug").unwrap();
    }
    handle.reconcile().await.unwrap();
    eventually("refitted from two references", || {
        *fits.lock().unwrap() == vec![1, 2]
    })
    .await;
    // The rename reaches the output without a refit.
    loop {
        let r = results.next().await.unwrap();
        if r.labels.get(label).unwrap().name == "mug" {
            break;
        }
    }
    handle.shutdown().await;
    assert_eq!(handle.status().state, PipelineState::Idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_cannot_be_built_is_an_error_and_frames_pass_through() {
    let stored = Arc::new(Mutex::new(stored_project(LabelId::new())));
    let mut detectors = MockDetectorFactory::new();
    detectors.expect_build().returning(|_, _| {
        Err(DetectorError::Unavailable(
            "weights for SAM-HQ-tiny are missing".into(),
        ))
    });
    let handle = start(&stored, detectors);
    let h = handle.clone();
    eventually("the error shows", move || {
        matches!(&h.status().state, PipelineState::Error { message } if message == "model: weights for SAM-HQ-tiny are missing")
    })
    .await;
    let h = handle.clone();
    eventually("frames still pass through", move || {
        h.status().detector.passed_through > 0
    })
    .await;
    assert!(handle.outputs().results.latest().is_none());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_the_project_stops_the_pipeline_and_capture_refuses() {
    let stored = Arc::new(Mutex::new(stored_project(LabelId::new())));
    let mut detectors = MockDetectorFactory::new();
    detectors
        .expect_build()
        .returning(|_, _| Ok(detector(LabelId::new(), Duration::ZERO)));
    let handle = start(&stored, detectors);
    let project_id = stored.lock().unwrap().project.as_ref().unwrap().id;
    let h = handle.clone();
    eventually("a frame can be captured", move || {
        h.latest_frame(project_id).is_ok()
    })
    .await;
    assert!(matches!(
        handle.latest_frame(ProjectId::new()),
        Err(PipelineError::ProjectNotRunning(_))
    ));
    stored.lock().unwrap().project = None;
    handle.reconcile().await.unwrap();
    assert_eq!(handle.status().state, PipelineState::Idle);
    assert!(matches!(
        handle.latest_frame(project_id),
        Err(PipelineError::ProjectNotRunning(_))
    ));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigation_of_a_live_source_is_refused_with_a_reason() {
    let stored = Arc::new(Mutex::new(stored_project(LabelId::new())));
    stored.lock().unwrap().prompts.clear();
    let handle = start(&stored, MockDetectorFactory::new());
    let (project_id, source_id) = {
        let s = stored.lock().unwrap();
        (s.project.as_ref().unwrap().id, s.sources[0].id)
    };
    let h = handle.clone();
    eventually("the source runs", move || h.status().source.frames > 0).await;
    let err = handle.seek(project_id, source_id, 3).await.unwrap_err();
    assert!(
        matches!(err, PipelineError::Source(SourceError::Unsupported(_))),
        "{err}"
    );
    let err = handle
        .seek(project_id, SourceId::new(), 3)
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::SourceNotActive(_)));
    // No prompt: the detector is not configured, which is not an error.
    assert_eq!(handle.status().detector.state, ComponentState::None);
    handle.shutdown().await;
}
