//! The stages of one running pipeline, each a tokio task: the source task publishes frames, the
//! detector task turns the newest frame into a result (inference on a blocking thread), and one
//! task per sink publishes the newest result. Stages meet only through newest-frame-wins
//! broadcasters, so no stage ever waits on a slower one.
//!
//! [`RunningPipeline::apply`] moves a running pipeline to a new spec of the same project, touching
//! only the stages whose part of the spec changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use visprompt_domain::{ProjectId, SinkConfig, SinkId};

use crate::broadcast::{Broadcaster, Subscription};
use crate::frame::{FrameResult, LabelTable, VideoFrame};
use crate::pipeline::spec::{PipelineSpec, SourceSpec};
use crate::pipeline::status::{ComponentState, PipelineStats};
use crate::port::{
    Detector, FrameSource, Navigation, ResultSink, SinkFactory, SinkHealth, SinkHealthReporter,
    SourceError, SourceFactory, SourceMode, Thumbnail,
};

/// The long-lived outputs every pipeline publishes into. They outlive pipelines, so viewers and
/// subscribers stay connected while sources, models and even projects change.
#[derive(Clone, Default)]
pub struct PipelineOutputs {
    /// Every frame the source produced, before detection.
    pub frames: Broadcaster<VideoFrame>,
    /// Every frame the detector processed, with its detections.
    pub results: Broadcaster<FrameResult>,
}

/// Position of a navigable source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NavigationInfo {
    pub position: usize,
    pub len: usize,
}

/// Requests to the source task, answered on the enclosed channel.
pub enum SourceCommand {
    Seek {
        index: usize,
        reply: oneshot::Sender<Result<NavigationInfo, SourceError>>,
    },
    Position {
        reply: oneshot::Sender<Result<NavigationInfo, SourceError>>,
    },
    Thumbnails {
        offset: usize,
        limit: usize,
        max_side: u32,
        reply: oneshot::Sender<Result<(NavigationInfo, Vec<Thumbnail>), SourceError>>,
    },
}

