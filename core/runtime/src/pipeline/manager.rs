//! The pipeline manager: one task that keeps the running pipeline in step with the store. Every
//! trigger (a stored change, a periodic resync for writes made by other servers, a request, a
//! detector that finished fitting, a status tick) is one arm of one `select!`, so what can happen
//! is visible in one place. Reconciling is idempotent: load the desired [`PipelineSpec`], diff it
//! against the running one, touch only what changed.
//!
//! Fitting a detector can take long, so it runs in its own task; its result comes back tagged with
//! a generation number and is dropped if the spec moved on meanwhile. Until it arrives the old
//! detector keeps running and the status says `starting`; a failed fit removes the old detector
//! (frames pass through) and puts the pipeline in `error`, so stale detections are never served
//! under a success status.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use visprompt_domain::{ProjectId, Repository, SourceId};

use crate::changes::Change;
use crate::frame::VideoFrame;
use crate::pipeline::running::{NavigationInfo, PipelineOutputs, RunningPipeline, SourceCommand};
use crate::pipeline::spec::{DetectorSpec, PipelineSpec, load_references};
use crate::pipeline::status::{ComponentState, PipelineStats, PipelineStatus};
use crate::port::{
    Detector, DetectorError, DetectorFactory, FrameCodec, SinkFactory, SourceError, SourceFactory,
    Thumbnail,
};

/// The adapters a pipeline is built from.
#[derive(Clone)]
pub struct Components {
    pub sources: Arc<dyn SourceFactory>,
    pub detectors: Arc<dyn DetectorFactory>,
    pub sinks: Arc<dyn SinkFactory>,
    pub codec: Arc<dyn FrameCodec>,
}

#[derive(Clone, Debug)]
pub struct ManagerSettings {
    /// How often the store is re-read even without a change notification (writes by other
    /// servers sharing a remote database).
    pub resync_every: Duration,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        Self {
            resync_every: Duration::from_secs(5),
        }
    }
}

/// What the manager tells clients through the event stream.
#[derive(Clone, Debug)]
pub enum RuntimeEvent {
    /// The pipeline's state or a component's state changed.
    State(PipelineStatus),
    /// Counters and rates, once a second while a pipeline runs.
    Metrics(PipelineStatus),
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("project {0} is not running: the live pipeline runs for the active project only")]
    ProjectNotRunning(ProjectId),
    #[error("source {0} is not the running pipeline's active source")]
    SourceNotActive(SourceId),
    #[error("the source has not produced a frame yet")]
    NoFrame,
    #[error("the project has no active source to take a frame from")]
    NoSource,
    #[error("the source is in error: {0}")]
    SourceFailed(String),
    #[error("the source did not answer in time")]
    Busy,
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the pipeline manager has stopped")]
    Stopped,
}

enum ManagerCommand {
    Reconcile { done: oneshot::Sender<()> },
    Shutdown { done: oneshot::Sender<()> },
}

struct DetectorBuilt {
    generation: u64,
    result: Result<Box<dyn Detector>, DetectorError>,
}

/// What request handlers need of the running pipeline, without a round trip to the manager.
struct Current {
    project_id: ProjectId,
    source_id: Option<SourceId>,
    stats: Arc<PipelineStats>,
    control: Option<mpsc::Sender<SourceCommand>>,
}

/// The cheap, cloneable face of the manager for the API and the viewers.
#[derive(Clone)]
pub struct PipelineHandle {
    commands: mpsc::Sender<ManagerCommand>,
    current: Arc<Mutex<Option<Current>>>,
    outputs: PipelineOutputs,
    events: broadcast::Sender<RuntimeEvent>,
}

pub struct PipelineManager;

impl PipelineManager {
    /// Starts the manager task: it builds the pipeline of the active project, if any, then follows
    /// `changes` until [`PipelineHandle::shutdown`].
    pub fn start(
        repo: Arc<dyn Repository>,
        changes: broadcast::Receiver<Change>,
        components: Components,
        settings: ManagerSettings,
    ) -> PipelineHandle {
        let (commands, commands_rx) = mpsc::channel(16);
        let (built_tx, built_rx) = mpsc::unbounded_channel();
        let handle = PipelineHandle {
            commands,
            current: Arc::new(Mutex::new(None)),
            outputs: PipelineOutputs::default(),
            events: broadcast::Sender::new(64),
        };
        let manager = Manager {
            repo,
            components,
            outputs: handle.outputs.clone(),
            current: handle.current.clone(),
            events: handle.events.clone(),
            running: None,
            fitted: None,
            generation: 0,
            built_tx,
            last_state: None,
        };
        tokio::spawn(manager.run(changes, commands_rx, built_rx, settings));
        handle
    }
}

impl PipelineHandle {
    pub fn outputs(&self) -> &PipelineOutputs {
        &self.outputs
    }

    pub fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    pub fn status(&self) -> PipelineStatus {
        self.with_current(|c| c.map(|c| c.stats.snapshot()))
            .unwrap_or_else(PipelineStatus::idle)
    }

    fn with_current<R>(&self, f: impl FnOnce(Option<&Current>) -> R) -> R {
        f(self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref())
    }

