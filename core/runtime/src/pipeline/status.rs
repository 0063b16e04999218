//! What the running pipeline reports: its state, and per stage the counters and rates the API,
//! the event stream and `/metrics` show. Stages write into [`PipelineStats`] as frames pass; a
//! [`PipelineStatus`] is a consistent snapshot of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use visprompt_domain::{
    Algorithm, ModelConfigId, ProjectId, SinkId, SinkKind, SourceId, SourceKind,
};

use crate::port::{SinkHealth, SinkHealthReporter};

/// The pipeline as a whole.
#[derive(Clone, Debug, PartialEq)]
pub enum PipelineState {
    /// No active project, or nothing to run (no source).
    Idle,
    /// A source is being opened or a detector fitted.
    Starting,
    Running,
    /// A component failed; frames may still pass through, but something the user configured is
    /// not working. The message says which component and why.
    Error {
        message: String,
    },
}

impl PipelineState {
    pub const fn as_str(&self) -> &'static str {
        match self {
            PipelineState::Idle => "idle",
            PipelineState::Starting => "starting",
            PipelineState::Running => "running",
            PipelineState::Error { .. } => "error",
        }
    }
}

/// One component's condition.
#[derive(Clone, Debug, PartialEq)]
pub enum ComponentState {
    /// Not configured: no source, or no model/prompt (frames pass through).
    None,
    Starting,
    Running,
    /// A finite source reached its end.
    Ended,
    Error {
        message: String,
    },
}

