//! The archive's manifest: one serde type per entity, versioned by [`FORMAT_VERSION`]. These
//! types are the archive format; changing a field means a new version and a reader for the old.
//!
//! # Versions
//!
//! - 1: the first format.
//! - 2: adds the classical detector's `min_area` and the MQTT sink's `qos` and `tls`. Version 2 is
//!   version 1 plus fields, so one reader serves both: a field missing from a version 1 archive
//!   takes the value that version 1 implied (`min_area` 0.2, QoS 0, no TLS), through serde
//!   defaults. The number still changes so that a build that only knows version 1 refuses a
//!   version 2 archive instead of importing it without the new fields (a TLS sink silently turned
//!   into a plain one).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use visprompt_domain::*;

use crate::ArchiveError;

/// The version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_NAME: &str = "visprompt-project";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    format: String,
    pub(crate) version: u32,
    project: ProjectEntry,
    #[serde(default)]
    labels: Vec<LabelEntry>,
    #[serde(default)]
    frames: Vec<FrameEntry>,
    #[serde(default)]
    prompts: Vec<PromptEntry>,
    #[serde(default)]
    sources: Vec<SourceEntry>,
    #[serde(default)]
    sinks: Vec<SinkEntry>,
    #[serde(default)]
    models: Vec<ModelEntry>,
}