    /// Re-reads the store and applies the difference; returns once applied (a detector may still
    /// be fitting).
    pub async fn reconcile(&self) -> Result<(), PipelineError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(ManagerCommand::Reconcile { done })
            .await
            .map_err(|_| PipelineError::Stopped)?;
        wait.await.map_err(|_| PipelineError::Stopped)
    }

    /// Stops the pipeline and the manager.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self
            .commands
            .send(ManagerCommand::Shutdown { done })
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    /// The newest frame of `project_id`'s source, to store as a reference frame.
    pub fn latest_frame(&self, project_id: ProjectId) -> Result<Arc<VideoFrame>, PipelineError> {
        self.with_current(|current| {
            let current = current
                .filter(|c| c.project_id == project_id)
                .ok_or(PipelineError::ProjectNotRunning(project_id))?;
            if let ComponentState::Error { message } = current.stats.current_source_state() {
                return Err(PipelineError::SourceFailed(message));
            }
            if current.source_id.is_none() {
                return Err(PipelineError::NoSource);
            }
            Ok(())
        })?;
        self.outputs.frames.latest().ok_or(PipelineError::NoFrame)
    }

    fn control(
        &self,
        project_id: ProjectId,
        source_id: SourceId,
    ) -> Result<mpsc::Sender<SourceCommand>, PipelineError> {
        self.with_current(|current| {
            let current = current
                .filter(|c| c.project_id == project_id)
                .ok_or(PipelineError::ProjectNotRunning(project_id))?;
            match &current.control {
                Some(control) if current.source_id == Some(source_id) => Ok(control.clone()),
                _ => Err(PipelineError::SourceNotActive(source_id)),
            }
        })
    }

    async fn ask<T>(
        &self,
        project_id: ProjectId,
        source_id: SourceId,
        command: impl FnOnce(oneshot::Sender<Result<T, SourceError>>) -> SourceCommand,
    ) -> Result<T, PipelineError> {
        let control = self.control(project_id, source_id)?;
        let (reply, answer) = oneshot::channel();
        control
            .send(command(reply))
            .await
            .map_err(|_| PipelineError::Stopped)?;
        match tokio::time::timeout(Duration::from_secs(10), answer).await {
            Err(_) => Err(PipelineError::Busy),
            Ok(Err(_)) => Err(PipelineError::Stopped),
            Ok(Ok(result)) => Ok(result?),
        }
    }

    pub async fn seek(
        &self,
        project_id: ProjectId,
        source_id: SourceId,
        index: usize,
    ) -> Result<NavigationInfo, PipelineError> {
        self.ask(project_id, source_id, |reply| SourceCommand::Seek {
            index,
            reply,
        })
        .await
    }

    pub async fn position(
        &self,
        project_id: ProjectId,
        source_id: SourceId,
    ) -> Result<NavigationInfo, PipelineError> {
        self.ask(project_id, source_id, |reply| SourceCommand::Position {
            reply,
        })
        .await
    }

    pub async fn thumbnails(
        &self,
        project_id: ProjectId,
        source_id: SourceId,
        offset: usize,
        limit: usize,
        max_side: u32,
    ) -> Result<(NavigationInfo, Vec<Thumbnail>), PipelineError> {
        self.ask(project_id, source_id, |reply| SourceCommand::Thumbnails {
            offset,
            limit,
            max_side,
            reply,
        })
        .await
    }
}

struct Manager {
    repo: Arc<dyn Repository>,
    components: Components,
    outputs: PipelineOutputs,
    current: Arc<Mutex<Option<Current>>>,
    events: broadcast::Sender<RuntimeEvent>,
    running: Option<RunningPipeline>,
    /// The detector spec that is fitted, or being fitted, for the running pipeline.
    fitted: Option<DetectorSpec>,
    /// Bumped for every fit started; a finished fit of an older generation is discarded.
    generation: u64,
    built_tx: mpsc::UnboundedSender<DetectorBuilt>,
    /// The last state sent as an event, to send only changes.
    last_state: Option<PipelineStatus>,
}