impl ComponentState {
    pub const fn as_str(&self) -> &'static str {
        match self {
            ComponentState::None => "none",
            ComponentState::Starting => "starting",
            ComponentState::Running => "running",
            ComponentState::Ended => "ended",
            ComponentState::Error { .. } => "error",
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            ComponentState::Error { message } => Some(message),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceStatus {
    pub source_id: Option<SourceId>,
    pub kind: Option<SourceKind>,
    pub state: ComponentState,
    /// Frames produced since the pipeline started.
    pub frames: u64,
    pub fps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DetectorStatus {
    pub model_id: Option<ModelConfigId>,
    pub algorithm: Option<Algorithm>,
    pub state: ComponentState,
    /// Frames the detector ran on.
    pub processed: u64,
    /// Frames that passed through without a detector.
    pub passed_through: u64,
    /// Frames the detector never saw because a newer one replaced them while it was busy.
    pub dropped: u64,
    pub fps: f64,
    /// Capture to published result.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Time in the detector alone.
    pub inference_p50_ms: Option<f64>,
    pub inference_p95_ms: Option<f64>,
    /// Detections in the last processed frame.
    pub last_detections: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SinkStatus {
    pub sink_id: SinkId,
    pub kind: SinkKind,
    pub health: SinkHealth,
    pub published: u64,
    /// Results replaced by newer ones before this sink took them.
    pub skipped: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineStatus {
    pub project_id: Option<ProjectId>,
    pub state: PipelineState,
    pub source: SourceStatus,
    pub detector: DetectorStatus,
    pub sinks: Vec<SinkStatus>,
}

impl PipelineStatus {
    pub fn idle() -> Self {
        Self {
            project_id: None,
            state: PipelineState::Idle,
            source: SourceStatus {
                source_id: None,
                kind: None,
                state: ComponentState::None,
                frames: 0,
                fps: 0.0,
            },
            detector: DetectorStatus {
                model_id: None,
                algorithm: None,
                state: ComponentState::None,
                processed: 0,
                passed_through: 0,
                dropped: 0,
                fps: 0.0,
                latency_p50_ms: None,
                latency_p95_ms: None,
                inference_p50_ms: None,
                inference_p95_ms: None,
                last_detections: 0,
            },
            sinks: Vec::new(),
        }
    }
}

/// Events per second over the last two seconds.
#[derive(Debug, Default)]
struct Rate {
    times: VecDeque<Instant>,
}

impl Rate {
    const WINDOW: Duration = Duration::from_secs(2);

    fn tick(&mut self, now: Instant) {
        self.times.push_back(now);
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > Self::WINDOW)
        {
            self.times.pop_front();
        }
    }

    fn per_second(&mut self, now: Instant) -> f64 {
        self.trim(now);
        if self.times.len() < 2 {
            return 0.0;
        }
        let span = now.duration_since(self.times[0]).as_secs_f64();
        if span <= 0.0 {
            0.0
        } else {
            (self.times.len() - 1) as f64 / span
        }
    }
}

/// The last few hundred durations, for percentiles.
#[derive(Debug, Default)]
struct Durations {
    samples: VecDeque<Duration>,
}

impl Durations {
    const KEEP: usize = 256;

    fn push(&mut self, d: Duration) {
        if self.samples.len() == Self::KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back(d);
    }

    /// Nearest-rank percentile in milliseconds.
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<Duration> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize - 1;
        Some(sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1e3)
    }
}

#[derive(Debug)]
struct SinkCounters {
    kind: SinkKind,
    health: SinkHealthReporter,
    published: u64,
    skipped: u64,
    errors: u64,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Inner {
    source_id: Option<SourceId>,
    source_kind: Option<SourceKind>,
    source_state: ComponentState,
    frames: u64,
    source_rate: Rate,
    model_id: Option<ModelConfigId>,
    algorithm: Option<Algorithm>,
    /// What the manager made of the configured detector: none, fitting, fitted, or failed to fit.
    detector_state: ComponentState,
    /// The last inference failure of the detector in use, cleared by the next success or a swap.
    /// Kept apart from `detector_state` so that a frame finishing on an old detector can never
    /// turn a failed fit back into success.
    detect_error: Option<String>,
    processed: u64,
    passed_through: u64,
    dropped: u64,
    detector_rate: Rate,
    latency: Durations,
    inference: Durations,
    last_detections: usize,
    sinks: BTreeMap<SinkId, SinkCounters>,
}

/// Written by the stages of one running pipeline, read by status requests.
#[derive(Debug)]
pub struct PipelineStats {
    project_id: ProjectId,
    inner: Mutex<Inner>,
}

impl PipelineStats {
    pub fn new(project_id: ProjectId) -> Self {
        Self {
            project_id,
            inner: Mutex::new(Inner {
                source_id: None,
                source_kind: None,
                source_state: ComponentState::None,
                frames: 0,
                source_rate: Rate::default(),
                model_id: None,
                algorithm: None,
                detector_state: ComponentState::None,
                detect_error: None,
                processed: 0,
                passed_through: 0,
                dropped: 0,
                detector_rate: Rate::default(),
                latency: Durations::default(),
                inference: Durations::default(),
                last_detections: 0,
                sinks: BTreeMap::new(),
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn project_id(&self) -> ProjectId {
        self.project_id
    }

    pub fn set_source(&self, source: Option<(SourceId, SourceKind)>) {
        self.with(|s| {
            s.source_id = source.map(|(id, _)| id);
            s.source_kind = source.map(|(_, kind)| kind);
            s.source_state = if source.is_some() {
                ComponentState::Starting
            } else {
                ComponentState::None
            };
        });
    }

    pub fn source_state(&self, state: ComponentState) {
        self.with(|s| s.source_state = state);
    }

    pub fn current_source_state(&self) -> ComponentState {
        self.with(|s| s.source_state.clone())
    }

    pub fn frame_in(&self) {
        let now = Instant::now();
        self.with(|s| {
            s.frames += 1;
            s.source_rate.tick(now);
        });
    }

    pub fn set_model(&self, model: Option<(ModelConfigId, Algorithm)>, state: ComponentState) {
        self.with(|s| {
            s.model_id = model.map(|(id, _)| id);
            s.algorithm = model.map(|(_, a)| a);
            s.detector_state = state;
        });
    }

    pub fn detector_state(&self, state: ComponentState) {
        self.with(|s| s.detector_state = state);
    }

    /// Inference failed on a frame; the detector stays in use.
    pub fn detection_failed(&self, message: String) {
        self.with(|s| s.detect_error = Some(message));
    }

    /// Another detector (or none) took over; failures of the previous one no longer apply.
    pub fn detector_swapped(&self) {
        self.with(|s| s.detect_error = None);
    }

    pub fn frames_dropped(&self, n: u64) {
        self.with(|s| s.dropped += n);
    }

    pub fn passed_through(&self) {
        self.with(|s| s.passed_through += 1);
    }

    pub fn processed(&self, latency: Duration, inference: Duration, detections: usize) {
        let now = Instant::now();
        self.with(|s| {
            s.processed += 1;
            s.detector_rate.tick(now);
            s.latency.push(latency);
            s.inference.push(inference);
            s.last_detections = detections;
            s.detect_error = None;
        });
    }

    pub fn add_sink(&self, id: SinkId, kind: SinkKind, health: SinkHealthReporter) {
        self.with(|s| {
            s.sinks.insert(
                id,
                SinkCounters {
                    kind,
                    health,
                    published: 0,
                    skipped: 0,
                    errors: 0,
                    last_error: None,
                },
            );
        });
    }

    pub fn remove_sink(&self, id: SinkId) {
        self.with(|s| {
            s.sinks.remove(&id);
        });
    }

    pub fn sink_published(&self, id: SinkId, skipped: u64, error: Option<String>) {
        self.with(|s| {
            if let Some(c) = s.sinks.get_mut(&id) {
                c.skipped = skipped;
                match error {
                    None => c.published += 1,
                    Some(e) => {
                        c.errors += 1;
                        c.last_error = Some(e);
                    }
                }
            }
        });
    }

    pub fn snapshot(&self) -> PipelineStatus {
        let now = Instant::now();
        self.with(|s| {
            let state = overall_state(s);
            PipelineStatus {
                project_id: Some(self.project_id),
                state,
                source: SourceStatus {
                    source_id: s.source_id,
                    kind: s.source_kind,
                    state: s.source_state.clone(),
                    frames: s.frames,
                    fps: s.source_rate.per_second(now),
                },
                detector: DetectorStatus {
                    model_id: s.model_id,
                    algorithm: s.algorithm,
                    state: detector_state(s),
                    processed: s.processed,
                    passed_through: s.passed_through,
                    dropped: s.dropped,
                    fps: s.detector_rate.per_second(now),
                    latency_p50_ms: s.latency.percentile_ms(50.0),
                    latency_p95_ms: s.latency.percentile_ms(95.0),
                    inference_p50_ms: s.inference.percentile_ms(50.0),
                    inference_p95_ms: s.inference.percentile_ms(95.0),
                    last_detections: s.last_detections,
                },
                sinks: s
                    .sinks
                    .iter()
                    .map(|(id, c)| SinkStatus {
                        sink_id: *id,
                        kind: c.kind,
                        health: c.health.get(),
                        published: c.published,
                        skipped: c.skipped,
                        errors: c.errors,
                        last_error: c.last_error.clone(),
                    })
                    .collect(),
            }
        })
    }
}

fn detector_state(s: &Inner) -> ComponentState {
    match (&s.detector_state, &s.detect_error) {
        (ComponentState::Running, Some(message)) => ComponentState::Error {
            message: message.clone(),
        },
        (state, _) => state.clone(),
    }
}

fn overall_state(s: &Inner) -> PipelineState {
    if let ComponentState::Error { message } = &s.source_state {
        return PipelineState::Error {
            message: format!("source: {message}"),
        };
    }
    let detector = detector_state(s);
    if let ComponentState::Error { message } = &detector {
        return PipelineState::Error {
            message: format!("model: {message}"),
        };
    }
    match (&s.source_state, &detector) {
        (ComponentState::None, _) => PipelineState::Idle,
        (ComponentState::Starting, _) | (_, ComponentState::Starting) => PipelineState::Starting,
        _ => PipelineState::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut d = Durations::default();
        for ms in 1..=100 {
            d.push(Duration::from_millis(ms));
        }
        assert_eq!(d.percentile_ms(50.0), Some(50.0));
        assert_eq!(d.percentile_ms(95.0), Some(95.0));
        assert_eq!(Durations::default().percentile_ms(50.0), None);
    }

    #[test]
    fn rate_counts_events_per_second_in_its_window() {
        let mut r = Rate::default();
        let t0 = Instant::now();
        for i in 0..11 {
            r.tick(t0 + Duration::from_millis(100 * i));
        }
        let fps = r.per_second(t0 + Duration::from_millis(1000));
        assert!((fps - 10.0).abs() < 1e-9, "{fps}");
        assert_eq!(r.per_second(t0 + Duration::from_secs(10)), 0.0);
    }

    #[test]
    fn a_frame_finishing_after_a_failed_fit_does_not_report_success() {
        let stats = PipelineStats::new(ProjectId::new());
        stats.set_source(Some((SourceId::new(), SourceKind::Synthetic)));
        stats.source_state(ComponentState::Running);
        stats.detector_state(ComponentState::Error {
            message: "no weights".into(),
        });
        // The old detector's last frame completes after the failed fit was reported.
        stats.processed(Duration::from_millis(5), Duration::from_millis(4), 1);
        assert!(matches!(
            stats.snapshot().detector.state,
            ComponentState::Error { .. }
        ));
    }

    #[test]
    fn an_inference_failure_is_an_error_until_the_next_success() {
        let stats = PipelineStats::new(ProjectId::new());
        stats.set_source(Some((SourceId::new(), SourceKind::Synthetic)));
        stats.source_state(ComponentState::Running);
        stats.detector_state(ComponentState::Running);
        stats.detection_failed("out of memory".into());
        assert_eq!(
            stats.snapshot().state,
            PipelineState::Error {
                message: "model: out of memory".into()
            }
        );
        stats.processed(Duration::from_millis(5), Duration::from_millis(4), 0);
        assert_eq!(stats.snapshot().state, PipelineState::Running);
    }

    #[test]
    fn a_failing_component_makes_the_pipeline_state_an_error_naming_it() {
        let stats = PipelineStats::new(ProjectId::new());
        assert_eq!(stats.snapshot().state, PipelineState::Idle);
        stats.set_source(Some((SourceId::new(), SourceKind::Synthetic)));
        assert_eq!(stats.snapshot().state, PipelineState::Starting);
        stats.source_state(ComponentState::Running);
        assert_eq!(stats.snapshot().state, PipelineState::Running);
        stats.detector_state(ComponentState::Error {
            message: "no weights".into(),
        });
        assert_eq!(
            stats.snapshot().state,
            PipelineState::Error {
                message: "model: no weights".into()
            }
        );
        stats.source_state(ComponentState::Error {
            message: "camera gone".into(),
        });
        assert_eq!(
            stats.snapshot().state,
            PipelineState::Error {
                message: "source: camera gone".into()
            }
        );
    }
}