#[derive(Serialize, Deserialize)]
struct ProjectEntry {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct LabelEntry {
    id: Uuid,
    name: String,
    color: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct FrameEntry {
    id: Uuid,
    format: String,
    width: u32,
    height: u32,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct PromptEntry {
    id: Uuid,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(flatten)]
    content: ContentEntry,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentEntry {
    Visual {
        frame_id: Uuid,
        annotations: Vec<AnnotationEntry>,
    },
    Text {
        phrases: Vec<PhraseEntry>,
    },
}

#[derive(Serialize, Deserialize)]
struct AnnotationEntry {
    label_id: Uuid,
    shape: ShapeEntry,
}

#[derive(Serialize, Deserialize)]
struct PointEntry {
    x: f64,
    y: f64,
}

#[derive(Serialize, Deserialize)]
struct PromptPointEntry {
    x: f64,
    y: f64,
    positive: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ShapeEntry {
    Points {
        points: Vec<PromptPointEntry>,
    },
    Rectangle {
        min: PointEntry,
        max: PointEntry,
    },
    Polygon {
        points: Vec<PointEntry>,
    },
    Mask {
        width: u32,
        height: u32,
        counts: Vec<u32>,
    },
}

#[derive(Serialize, Deserialize)]
struct PhraseEntry {
    label_id: Uuid,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct SourceEntry {
    id: Uuid,
    name: String,
    active: bool,
    config: SourceConfigEntry,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "source_type", rename_all = "snake_case")]
enum SourceConfigEntry {
    UsbCamera {
        device_id: u32,
    },
    VideoFile {
        video_path: String,
        /// Format 2 archives written before the field existed looped, as every video did.
        #[serde(rename = "loop", default = "looping_by_default")]
        looping: bool,
    },
    ImagesFolder {
        images_folder_path: String,
    },
    Rtsp {
        url: String,
    },
    SampleDataset {
        dataset_id: Option<Uuid>,
    },
    Synthetic {},
}

#[derive(Serialize, Deserialize)]
struct SinkEntry {
    id: Uuid,
    name: String,
    active: bool,
    config: SinkConfigEntry,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// MQTT passwords are not exported: an archive is meant to be shared, a secret is not.
#[derive(Serialize, Deserialize)]
#[serde(tag = "sink_type", rename_all = "snake_case")]
enum SinkConfigEntry {
    Mqtt {
        broker_host: String,
        broker_port: u16,
        topic: String,
        username: Option<String>,
        /// Since version 2; the level as MQTT numbers it.
        #[serde(default)]
        qos: u8,
        /// Since version 2.
        #[serde(default)]
        tls: bool,
    },
    Webhook {
        url: String,
    },
    File {
        path: String,
    },
}

#[derive(Serialize, Deserialize)]
struct ModelEntry {
    id: Uuid,
    name: String,
    active: bool,
    device: String,
    config: ParamsEntry,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct NeuralEntry {
    sam_model: String,
    encoder_model: String,
    precision: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
enum ParamsEntry {
    Matcher {
        #[serde(flatten)]
        neural: NeuralEntry,
        num_foreground_points: u32,
        num_background_points: u32,
        confidence_threshold: f64,
        use_mask_refinement: bool,
        similarity_threshold: Option<f64>,
        num_grid_cells: u32,
    },
    #[serde(rename = "perdino")]
    PerDino {
        #[serde(flatten)]
        neural: NeuralEntry,
        num_foreground_points: u32,
        num_background_points: u32,
        num_grid_cells: u32,
        point_selection_threshold: f64,
        confidence_threshold: f64,
    },
    SoftMatcher {
        #[serde(flatten)]
        neural: NeuralEntry,
        num_foreground_points: u32,
        num_background_points: u32,
        confidence_threshold: f64,
        use_sampling: bool,
        use_spatial_sampling: bool,
        approximate_matching: bool,
        softmatching_score_threshold: f64,
        softmatching_bidirectional: bool,
    },
    Classical {
        confidence_threshold: f64,
        max_detections: u32,
        /// Since version 2.
        #[serde(default = "version_1_min_area")]
        min_area: f64,
    },
}

/// The share of the smallest reference below which version 1 dropped instances; it was fixed
/// then, so it is what a version 1 archive means. Deliberately not read from the domain's
/// default, which may change without changing what old archives meant.
fn looping_by_default() -> bool {
    true
}

fn version_1_min_area() -> f64 {
    0.2
}

pub(crate) fn frame_file(frame: &Frame) -> String {
    format!("frames/{}.{}", frame.id, frame.format.extension())
}

fn neural(sam: SamModel, encoder: EncoderModel, precision: Precision) -> NeuralEntry {
    NeuralEntry {
        sam_model: sam.as_str().into(),
        encoder_model: encoder.as_str().into(),
        precision: precision.as_str().into(),
    }
}

impl Manifest {
    pub(crate) fn from_bundle(b: &ProjectBundle) -> Self {
        let p = &b.project;
        Manifest {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            project: ProjectEntry {
                id: p.id.as_uuid(),
                name: p.name.to_string(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            },
            labels: b
                .labels
                .iter()
                .map(|l| LabelEntry {
                    id: l.id.as_uuid(),
                    name: l.name.to_string(),
                    color: l.color.to_string(),
                    created_at: l.created_at,
                    updated_at: l.updated_at,
                })
                .collect(),
            frames: b
                .frames
                .iter()
                .map(|StoredFrame { frame: f, .. }| FrameEntry {
                    id: f.id.as_uuid(),
                    format: f.format.extension().into(),
                    width: f.size.width(),
                    height: f.size.height(),
                    created_at: f.created_at,
                })
                .collect(),
            prompts: b.prompts.iter().map(prompt_entry).collect(),
            sources: b.sources.iter().map(source_entry).collect(),
            sinks: b.sinks.iter().map(sink_entry).collect(),
            models: b.models.iter().map(model_entry).collect(),
        }
    }

    /// Parses every entry into domain values; `read` fetches a frame file by name.
    pub(crate) fn into_bundle(
        self,
        mut read: impl FnMut(&str) -> Result<Vec<u8>, ArchiveError>,
    ) -> Result<ProjectBundle, ArchiveError> {
        if self.format != FORMAT_NAME {
            return Err(ArchiveError::Manifest(format!(
                "format is {:?}, expected {FORMAT_NAME:?}",
                self.format
            )));
        }
        let pid = ProjectId::from_uuid(self.project.id);
        let project = Project {
            id: pid,
            name: ProjectName::parse(&self.project.name).map_err(|e| e.in_field("project"))?,
            active: false,
            created_at: self.project.created_at,
            updated_at: self.project.updated_at,
        };
        let mut labels = Vec::with_capacity(self.labels.len());
        for (i, l) in self.labels.into_iter().enumerate() {
            let at = |e: DomainError| e.in_field(&format!("labels[{i}]"));
            labels.push(Label {
                id: LabelId::from_uuid(l.id),
                project_id: pid,
                name: LabelName::parse(&l.name).map_err(at)?,
                color: Color::parse(&l.color).map_err(at)?,
                created_at: l.created_at,
                updated_at: l.updated_at,
            });
        }
        let mut frames = Vec::with_capacity(self.frames.len());
        for (i, f) in self.frames.into_iter().enumerate() {
            let at = |e: DomainError| e.in_field(&format!("frames[{i}]"));
            let format = match f.format.as_str() {
                "jpg" => ImageFormat::Jpeg,
                "png" => ImageFormat::Png,
                other => {
                    return Err(DomainError::invalid(
                        format!("frames[{i}].format"),
                        format!("must be jpg or png, got {other:?}"),
                    )
                    .into());
                }
            };
            let frame = Frame {
                id: FrameId::from_uuid(f.id),
                project_id: pid,
                format,
                size: FrameSize::new(f.width, f.height).map_err(at)?,
                byte_len: 0,
                created_at: f.created_at,
            };
            let bytes = read(&frame_file(&frame))?;
            frames.push(StoredFrame {
                frame: Frame {
                    byte_len: bytes.len() as u64,
                    ..frame
                },
                bytes,
            });
        }
        let prompts = self
            .prompts
            .into_iter()
            .enumerate()
            .map(|(i, p)| prompt(pid, p).map_err(|e| e.in_field(&format!("prompts[{i}]"))))
            .collect::<Result<_, _>>()?;
        let sources = self
            .sources
            .into_iter()
            .enumerate()
            .map(|(i, s)| source(pid, s).map_err(|e| e.in_field(&format!("sources[{i}]"))))
            .collect::<Result<_, _>>()?;
        let sinks = self
            .sinks
            .into_iter()
            .enumerate()
            .map(|(i, s)| sink(pid, s).map_err(|e| e.in_field(&format!("sinks[{i}]"))))
            .collect::<Result<_, _>>()?;
        let models = self
            .models
            .into_iter()
            .enumerate()
            .map(|(i, m)| model(pid, m).map_err(|e| e.in_field(&format!("models[{i}]"))))
            .collect::<Result<_, _>>()?;
        Ok(ProjectBundle {
            project,
            labels,
            frames,
            prompts,
            sources,
            sinks,
            models,
        })
    }
}

fn prompt_entry(p: &Prompt) -> PromptEntry {
    let content = match &p.content {
        PromptContent::Visual {
            frame_id,
            annotations,
        } => ContentEntry::Visual {
            frame_id: frame_id.as_uuid(),
            annotations: annotations
                .iter()
                .map(|a| AnnotationEntry {
                    label_id: a.label_id.as_uuid(),
                    shape: shape_entry(&a.shape),
                })
                .collect(),
        },
        PromptContent::Text { phrases } => ContentEntry::Text {
            phrases: phrases
                .iter()
                .map(|t| PhraseEntry {
                    label_id: t.label_id.as_uuid(),
                    text: t.text.to_string(),
                })
                .collect(),
        },
    };
    PromptEntry {
        id: p.id.as_uuid(),
        created_at: p.created_at,
        updated_at: p.updated_at,
        content,
    }
}

fn shape_entry(shape: &Shape) -> ShapeEntry {
    let pt = |p: &Point| PointEntry { x: p.x, y: p.y };
    match shape {
        Shape::Points(points) => ShapeEntry::Points {
            points: points
                .iter()
                .map(|(p, positive)| PromptPointEntry {
                    x: p.x,
                    y: p.y,
                    positive: *positive,
                })
                .collect(),
        },
        Shape::Rectangle { min, max } => ShapeEntry::Rectangle {
            min: pt(min),
            max: pt(max),
        },
        Shape::Polygon(points) => ShapeEntry::Polygon {
            points: points.iter().map(pt).collect(),
        },
        Shape::Mask(rle) => ShapeEntry::Mask {
            width: rle.size.width(),
            height: rle.size.height(),
            counts: rle.counts.clone(),
        },
    }
}

fn prompt(pid: ProjectId, p: PromptEntry) -> Result<Prompt, DomainError> {
    let content = match p.content {
        ContentEntry::Visual {
            frame_id,
            annotations,
        } => PromptContent::Visual {
            frame_id: FrameId::from_uuid(frame_id),
            annotations: annotations
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    Ok(Annotation {
                        label_id: LabelId::from_uuid(a.label_id),
                        shape: shape(a.shape)
                            .map_err(|e| e.in_field(&format!("annotations[{i}]")))?,
                    })
                })
                .collect::<Result<_, DomainError>>()?,
        },
        ContentEntry::Text { phrases } => PromptContent::Text {
            phrases: phrases
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    Ok(TextPhrase {
                        label_id: LabelId::from_uuid(t.label_id),
                        text: Phrase::parse(&t.text)
                            .map_err(|e| e.in_field(&format!("phrases[{i}]")))?,
                    })
                })
                .collect::<Result<_, DomainError>>()?,
        },
    };
    Ok(Prompt {
        id: PromptId::from_uuid(p.id),
        project_id: pid,
        content,
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
}

fn shape(s: ShapeEntry) -> Result<Shape, DomainError> {
    let pt = |p: PointEntry| Point { x: p.x, y: p.y };
    Ok(match s {
        ShapeEntry::Points { points } => Shape::Points(
            points
                .into_iter()
                .map(|p| (Point { x: p.x, y: p.y }, p.positive))
                .collect(),
        ),
        ShapeEntry::Rectangle { min, max } => Shape::Rectangle {
            min: pt(min),
            max: pt(max),
        },
        ShapeEntry::Polygon { points } => Shape::Polygon(points.into_iter().map(pt).collect()),
        ShapeEntry::Mask {
            width,
            height,
            counts,
        } => Shape::Mask(Rle {
            size: FrameSize::new(width, height).map_err(|e| e.in_field("shape"))?,
            counts,
        }),
    })
}

fn source_entry(s: &Source) -> SourceEntry {
    let config = match &s.config {
        SourceConfig::UsbCamera { device_id } => SourceConfigEntry::UsbCamera {
            device_id: *device_id,
        },
        SourceConfig::VideoFile {
            video_path,
            looping,
        } => SourceConfigEntry::VideoFile {
            video_path: video_path.clone(),
            looping: *looping,
        },
        SourceConfig::ImagesFolder { images_folder_path } => SourceConfigEntry::ImagesFolder {
            images_folder_path: images_folder_path.clone(),
        },
        SourceConfig::Rtsp { url } => SourceConfigEntry::Rtsp { url: url.clone() },
        SourceConfig::SampleDataset { dataset_id } => SourceConfigEntry::SampleDataset {
            dataset_id: *dataset_id,
        },
        SourceConfig::Synthetic => SourceConfigEntry::Synthetic {},
    };
    SourceEntry {
        id: s.id.as_uuid(),
        name: s.name.to_string(),
        active: s.active,
        config,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn source(pid: ProjectId, s: SourceEntry) -> Result<Source, DomainError> {
    let config = match s.config {
        SourceConfigEntry::UsbCamera { device_id } => SourceConfig::UsbCamera { device_id },
        SourceConfigEntry::VideoFile {
            video_path,
            looping,
        } => SourceConfig::VideoFile {
            video_path,
            looping,
        },
        SourceConfigEntry::ImagesFolder { images_folder_path } => {
            SourceConfig::ImagesFolder { images_folder_path }
        }
        SourceConfigEntry::Rtsp { url } => SourceConfig::Rtsp { url },
        SourceConfigEntry::SampleDataset { dataset_id } => {
            SourceConfig::SampleDataset { dataset_id }
        }
        SourceConfigEntry::Synthetic {} => SourceConfig::Synthetic,
    };
    Ok(Source {
        id: SourceId::from_uuid(s.id),
        project_id: pid,
        name: DisplayName::parse(&s.name)?,
        active: s.active,
        config,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

fn sink_entry(s: &Sink) -> SinkEntry {
    let config = match &s.config {
        SinkConfig::Mqtt(m) => SinkConfigEntry::Mqtt {
            broker_host: m.broker_host.clone(),
            broker_port: m.broker_port,
            topic: m.topic.clone(),
            username: m.username.clone(),
            qos: m.qos.level(),
            tls: m.tls,
        },
        SinkConfig::Webhook { url } => SinkConfigEntry::Webhook { url: url.clone() },
        SinkConfig::File { path } => SinkConfigEntry::File { path: path.clone() },
    };
    SinkEntry {
        id: s.id.as_uuid(),
        name: s.name.to_string(),
        active: s.active,
        config,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn sink(pid: ProjectId, s: SinkEntry) -> Result<Sink, DomainError> {
    let config = match s.config {
        SinkConfigEntry::Mqtt {
            broker_host,
            broker_port,
            topic,
            username,
            qos,
            tls,
        } => SinkConfig::Mqtt(MqttSink {
            broker_host,
            broker_port,
            topic,
            username,
            password: None,
            qos: MqttQos::from_level(i64::from(qos)).map_err(|e| e.in_field("config"))?,
            tls,
        }),
        SinkConfigEntry::Webhook { url } => SinkConfig::Webhook { url },
        SinkConfigEntry::File { path } => SinkConfig::File { path },
    };
    Ok(Sink {
        id: SinkId::from_uuid(s.id),
        project_id: pid,
        name: DisplayName::parse(&s.name)?,
        active: s.active,
        config,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

fn model_entry(m: &ModelConfig) -> ModelEntry {
    let config = match &m.params {
        AlgorithmParams::Matcher(p) => ParamsEntry::Matcher {
            neural: neural(p.sam_model, p.encoder_model, p.precision),
            num_foreground_points: p.num_foreground_points,
            num_background_points: p.num_background_points,
            confidence_threshold: p.confidence_threshold,
            use_mask_refinement: p.use_mask_refinement,
            similarity_threshold: p.similarity_threshold,
            num_grid_cells: p.num_grid_cells,
        },
        AlgorithmParams::PerDino(p) => ParamsEntry::PerDino {
            neural: neural(p.sam_model, p.encoder_model, p.precision),
            num_foreground_points: p.num_foreground_points,
            num_background_points: p.num_background_points,
            num_grid_cells: p.num_grid_cells,
            point_selection_threshold: p.point_selection_threshold,
            confidence_threshold: p.confidence_threshold,
        },
        AlgorithmParams::SoftMatcher(p) => ParamsEntry::SoftMatcher {
            neural: neural(p.sam_model, p.encoder_model, p.precision),
            num_foreground_points: p.num_foreground_points,
            num_background_points: p.num_background_points,
            confidence_threshold: p.confidence_threshold,
            use_sampling: p.use_sampling,
            use_spatial_sampling: p.use_spatial_sampling,
            approximate_matching: p.approximate_matching,
            softmatching_score_threshold: p.softmatching_score_threshold,
            softmatching_bidirectional: p.softmatching_bidirectional,
        },
        AlgorithmParams::Classical(p) => ParamsEntry::Classical {
            confidence_threshold: p.confidence_threshold,
            max_detections: p.max_detections,
            min_area: p.min_area,
        },
    };
    ModelEntry {
        id: m.id.as_uuid(),
        name: m.name.to_string(),
        active: m.active,
        device: m.device.to_string(),
        config,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn parse_neural(n: &NeuralEntry) -> Result<(SamModel, EncoderModel, Precision), DomainError> {
    let sam = SamModel::parse(&n.sam_model)
        .ok_or_else(|| DomainError::invalid("config.sam_model", "unknown segmenter"))?;
    let encoder = EncoderModel::parse(&n.encoder_model)
        .ok_or_else(|| DomainError::invalid("config.encoder_model", "unknown encoder"))?;
    let precision = Precision::parse(&n.precision)
        .ok_or_else(|| DomainError::invalid("config.precision", "must be fp32, fp16 or bf16"))?;
    Ok((sam, encoder, precision))
}

fn model(pid: ProjectId, m: ModelEntry) -> Result<ModelConfig, DomainError> {
    let params = match m.config {
        ParamsEntry::Matcher {
            neural,
            num_foreground_points,
            num_background_points,
            confidence_threshold,
            use_mask_refinement,
            similarity_threshold,
            num_grid_cells,
        } => {
            let (sam_model, encoder_model, precision) = parse_neural(&neural)?;
            AlgorithmParams::Matcher(MatcherParams {
                sam_model,
                encoder_model,
                precision,
                num_foreground_points,
                num_background_points,
                confidence_threshold,
                use_mask_refinement,
                similarity_threshold,
                num_grid_cells,
            })
        }
        ParamsEntry::PerDino {
            neural,
            num_foreground_points,
            num_background_points,
            num_grid_cells,
            point_selection_threshold,
            confidence_threshold,
        } => {
            let (sam_model, encoder_model, precision) = parse_neural(&neural)?;
            AlgorithmParams::PerDino(PerDinoParams {
                sam_model,
                encoder_model,
                precision,
                num_foreground_points,
                num_background_points,
                num_grid_cells,
                point_selection_threshold,
                confidence_threshold,
            })
        }
        ParamsEntry::SoftMatcher {
            neural,
            num_foreground_points,
            num_background_points,
            confidence_threshold,
            use_sampling,
            use_spatial_sampling,
            approximate_matching,
            softmatching_score_threshold,
            softmatching_bidirectional,
        } => {
            let (sam_model, encoder_model, precision) = parse_neural(&neural)?;
            AlgorithmParams::SoftMatcher(SoftMatcherParams {
                sam_model,
                encoder_model,
                precision,
                num_foreground_points,
                num_background_points,
                confidence_threshold,
                use_sampling,
                use_spatial_sampling,
                approximate_matching,
                softmatching_score_threshold,
                softmatching_bidirectional,
            })
        }
        ParamsEntry::Classical {
            confidence_threshold,
            max_detections,
            min_area,
        } => AlgorithmParams::Classical(ClassicalParams {
            confidence_threshold,
            max_detections,
            min_area,
        }),
    };
    Ok(ModelConfig {
        id: ModelConfigId::from_uuid(m.id),
        project_id: pid,
        name: DisplayName::parse(&m.name)?,
        active: m.active,
        device: Device::parse(&m.device)?,
        params,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}
