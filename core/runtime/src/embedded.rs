//! The live pipeline in a program of one's own, without the server or a database: a source, a
//! fitted detector and any number of sinks, run by the same stages as the server's pipeline.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use visprompt_domain::{Color, LabelId, LabelName, SourceConfig};
//! use visprompt_runtime::embedded::{LivePipeline, callback_sink};
//! use visprompt_runtime::{
//!     BitMask, Detection, Detector, DetectorError, FrameSource, RgbImage, SourceError,
//!     SourceFactory,
//! };
//!
//! /// Ten grey frames, one every 10 ms.
//! struct Grey(u32);
//! #[async_trait]
//! impl FrameSource for Grey {
//!     async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
//!         if self.0 == 10 {
//!             return Ok(None);
//!         }
//!         self.0 += 1;
//!         tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//!         Ok(Some(RgbImage::new(64, 48)))
//!     }
//! }
//! struct Opens;
//! #[async_trait]
//! impl SourceFactory for Opens {
//!     async fn open(&self, _: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
//!         Ok(Box::new(Grey(0)))
//!     }
//! }
//!
//! /// Finds the top-left 8x8 corner in every frame.
//! struct Corner(LabelId);
//! impl Detector for Corner {
//!     fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
//!         let mut mask = BitMask::new(image.width(), image.height());
//!         (0..8).for_each(|y| (0..8).for_each(|x| mask.set(x, y, true)));
//!         Ok(Detection::from_mask(self.0, 0.9, mask).into_iter().collect())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let corner = LabelId::new();
//! let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
//! let pipeline = LivePipeline::builder()
//!     .label(corner, LabelName::parse("corner").unwrap(), Color::rgb(230, 57, 70))
//!     .source(Arc::new(Opens), SourceConfig::Synthetic)
//!     .detector(Box::new(Corner(corner)))
//!     .sink(callback_sink(move |result| {
//!         let _ = seen.send(result.detections.len());
//!     }))
//!     .start()
//!     .await;
//! assert_eq!(seen_rx.recv().await, Some(1));
//! pipeline.stop().await;
//! # }
//! ```
//!
//! The `visprompt-examples` package has complete programs: the synthetic scene with a detector
//! fitted from one reference image and mask, and results served over HTTP by a custom sink.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use visprompt_domain::{
    Color, Label, LabelId, LabelName, ProjectId, SinkConfig, SourceConfig, SourceId, Timestamp,
};

use crate::broadcast::Subscription;
use crate::frame::FrameResult;
use crate::pipeline::running::drive_sink;
use crate::pipeline::{PipelineOutputs, PipelineSpec, PipelineStatus, RunningPipeline, SourceSpec};
use crate::port::{
    Detector, ResultSink, SinkError, SinkFactory, SinkHealthReporter, SourceFactory,
};

/// A running pipeline of one's own. Dropping it without [`LivePipeline::stop`] aborts its stages
/// when the tokio runtime shuts down; `stop` ends them in order and closes the sinks.
pub struct LivePipeline {
    running: RunningPipeline,
    outputs: PipelineOutputs,
    project_id: ProjectId,
    sinks: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// What [`LivePipeline::builder`] collects.
pub struct LivePipelineBuilder {
    project_id: ProjectId,
    labels: Vec<Label>,
    source: Option<(Arc<dyn SourceFactory>, SourceConfig)>,
    detector: Option<Box<dyn Detector>>,
    sinks: Vec<Box<dyn ResultSink>>,
}

impl LivePipeline {
    pub fn builder() -> LivePipelineBuilder {
        LivePipelineBuilder {
            project_id: ProjectId::new(),
            labels: Vec::new(),
            source: None,
            detector: None,
            sinks: Vec::new(),
        }
    }

    /// Every processed frame with its detections, newest first when the reader falls behind.
    pub fn results(&self) -> Subscription<FrameResult> {
        self.outputs.results.subscribe()
    }

    /// Source, detector and throughput, as the server's `/pipeline` reports them.
    pub fn status(&self) -> PipelineStatus {
        self.running.stats().snapshot()
    }

    /// The id the pipeline's results carry (`FrameResult::project_id`).
    pub fn project_id(&self) -> ProjectId {
        self.project_id
    }

    /// Swaps in another detector (refitted from new references, say) without stopping the
    /// stream; `None` passes frames through.
    pub fn set_detector(&self, detector: Option<Box<dyn Detector>>) {
        self.running.set_detector(detector);
    }