impl SourceCommand {
    fn refuse(self, error: impl Fn() -> SourceError) {
        match self {
            SourceCommand::Seek { reply, .. } | SourceCommand::Position { reply } => {
                let _ = reply.send(Err(error()));
            }
            SourceCommand::Thumbnails { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

struct Stage {
    task: JoinHandle<()>,
}

impl Stage {
    /// Aborts the task and waits (bounded) until it is gone, so a replaced stage never runs on.
    async fn stop(self) {
        self.task.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

struct SourceStage {
    stage: Stage,
    /// Navigation requests from the API; closed when the stage stops.
    control: mpsc::Sender<SourceCommand>,
}

struct SinkStage {
    stage: Stage,
    /// Asks the sink task to close its sink and end; dropped → the task ends too.
    stop: oneshot::Sender<()>,
}

pub struct RunningPipeline {
    spec: PipelineSpec,
    outputs: PipelineOutputs,
    stats: Arc<PipelineStats>,
    /// Frame numbers keep counting across source swaps, so they never repeat within a pipeline.
    seq: Arc<AtomicU64>,
    labels: watch::Sender<Arc<LabelTable>>,
    source: Option<SourceStage>,
    detector: Stage,
    /// Hands a fitted detector (or none: pass-through) to the detector task.
    detector_swap: mpsc::UnboundedSender<Option<Box<dyn Detector>>>,
    sinks: BTreeMap<SinkId, SinkStage>,
    source_factory: Arc<dyn SourceFactory>,
    sink_factory: Arc<dyn SinkFactory>,
}

impl RunningPipeline {
    /// Starts the source, the detector task (passing frames through until a detector is swapped
    /// in) and the sinks of `spec`.
    pub async fn start(
        spec: PipelineSpec,
        outputs: PipelineOutputs,
        source_factory: Arc<dyn SourceFactory>,
        sink_factory: Arc<dyn SinkFactory>,
    ) -> Self {
        Self::start_with_detector(spec, outputs, source_factory, sink_factory, None).await
    }

    /// As [`RunningPipeline::start`], with a detector already fitted: it is in place before the
    /// source opens, so no frame passes through undetected.
    pub async fn start_with_detector(
        spec: PipelineSpec,
        outputs: PipelineOutputs,
        source_factory: Arc<dyn SourceFactory>,
        sink_factory: Arc<dyn SinkFactory>,
        detector: Option<Box<dyn Detector>>,
    ) -> Self {
        outputs.frames.clear();
        outputs.results.clear();
        let stats = Arc::new(PipelineStats::new(spec.project_id));
        let (labels, labels_rx) = watch::channel(Arc::new(LabelTable::from_labels(&spec.labels)));
        let (detector_swap, swap_rx) = mpsc::unbounded_channel();
        if detector.is_some() {
            let _ = detector_swap.send(detector);
        }
        let detector = Stage {
            task: tokio::spawn(run_detector(
                spec.project_id,
                outputs.frames.subscribe(),
                swap_rx,
                outputs.results.clone(),
                labels_rx,
                stats.clone(),
            )),
        };
        let mut pipeline = Self {
            spec: PipelineSpec {
                source: None,
                sinks: BTreeMap::new(),
                ..spec.clone()
            },
            outputs,
            stats,
            seq: Arc::new(AtomicU64::new(0)),
            labels,
            source: None,
            detector,
            detector_swap,
            sinks: BTreeMap::new(),
            source_factory,
            sink_factory,
        };
        pipeline.apply(spec).await;
        pipeline
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    pub fn project_id(&self) -> ProjectId {
        self.spec.project_id
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// Moves to `spec` (same project): restarts the source only if its configuration changed,
    /// adds, replaces and removes sinks by difference, and publishes new labels at once. The
    /// detector part is the manager's (fitting is slow); it only records the new spec here.
    pub async fn apply(&mut self, spec: PipelineSpec) {
        debug_assert_eq!(spec.project_id, self.spec.project_id);
        if spec.source != self.spec.source {
            if let Some(old) = self.source.take() {
                old.stage.stop().await;
            }
            self.stats
                .set_source(spec.source.as_ref().map(|s| (s.id, s.config.kind())));
            if let Some(source) = &spec.source {
                self.source = Some(self.spawn_source(source.clone()));
            } else {
                self.outputs.frames.clear();
            }
        }
        if spec.labels != self.spec.labels {
            self.labels
                .send_replace(Arc::new(LabelTable::from_labels(&spec.labels)));
        }
        let removed: Vec<SinkId> = self
            .sinks
            .keys()
            .filter(|id| spec.sinks.get(id) != self.spec.sinks.get(id))
            .copied()
            .collect();
        for id in removed {
            if let Some(stage) = self.sinks.remove(&id) {
                let _ = stage.stop.send(());
                stop_sink(stage.stage).await;
            }
            self.stats.remove_sink(id);
        }
        for (id, config) in &spec.sinks {
            if !self.sinks.contains_key(id) {
                let stage = self.spawn_sink(*id, config.clone());
                self.sinks.insert(*id, stage);
            }
        }
        self.spec = spec;
    }

    /// Swaps the detector (or pass-through with `None`) without stopping the stream.
    pub fn set_detector(&self, detector: Option<Box<dyn Detector>>) {
        let _ = self.detector_swap.send(detector);
    }

    /// A navigation request to the source task; `None` when there is no source.
    pub fn source_control(&self) -> Option<mpsc::Sender<SourceCommand>> {
        self.source.as_ref().map(|s| s.control.clone())
    }

    /// Stops every stage: source first, so nothing new enters while the rest winds down.
    pub async fn stop(mut self) {
        if let Some(source) = self.source.take() {
            source.stage.stop().await;
        }
        self.detector.stop().await;
        for (_, stage) in std::mem::take(&mut self.sinks) {
            let _ = stage.stop.send(());
            stop_sink(stage.stage).await;
        }
        self.outputs.frames.clear();
        self.outputs.results.clear();
    }

    fn spawn_source(&self, spec: SourceSpec) -> SourceStage {
        let (control, control_rx) = mpsc::channel(16);
        let task = tokio::spawn(run_source(
            self.source_factory.clone(),
            spec,
            control_rx,
            self.outputs.frames.clone(),
            self.stats.clone(),
            self.seq.clone(),
        ));
        SourceStage {
            stage: Stage { task },
            control,
        }
    }

    fn spawn_sink(&self, id: SinkId, config: SinkConfig) -> SinkStage {
        let health = SinkHealthReporter::default();
        self.stats.add_sink(id, config.kind(), health.clone());
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run_sink(
            self.sink_factory.clone(),
            id,
            config,
            health,
            self.outputs.results.subscribe(),
            stop_rx,
            self.stats.clone(),
            self.spec.project_id,
        ));
        SinkStage {
            stage: Stage { task },
            stop,
        }
    }
}

/// Gives a sink a moment to close its connection before the task is aborted.
async fn stop_sink(stage: Stage) {
    let mut task = stage.task;
    if tokio::time::timeout(Duration::from_secs(2), &mut task)
        .await
        .is_err()
    {
        task.abort();
        let _ = task.await;
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Opens the source and publishes its frames; when it fails, reports the error and reopens it
/// with exponential back-off (a camera unplugged, an RTSP stream that dropped).
async fn run_source(
    factory: Arc<dyn SourceFactory>,
    spec: SourceSpec,
    mut control: mpsc::Receiver<SourceCommand>,
    frames: Broadcaster<VideoFrame>,
    stats: Arc<PipelineStats>,
    seq: Arc<AtomicU64>,
) {
    let mut backoff = RETRY_FIRST;
    loop {
        stats.source_state(ComponentState::Starting);
        let error = match factory.open(&spec.config).await {
            Ok(mut source) => {
                stats.source_state(ComponentState::Running);
                let publish = |image, index| {
                    frames.publish(Arc::new(VideoFrame {
                        seq: seq.fetch_add(1, Ordering::Relaxed) + 1,
                        captured_at: Instant::now(),
                        timestamp: chrono::Utc::now(),
                        image: Arc::new(image),
                        index,
                    }));
                    stats.frame_in();
                };
                loop {
                    let outcome = match source.mode() {
                        SourceMode::Continuous => {
                            run_continuous(&mut *source, &mut control, &publish, &mut backoff).await
                        }
                        SourceMode::Manual => {
                            run_manual(&mut *source, &mut control, &publish, &mut backoff).await
                        }
                    };
                    if let Err(e) = outcome {
                        break e;
                    }
                    stats.source_state(ComponentState::Ended);
                    // A finished source still answers navigation; a seek resumes it.
                    let mut resumed = false;
                    while let Some(cmd) = control.recv().await {
                        let seek = matches!(cmd, SourceCommand::Seek { .. });
                        handle_command(&mut *source, cmd);
                        if seek {
                            resumed = true;
                            break;
                        }
                    }
                    if !resumed {
                        return; // the stage is stopping
                    }
                    stats.source_state(ComponentState::Running);
                }
            }
            Err(e) => e,
        };
        stats.source_state(ComponentState::Error {
            message: error.to_string(),
        });
        // What this build cannot open (an unsupported scheme, a malformed URL) will not open on a
        // retry either: report it and wait for the configuration to change.
        let final_error = matches!(error, SourceError::Unsupported(_));
        if final_error {
            tracing::warn!(message = "Source cannot be opened.", source_id = %spec.id, error = %error);
        } else {
            tracing::warn!(message = "Source failed; retrying.", source_id = %spec.id, error = %error, retry_in = ?backoff);
        }
        let until = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until), if !final_error => break,
                cmd = control.recv() => match cmd {
                    Some(cmd) => cmd.refuse(|| SourceError::Unavailable(format!("the source is not available: {error}"))),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

type Publish<'a> = dyn Fn(crate::image::RgbImage, Option<usize>) + Send + Sync + 'a;

/// Reads frames until the stream ends (`Ok`) or fails (`Err`). Navigation requests are served
/// between frames.
async fn run_continuous(
    source: &mut dyn FrameSource,
    control: &mut mpsc::Receiver<SourceCommand>,
    publish: &Publish<'_>,
    backoff: &mut Duration,
) -> Result<(), SourceError> {
    loop {
        while let Ok(cmd) = control.try_recv() {
            handle_command(source, cmd);
        }
        match source.next_frame().await? {
            Some(image) => {
                *backoff = RETRY_FIRST;
                publish(image, None);
            }
            None => return Ok(()),
        }
    }
}

/// Publishes the frame at the current position, then one more after every seek.
async fn run_manual(
    source: &mut dyn FrameSource,
    control: &mut mpsc::Receiver<SourceCommand>,
    publish: &Publish<'_>,
    backoff: &mut Duration,
) -> Result<(), SourceError> {
    let mut read = true;
    loop {
        if read {
            let index = source.navigation().map(|n| n.position());
            match source.next_frame().await {
                Ok(Some(image)) => {
                    *backoff = RETRY_FIRST;
                    publish(image, index);
                }
                Ok(None) => return Ok(()),
                // A corrupt image is one bad position, not a broken source.
                Err(SourceError::Corrupt(message)) => {
                    tracing::warn!(message = "Skipping a frame that does not decode.", error = %message);
                }
                Err(e) => return Err(e),
            }
        }
        let Some(cmd) = control.recv().await else {
            return Ok(());
        };
        read = matches!(cmd, SourceCommand::Seek { .. });
        handle_command(source, cmd);
    }
}

fn info(nav: &dyn Navigation) -> NavigationInfo {
    NavigationInfo {
        position: nav.position(),
        len: nav.len(),
    }
}

fn not_navigable() -> SourceError {
    SourceError::Unsupported(
        "the active source has no frame positions (it is a live stream)".into(),
    )
}

fn handle_command(source: &mut dyn FrameSource, cmd: SourceCommand) {
    let Some(nav) = source.navigation() else {
        cmd.refuse(not_navigable);
        return;
    };
    match cmd {
        SourceCommand::Seek { index, reply } => {
            let _ = reply.send(nav.seek(index).map(|()| info(nav)));
        }
        SourceCommand::Position { reply } => {
            let _ = reply.send(Ok(info(nav)));
        }
        SourceCommand::Thumbnails {
            offset,
            limit,
            max_side,
            reply,
        } => {
            let result = blocking(|| nav.thumbnails(offset, limit, max_side));
            let _ = reply.send(result.map(|t| (info(nav), t)));
        }
    }
}

/// Runs blocking work in place without stalling other tasks of a multi-threaded runtime.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Takes the newest frame, runs the detector on a blocking thread and publishes the result.
/// Without a detector frames pass through: the live view works, sinks get nothing.
async fn run_detector(
    project_id: ProjectId,
    mut frames: Subscription<VideoFrame>,
    mut swap: mpsc::UnboundedReceiver<Option<Box<dyn Detector>>>,
    results: Broadcaster<FrameResult>,
    labels: watch::Receiver<Arc<LabelTable>>,
    stats: Arc<PipelineStats>,
) {
    let mut detector: Option<Box<dyn Detector>> = None;
    let mut skipped = 0;
    loop {
        tokio::select! {
            biased;
            next = swap.recv() => match next {
                Some(next) => {
                    detector = next;
                    stats.detector_swapped();
                }
                None => return,
            },
            frame = frames.next() => {
                let Some(frame) = frame else { return };
                stats.frames_dropped(frames.skipped() - skipped);
                skipped = frames.skipped();
                let Some(mut d) = detector.take() else {
                    stats.passed_through();
                    continue;
                };
                let image = frame.image.clone();
                let started = Instant::now();
                let joined = tokio::task::spawn_blocking(move || {
                    let result = d.detect(&image);
                    (d, result)
                })
                .await;
                let inference = started.elapsed();
                match joined {
                    Ok((d, Ok(detections))) => {
                        detector = Some(d);
                        let n = detections.len();
                        let labels = labels.borrow().clone();
                        let result = FrameResult::new(project_id, (*frame).clone(), detections, labels, inference);
                        let latency = result.latency();
                        results.publish(Arc::new(result));
                        stats.processed(latency, inference, n);
                    }
                    Ok((d, Err(error))) => {
                        detector = Some(d);
                        tracing::warn!(message = "Detection failed.", error = %error);
                        stats.detection_failed(error.to_string());
                    }
                    Err(panic) => {
                        tracing::error!(message = "The detector crashed; frames pass through.", error = %panic);
                        stats.detection_failed("the detector crashed; see the server log".into());
                    }
                }
            }
        }
    }
}

/// Builds the sink, then publishes the newest result of this project until told to stop.
#[allow(clippy::too_many_arguments)]
async fn run_sink(
    factory: Arc<dyn SinkFactory>,
    id: SinkId,
    config: SinkConfig,
    health: SinkHealthReporter,
    results: Subscription<FrameResult>,
    stop: oneshot::Receiver<()>,
    stats: Arc<PipelineStats>,
    project_id: ProjectId,
) {
    let sink: Box<dyn ResultSink> = match factory.build(&config, health.clone()).await {
        Ok(sink) => sink,
        Err(error) => {
            tracing::warn!(message = "Sink cannot start.", sink_id = %id, error = %error);
            health.set(SinkHealth::Retrying {
                message: error.to_string(),
            });
            stats.sink_published(id, 0, Some(error.to_string()));
            let _ = stop.await;
            return;
        }
    };
    drive_sink(sink, results, stop, project_id, |skipped, error| {
        stats.sink_published(id, skipped, error)
    })
    .await;
    health.set(SinkHealth::Stopped);
}

/// Hands the project's newest results to `sink` until `stop` fires or the results end, then closes
/// the sink. `published` hears of each hand-over: results skipped so far, and the sink's error.
pub(crate) async fn drive_sink(
    mut sink: Box<dyn ResultSink>,
    mut results: Subscription<FrameResult>,
    mut stop: oneshot::Receiver<()>,
    project_id: ProjectId,
    mut published: impl FnMut(u64, Option<String>) + Send,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            result = results.next() => {
                let Some(result) = result else { break };
                if result.project_id != project_id {
                    continue;
                }
                let error = sink.publish(&result).await.err().map(|e| e.to_string());
                published(results.skipped(), error);
            }
        }
    }
    sink.close().await;
}