impl Manager {
    async fn run(
        mut self,
        mut changes: broadcast::Receiver<Change>,
        mut commands: mpsc::Receiver<ManagerCommand>,
        mut built: mpsc::UnboundedReceiver<DetectorBuilt>,
        settings: ManagerSettings,
    ) {
        self.reconcile().await;
        let mut resync = tokio::time::interval(settings.resync_every);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut ticks = 0u64;
        let mut listening = true;
        loop {
            tokio::select! {
                change = changes.recv(), if listening => {
                    match change {
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Coalesce a burst of changes into one reconcile.
                            while changes.try_recv().is_ok() {}
                            self.reconcile().await;
                        }
                        Err(broadcast::error::RecvError::Closed) => listening = false,
                    }
                }
                _ = resync.tick() => self.reconcile().await,
                command = commands.recv() => match command {
                    Some(ManagerCommand::Reconcile { done }) => {
                        self.reconcile().await;
                        let _ = done.send(());
                    }
                    Some(ManagerCommand::Shutdown { done }) => {
                        self.stop_running().await;
                        self.report(false);
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.stop_running().await;
                        return;
                    }
                },
                Some(built) = built.recv() => self.detector_built(built),
                _ = tick.tick() => {
                    ticks += 1;
                    self.report(ticks.is_multiple_of(4));
                    continue;
                }
            }
            self.report(false);
        }
    }

    /// Sends a state event when the state changed, and metrics when asked.
    fn report(&mut self, metrics: bool) {
        let status = self
            .running
            .as_ref()
            .map(|r| r.stats().snapshot())
            .unwrap_or_else(PipelineStatus::idle);
        let key = |s: &PipelineStatus| {
            (
                s.project_id,
                s.state.clone(),
                s.source.state.clone(),
                s.detector.state.clone(),
                s.sinks
                    .iter()
                    .map(|k| (k.sink_id, k.health.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        if self.last_state.as_ref().map(key) != Some(key(&status)) {
            tracing::info!(
                message = "Pipeline state.",
                project_id = ?status.project_id,
                state = status.state.as_str(),
                error = ?match &status.state { crate::pipeline::status::PipelineState::Error { message } => Some(message.as_str()), _ => None },
            );
            let _ = self.events.send(RuntimeEvent::State(status.clone()));
            self.last_state = Some(status.clone());
        }
        if metrics && self.running.is_some() {
            let _ = self.events.send(RuntimeEvent::Metrics(status));
        }
    }

    async fn stop_running(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        self.fitted = None;
        self.generation += 1;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn reconcile(&mut self) {
        let desired = match PipelineSpec::load(&*self.repo).await {
            Ok(desired) => desired,
            Err(error) => {
                tracing::warn!(message = "Cannot read the pipeline configuration.", error = %error);
                return;
            }
        };
        let Some(spec) = desired else {
            if self.running.is_some() {
                self.stop_running().await;
                tracing::info!(message = "Pipeline stopped: no active project.");
            }
            return;
        };
        if self
            .running
            .as_ref()
            .is_some_and(|r| r.project_id() != spec.project_id)
        {
            self.stop_running().await;
        }
        let detector = spec.detector.clone();
        match &mut self.running {
            Some(running) => {
                if *running.spec() != spec {
                    running.apply(spec).await;
                    tracing::debug!(message = "Pipeline reconciled.");
                }
            }
            None => {
                let project_id = spec.project_id;
                self.running = Some(
                    RunningPipeline::start(
                        spec,
                        self.outputs.clone(),
                        self.components.sources.clone(),
                        self.components.sinks.clone(),
                    )
                    .await,
                );
                tracing::info!(message = "Pipeline started.", project_id = %project_id);
            }
        }
        let running = self.running.as_ref().expect("started above");
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
            project_id: running.project_id(),
            source_id: running.spec().source.as_ref().map(|s| s.id),
            stats: running.stats().clone(),
            control: running.source_control(),
        });
        if detector != self.fitted {
            self.fit(detector);
        }
    }

    /// Starts fitting `spec`'s detector, or switches to pass-through for `None`.
    fn fit(&mut self, spec: Option<DetectorSpec>) {
        let Some(running) = &self.running else { return };
        self.generation += 1;
        self.fitted = spec.clone();
        let Some(spec) = spec else {
            running.set_detector(None);
            running.stats().set_model(None, ComponentState::None);
            return;
        };
        running.stats().set_model(
            Some((spec.model.id, spec.model.params.algorithm())),
            ComponentState::Starting,
        );
        let generation = self.generation;
        let project_id = running.project_id();
        let repo = self.repo.clone();
        let codec = self.components.codec.clone();
        let factory = self.components.detectors.clone();
        let built = self.built_tx.clone();
        tokio::spawn(async move {
            let result = match load_references(&*repo, &*codec, project_id, &spec).await {
                Err(message) => Err(DetectorError::InvalidReferences(message)),
                Ok(references) if references.is_empty() => Err(DetectorError::InvalidReferences(
                    "no visual prompt with a readable frame".into(),
                )),
                Ok(references) => {
                    tokio::task::spawn_blocking(move || factory.build(&spec.model, &references))
                        .await
                        .unwrap_or_else(|panic| {
                            tracing::error!(message = "Detector fitting crashed.", error = %panic);
                            Err(DetectorError::Failed(
                                "fitting the detector crashed; see the server log".into(),
                            ))
                        })
                }
            };
            let _ = built.send(DetectorBuilt { generation, result });
        });
    }

    fn detector_built(&mut self, built: DetectorBuilt) {
        if built.generation != self.generation {
            return; // the spec moved on while this one was fitting
        }
        let Some(running) = &self.running else { return };
        match built.result {
            Ok(detector) => {
                running.set_detector(Some(detector));
                running.stats().detector_state(ComponentState::Running);
                tracing::info!(message = "Detector ready.", project_id = %running.project_id());
            }
            Err(error) => {
                running.set_detector(None);
                tracing::warn!(message = "Detector cannot be built; frames pass through.", error = %error);
                running.stats().detector_state(ComponentState::Error {
                    message: error.to_string(),
                });
            }
        }
    }
}