    /// Stops the source, then the detector, then closes every sink.
    pub async fn stop(self) {
        self.running.stop().await;
        for (stop, task) in self.sinks {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

impl LivePipelineBuilder {
    /// A label the detector may report; its name and colour go into the results' payloads.
    pub fn label(mut self, id: LabelId, name: LabelName, color: Color) -> Self {
        self.labels.push(Label {
            id,
            project_id: self.project_id,
            name,
            color,
            created_at: Timestamp::default(),
            updated_at: Timestamp::default(),
        });
        self
    }

    /// Where frames come from: `factory` opens `config` (and reopens it after a failure, with
    /// back-off). The media adapter's factory opens every source type the server knows.
    pub fn source(mut self, factory: Arc<dyn SourceFactory>, config: SourceConfig) -> Self {
        self.source = Some((factory, config));
        self
    }

    /// The fitted detector; without one, frames pass through with no detections.
    pub fn detector(mut self, detector: Box<dyn Detector>) -> Self {
        self.detector = Some(detector);
        self
    }

    /// A sink that gets every result it can keep up with (a slow sink skips frames, never slows
    /// the pipeline).
    pub fn sink(mut self, sink: Box<dyn ResultSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Starts the stages. Sinks subscribe before the source opens, so they see the first result.
    pub async fn start(self) -> LivePipeline {
        let outputs = PipelineOutputs::default();
        let project_id = self.project_id;
        let sinks = self
            .sinks
            .into_iter()
            .map(|sink| {
                let (stop, stop_rx) = oneshot::channel();
                let results = outputs.results.subscribe();
                let task = tokio::spawn(drive_sink(sink, results, stop_rx, project_id, |_, _| {}));
                (stop, task)
            })
            .collect();
        let spec = PipelineSpec {
            project_id,
            source: self.source.as_ref().map(|(_, config)| SourceSpec {
                id: SourceId::new(),
                config: config.clone(),
            }),
            detector: None,
            labels: self.labels,
            sinks: Default::default(),
        };
        let factory = match self.source {
            Some((factory, _)) => factory,
            None => Arc::new(NoSource),
        };
        // Detector first: the source's first frame then already meets it.
        let running = RunningPipeline::start_with_detector(
            spec,
            outputs.clone(),
            factory,
            Arc::new(NoSinkConfigs),
            self.detector,
        )
        .await;
        LivePipeline {
            running,
            outputs,
            project_id,
            sinks,
        }
    }
}

/// Calls `f` with every result the sink gets; the quickest way to use detections in a program.
pub fn callback_sink(f: impl FnMut(&FrameResult) + Send + 'static) -> Box<dyn ResultSink> {
    Box::new(CallbackSink(f))
}

struct CallbackSink<F>(F);

#[async_trait]
impl<F: FnMut(&FrameResult) + Send> ResultSink for CallbackSink<F> {
    async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        (self.0)(result);
        Ok(())
    }
}

/// The embedded pipeline's sinks are instances, never configurations.
struct NoSinkConfigs;

#[async_trait]
impl SinkFactory for NoSinkConfigs {
    async fn build(
        &self,
        config: &SinkConfig,
        _: SinkHealthReporter,
    ) -> Result<Box<dyn ResultSink>, SinkError> {
        Err(SinkError::Invalid(format!(
            "an embedded pipeline builds no {} sink from a configuration",
            config.kind().as_str()
        )))
    }
}

/// Stands in when no source was given: the spec has none, so it is never asked.
struct NoSource;

#[async_trait]
impl SourceFactory for NoSource {
    async fn open(
        &self,
        _: &SourceConfig,
    ) -> Result<Box<dyn crate::port::FrameSource>, crate::port::SourceError> {
        Err(crate::port::SourceError::Unsupported(
            "the embedded pipeline has no source".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::port::{FrameSource, SourceError};
    use crate::{BitMask, Detection, DetectorError, RgbImage};

    struct Frames(u32);

    #[async_trait]
    impl FrameSource for Frames {
        async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
            if self.0 == 0 {
                return Ok(None);
            }
            self.0 -= 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(Some(RgbImage::new(16, 16)))
        }
    }

    struct FiveFrames;

    #[async_trait]
    impl SourceFactory for FiveFrames {
        async fn open(&self, _: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
            Ok(Box::new(Frames(5)))
        }
    }

    struct Whole(LabelId);

    impl Detector for Whole {
        fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
            let mut mask = BitMask::new(image.width(), image.height());
            mask.set(1, 1, true);
            Ok(Detection::from_mask(self.0, 0.5, mask)
                .into_iter()
                .collect())
        }
    }

    #[derive(Default)]
    struct Record {
        detections: Vec<usize>,
        names: Vec<String>,
        closed: bool,
    }

    struct Recording(Arc<Mutex<Record>>);

    #[async_trait]
    impl ResultSink for Recording {
        async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError> {
            let mut record = self.0.lock().unwrap();
            record.detections.push(result.detections.len());
            record.names.extend(
                result
                    .detections
                    .iter()
                    .filter_map(|d| result.labels.get(d.label_id).map(|l| l.name.clone())),
            );
            Ok(())
        }

        async fn close(&mut self) {
            self.0.lock().unwrap().closed = true;
        }
    }

    #[tokio::test]
    async fn every_frame_meets_the_detector_and_stop_closes_the_sinks() {
        let label = LabelId::new();
        let record = Arc::new(Mutex::new(Record::default()));
        let pipeline = LivePipeline::builder()
            .label(label, LabelName::parse("dot").unwrap(), Color::rgb(1, 2, 3))
            .source(Arc::new(FiveFrames), SourceConfig::Synthetic)
            .detector(Box::new(Whole(label)))
            .sink(Box::new(Recording(record.clone())))
            .start()
            .await;
        let mut results = pipeline.results();
        let first = tokio::time::timeout(Duration::from_secs(5), results.next())
            .await
            .expect("a result within 5 s")
            .expect("results flow");
        assert_eq!(first.project_id, pipeline.project_id());
        // Wait until the source has ended and the last result was handed over.
        for _ in 0..200 {
            if pipeline.status().source.state == crate::ComponentState::Ended {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        pipeline.stop().await;
        let record = record.lock().unwrap();
        assert!(!record.detections.is_empty());
        assert!(
            record.detections.iter().all(|&n| n == 1),
            "no frame passed through undetected: {:?}",
            record.detections
        );
        assert!(
            record.names.iter().all(|n| n == "dot"),
            "{:?}",
            record.names
        );
        assert!(record.closed, "stop closes the sinks");
    }
}
