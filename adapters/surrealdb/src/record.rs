//! The adapter's own record shapes, one per table, and their conversion to and from domain types.
//! They are what the schema in `schema.rs` describes, field for field; nothing outside this crate
//! sees them. Reading a record back re-validates it through the domain constructors, so a row the
//! domain would refuse is reported as a corrupt store instead of being passed on.

// The derive expands tagged enums to code that names `Value` unqualified, so it must be in scope.
use surrealdb::types::{Bytes, RecordId, RecordIdKey, SurrealValue, Value};
use uuid::Uuid;
use visprompt_domain::{
    AlgorithmParams, Annotation, ClassicalParams, Color, Device, DisplayName, DomainError,
    EncoderModel, Frame, FrameId, FrameSize, ImageFormat, Label, LabelId, LabelName, MatcherParams,
    ModelConfig, ModelConfigId, MqttQos, MqttSink, PerDinoParams, Phrase, Point, Precision,
    Project, ProjectId, ProjectName, Prompt, PromptContent, PromptId, Rle, SamModel, Shape, Sink,
    SinkConfig, SinkId, SoftMatcherParams, Source, SourceConfig, SourceId, StoredFrame, TextPhrase,
    Timestamp,
};

use crate::StoreError;
use crate::exec::storage;

/// Table names, in one place so that a typo is a compile error.
pub(crate) mod table {
    pub const PROJECT: &str = "project";
    pub const LABEL: &str = "label";
    pub const FRAME: &str = "frame";
    pub const FRAME_IMAGE: &str = "frame_image";
    pub const PROMPT: &str = "prompt";
    pub const SOURCE: &str = "source";
    pub const SINK: &str = "sink";
    pub const MODEL: &str = "model";
}

/// The record id of a domain id: `table:u'<uuid>'`.
pub(crate) fn rid(table: &'static str, id: Uuid) -> RecordId {
    RecordId::new(table, surrealdb::types::Uuid::from(id))
}

/// The domain id of a record id; anything but a UUID key is a record this adapter did not write.
pub(crate) fn key(entity: &'static str, id: &RecordId) -> Result<Uuid, DomainError> {
    match &id.key {
        RecordIdKey::Uuid(uuid) => Ok((*uuid).into()),
        other => Err(corrupt(
            entity,
            format!("record key {other:?} is not a UUID"),
        )),
    }
}

pub(crate) fn corrupt(entity: &'static str, message: impl Into<String>) -> DomainError {
    storage(StoreError::Corrupt {
        entity,
        message: message.into(),
    })
}

/// Re-labels a domain validation error of a stored value as corruption of the store.
fn stored<T>(entity: &'static str, value: Result<T, DomainError>) -> Result<T, DomainError> {
    value.map_err(|e| corrupt(entity, e.to_string()))
}

fn to_u32(entity: &'static str, field: &str, v: i64) -> Result<u32, DomainError> {
    u32::try_from(v).map_err(|_| corrupt(entity, format!("{field} {v} is out of range")))
}

// --- projects ---

/// A project as stored; `active_source`, `active_model` and `revision` keep their values or
/// defaults, so they are not part of what the adapter writes.
#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct ProjectDoc {
    pub id: RecordId,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A project as read, with `active` derived from the active-project slot.
#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct ProjectRow {
    #[surreal(flatten)]
    pub doc: ProjectDoc,
    pub active: bool,
}

impl ProjectDoc {
    pub(crate) fn from_domain(p: &Project) -> Self {
        Self {
            id: rid(table::PROJECT, p.id.as_uuid()),
            name: p.name.as_str().to_owned(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl ProjectRow {
    pub(crate) fn into_domain(self) -> Result<Project, DomainError> {
        const E: &str = "project";
        let d = self.doc;
        Ok(Project {
            id: ProjectId::from_uuid(key(E, &d.id)?),
            name: stored(E, ProjectName::parse(&d.name))?,
            active: self.active,
            created_at: d.created_at,
            updated_at: d.updated_at,
        })
    }
}

// --- labels ---

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct LabelDoc {
    pub id: RecordId,
    pub project: RecordId,
    pub name: String,
    pub color: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl LabelDoc {
    pub(crate) fn from_domain(l: &Label) -> Self {
        Self {
            id: rid(table::LABEL, l.id.as_uuid()),
            project: rid(table::PROJECT, l.project_id.as_uuid()),
            name: l.name.as_str().to_owned(),
            color: l.color.to_string(),
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }

    pub(crate) fn into_domain(self) -> Result<Label, DomainError> {
        const E: &str = "label";
        Ok(Label {
            id: LabelId::from_uuid(key(E, &self.id)?),
            project_id: ProjectId::from_uuid(key(E, &self.project)?),
            name: stored(E, LabelName::parse(&self.name))?,
            color: stored(E, Color::parse(&self.color))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// --- frames ---

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct FrameDoc {
    pub id: RecordId,
    pub project: RecordId,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub byte_len: i64,
    pub created_at: Timestamp,
}

/// A frame's encoded image, in its own table so that frame descriptions load without it.
#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct FrameImageDoc {
    pub id: RecordId,
    pub project: RecordId,
    pub bytes: Bytes,
}

impl FrameDoc {
    pub(crate) fn from_domain(f: &Frame) -> Self {
        Self {
            id: rid(table::FRAME, f.id.as_uuid()),
            project: rid(table::PROJECT, f.project_id.as_uuid()),
            format: match f.format {
                ImageFormat::Jpeg => "jpeg",
                ImageFormat::Png => "png",
            }
            .to_owned(),
            width: i64::from(f.size.width()),
            height: i64::from(f.size.height()),
            // Saturates only beyond 8 EiB, which no image reaches.
            byte_len: i64::try_from(f.byte_len).unwrap_or(i64::MAX),
            created_at: f.created_at,
        }
    }

    pub(crate) fn into_domain(self) -> Result<Frame, DomainError> {
        const E: &str = "frame";
        let format = match self.format.as_str() {
            "jpeg" => ImageFormat::Jpeg,
            "png" => ImageFormat::Png,
            other => return Err(corrupt(E, format!("unknown image format {other:?}"))),
        };
        let size = FrameSize::new(
            to_u32(E, "width", self.width)?,
            to_u32(E, "height", self.height)?,
        );
        Ok(Frame {
            id: FrameId::from_uuid(key(E, &self.id)?),
            project_id: ProjectId::from_uuid(key(E, &self.project)?),
            format,
            size: stored(E, size)?,
            byte_len: u64::try_from(self.byte_len)
                .map_err(|_| corrupt(E, format!("byte_len {} is negative", self.byte_len)))?,
            created_at: self.created_at,
        })
    }
}

impl FrameImageDoc {
    pub(crate) fn from_domain(f: &StoredFrame) -> Self {
        Self {
            id: rid(table::FRAME_IMAGE, f.frame.id.as_uuid()),
            project: rid(table::PROJECT, f.frame.project_id.as_uuid()),
            bytes: Bytes::from(f.bytes.clone()),
        }
    }
}

// --- prompts ---

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct PromptDoc {
    pub id: RecordId,
    pub project: RecordId,
    /// The frame of a visual prompt; a field of its own for the one-prompt-per-frame index.
    pub frame: Option<RecordId>,
    /// Every label the content names, once each; what label deletion and existence checks use.
    pub labels: Vec<RecordId>,
    pub content: ContentDoc,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
#[surreal(tag = "kind", rename_all = "snake_case")]
pub(crate) enum ContentDoc {
    Visual { annotations: Vec<AnnotationDoc> },
    Text { phrases: Vec<PhraseDoc> },
}

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct AnnotationDoc {
    pub label: RecordId,
    pub shape: ShapeDoc,
}

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct PhraseDoc {
    pub label: RecordId,
    pub text: String,
}

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
#[surreal(tag = "type", rename_all = "snake_case")]
pub(crate) enum ShapeDoc {
    Points { points: Vec<ClickDoc> },
    Rectangle { min: PointDoc, max: PointDoc },
    Polygon { points: Vec<PointDoc> },
    Mask { size: SizeDoc, counts: Vec<i64> },
}

#[derive(Clone, Copy, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct PointDoc {
    pub x: f64,
    pub y: f64,
}

/// A point the user clicked: on the object (`positive`) or beside it.
#[derive(Clone, Copy, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct ClickDoc {
    pub x: f64,
    pub y: f64,
    pub positive: bool,
}

#[derive(Clone, Copy, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct SizeDoc {
    pub width: i64,
    pub height: i64,
}

impl PointDoc {
    fn from_domain(p: Point) -> Self {
        Self { x: p.x, y: p.y }
    }

    fn into_domain(self) -> Point {
        Point {
            x: self.x,
            y: self.y,
        }
    }
}

impl ShapeDoc {
    fn from_domain(shape: &Shape) -> Self {
        match shape {
            Shape::Points(points) => ShapeDoc::Points {
                points: points
                    .iter()
                    .map(|(p, positive)| ClickDoc {
                        x: p.x,
                        y: p.y,
                        positive: *positive,
                    })
                    .collect(),
            },
            Shape::Rectangle { min, max } => ShapeDoc::Rectangle {
                min: PointDoc::from_domain(*min),
                max: PointDoc::from_domain(*max),
            },
            Shape::Polygon(points) => ShapeDoc::Polygon {
                points: points.iter().copied().map(PointDoc::from_domain).collect(),
            },
            Shape::Mask(rle) => ShapeDoc::Mask {
                size: SizeDoc {
                    width: i64::from(rle.size.width()),
                    height: i64::from(rle.size.height()),
                },
                counts: rle.counts.iter().map(|&c| i64::from(c)).collect(),
            },
        }
    }

    fn into_domain(self) -> Result<Shape, DomainError> {
        const E: &str = "prompt";
        Ok(match self {
            ShapeDoc::Points { points } => Shape::Points(
                points
                    .into_iter()
                    .map(|c| (Point { x: c.x, y: c.y }, c.positive))
                    .collect(),
            ),
            ShapeDoc::Rectangle { min, max } => Shape::Rectangle {
                min: min.into_domain(),
                max: max.into_domain(),
            },
            ShapeDoc::Polygon { points } => {
                Shape::Polygon(points.into_iter().map(PointDoc::into_domain).collect())
            }
            ShapeDoc::Mask { size, counts } => Shape::Mask(Rle {
                size: stored(
                    E,
                    FrameSize::new(
                        to_u32(E, "mask width", size.width)?,
                        to_u32(E, "mask height", size.height)?,
                    ),
                )?,
                counts: counts
                    .into_iter()
                    .map(|c| to_u32(E, "mask run", c))
                    .collect::<Result<_, _>>()?,
            }),
        })
    }
}

impl PromptDoc {
    pub(crate) fn from_domain(p: &Prompt) -> Self {
        let label = |id: LabelId| rid(table::LABEL, id.as_uuid());
        let content = match &p.content {
            PromptContent::Visual { annotations, .. } => ContentDoc::Visual {
                annotations: annotations
                    .iter()
                    .map(|a| AnnotationDoc {
                        label: label(a.label_id),
                        shape: ShapeDoc::from_domain(&a.shape),
                    })
                    .collect(),
            },
            PromptContent::Text { phrases } => ContentDoc::Text {
                phrases: phrases
                    .iter()
                    .map(|t| PhraseDoc {
                        label: label(t.label_id),
                        text: t.text.as_str().to_owned(),
                    })
                    .collect(),
            },
        };
        Self {
            id: rid(table::PROMPT, p.id.as_uuid()),
            project: rid(table::PROJECT, p.project_id.as_uuid()),
            frame: p.content.frame_id().map(|f| rid(table::FRAME, f.as_uuid())),
            labels: p.content.label_ids().into_iter().map(label).collect(),
            content,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    pub(crate) fn into_domain(self) -> Result<Prompt, DomainError> {
        const E: &str = "prompt";
        let label = |id: &RecordId| key(E, id).map(LabelId::from_uuid);
        let content = match self.content {
            ContentDoc::Visual { annotations } => {
                let frame = self
                    .frame
                    .as_ref()
                    .ok_or_else(|| corrupt(E, "a visual prompt without a frame"))?;
                PromptContent::Visual {
                    frame_id: FrameId::from_uuid(key(E, frame)?),
                    annotations: annotations
                        .into_iter()
                        .map(|a| {
                            Ok(Annotation {
                                label_id: label(&a.label)?,
                                shape: a.shape.into_domain()?,
                            })
                        })
                        .collect::<Result<_, DomainError>>()?,
                }
            }
            ContentDoc::Text { phrases } => PromptContent::Text {
                phrases: phrases
                    .into_iter()
                    .map(|t| {
                        Ok(TextPhrase {
                            label_id: label(&t.label)?,
                            text: stored(E, Phrase::parse(&t.text))?,
                        })
                    })
                    .collect::<Result<_, DomainError>>()?,
            },
        };
        Ok(Prompt {
            id: PromptId::from_uuid(key(E, &self.id)?),
            project_id: ProjectId::from_uuid(key(E, &self.project)?),
            content,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// --- sources ---

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct SourceDoc {
    pub id: RecordId,
    pub project: RecordId,
    pub name: String,
    pub config: SourceConfigDoc,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A source as read, with `active` derived from the project's active-source slot.
#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct SourceRow {
    #[surreal(flatten)]
    pub doc: SourceDoc,
    pub active: bool,
}

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
#[surreal(tag = "kind", rename_all = "snake_case")]
pub(crate) enum SourceConfigDoc {
    UsbCamera { device_id: i64 },
    VideoFile { video_path: String, looping: bool },
    ImagesFolder { images_folder_path: String },
    Rtsp { url: String },
    SampleDataset { dataset_id: Option<Uuid> },
    Synthetic,
}

impl SourceDoc {
    pub(crate) fn from_domain(s: &Source) -> Self {
        let config = match &s.config {
            SourceConfig::UsbCamera { device_id } => SourceConfigDoc::UsbCamera {
                device_id: i64::from(*device_id),
            },
            SourceConfig::VideoFile {
                video_path,
                looping,
            } => SourceConfigDoc::VideoFile {
                video_path: video_path.clone(),
                looping: *looping,
            },
            SourceConfig::ImagesFolder { images_folder_path } => SourceConfigDoc::ImagesFolder {
                images_folder_path: images_folder_path.clone(),
            },
            SourceConfig::Rtsp { url } => SourceConfigDoc::Rtsp { url: url.clone() },
            SourceConfig::SampleDataset { dataset_id } => SourceConfigDoc::SampleDataset {
                dataset_id: *dataset_id,
            },
            SourceConfig::Synthetic => SourceConfigDoc::Synthetic,
        };
        Self {
            id: rid(table::SOURCE, s.id.as_uuid()),
            project: rid(table::PROJECT, s.project_id.as_uuid()),
            name: s.name.as_str().to_owned(),
            config,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

impl SourceRow {
    pub(crate) fn into_domain(self) -> Result<Source, DomainError> {
        const E: &str = "source";
        let d = self.doc;
        let config = match d.config {
            SourceConfigDoc::UsbCamera { device_id } => SourceConfig::UsbCamera {
                device_id: to_u32(E, "device_id", device_id)?,
            },
            SourceConfigDoc::VideoFile {
                video_path,
                looping,
            } => SourceConfig::VideoFile {
                video_path,
                looping,
            },
            SourceConfigDoc::ImagesFolder { images_folder_path } => {
                SourceConfig::ImagesFolder { images_folder_path }
            }
            SourceConfigDoc::Rtsp { url } => SourceConfig::Rtsp { url },
            SourceConfigDoc::SampleDataset { dataset_id } => {
                SourceConfig::SampleDataset { dataset_id }
            }
            SourceConfigDoc::Synthetic => SourceConfig::Synthetic,
        };
        Ok(Source {
            id: SourceId::from_uuid(key(E, &d.id)?),
            project_id: ProjectId::from_uuid(key(E, &d.project)?),
            name: stored(E, DisplayName::parse(&d.name))?,
            active: self.active,
            config,
            created_at: d.created_at,
            updated_at: d.updated_at,
        })
    }
}

// --- sinks ---

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct SinkDoc {
    pub id: RecordId,
    pub project: RecordId,
    pub name: String,
    /// Sinks are independent consumers: any number may be active, so a flag is enough here.
    pub active: bool,
    pub config: SinkConfigDoc,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
#[surreal(tag = "kind", rename_all = "snake_case")]
pub(crate) enum SinkConfigDoc {
    Mqtt {
        broker_host: String,
        broker_port: i64,
        topic: String,
        username: Option<String>,
        password: Option<String>,
        /// The MQTT level, 0 to 2; schema version 2 added it (rows before it got 0).
        qos: i64,
        /// Schema version 2 added it (rows before it got `false`).
        tls: bool,
    },
    Webhook {
        url: String,
    },
    File {
        path: String,
    },
}

impl SinkDoc {
    pub(crate) fn from_domain(s: &Sink) -> Self {
        let config = match &s.config {
            SinkConfig::Mqtt(m) => SinkConfigDoc::Mqtt {
                broker_host: m.broker_host.clone(),
                broker_port: i64::from(m.broker_port),
                topic: m.topic.clone(),
                username: m.username.clone(),
                password: m.password.clone(),
                qos: i64::from(m.qos.level()),
                tls: m.tls,
            },
            SinkConfig::Webhook { url } => SinkConfigDoc::Webhook { url: url.clone() },
            SinkConfig::File { path } => SinkConfigDoc::File { path: path.clone() },
        };
        Self {
            id: rid(table::SINK, s.id.as_uuid()),
            project: rid(table::PROJECT, s.project_id.as_uuid()),
            name: s.name.as_str().to_owned(),
            active: s.active,
            config,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }

    pub(crate) fn into_domain(self) -> Result<Sink, DomainError> {
        const E: &str = "sink";
        let config = match self.config {
            SinkConfigDoc::Mqtt {
                broker_host,
                broker_port,
                topic,
                username,
                password,
                qos,
                tls,
            } => SinkConfig::Mqtt(MqttSink {
                broker_host,
                broker_port: u16::try_from(broker_port).map_err(|_| {
                    corrupt(E, format!("broker_port {broker_port} is out of range"))
                })?,
                topic,
                username,
                password,
                qos: stored(E, MqttQos::from_level(qos))?,
                tls,
            }),
            SinkConfigDoc::Webhook { url } => SinkConfig::Webhook { url },
            SinkConfigDoc::File { path } => SinkConfig::File { path },
        };
        Ok(Sink {
            id: SinkId::from_uuid(key(E, &self.id)?),
            project_id: ProjectId::from_uuid(key(E, &self.project)?),
            name: stored(E, DisplayName::parse(&self.name))?,
            active: self.active,
            config,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// --- model configurations ---

#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct ModelDoc {
    pub id: RecordId,
    pub project: RecordId,
    pub name: String,
    pub device: String,
    pub params: ParamsDoc,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A model configuration as read, with `active` derived from the project's active-model slot.
#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct ModelRow {
    #[surreal(flatten)]
    pub doc: ModelDoc,
    pub active: bool,
}

/// Algorithm parameters; model names and precisions are stored by their names (`as_str`), so
/// that a model added to the domain needs no schema migration.
#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
#[surreal(tag = "algorithm")]
pub(crate) enum ParamsDoc {
    #[surreal(rename = "matcher")]
    Matcher {
        sam_model: String,
        encoder_model: String,
        precision: String,
        num_foreground_points: i64,
        num_background_points: i64,
        confidence_threshold: f64,
        use_mask_refinement: bool,
        similarity_threshold: Option<f64>,
        num_grid_cells: i64,
    },
    #[surreal(rename = "perdino")]
    PerDino {
        sam_model: String,
        encoder_model: String,
        precision: String,
        num_foreground_points: i64,
        num_background_points: i64,
        num_grid_cells: i64,
        point_selection_threshold: f64,
        confidence_threshold: f64,
    },
    #[surreal(rename = "soft_matcher")]
    SoftMatcher {
        sam_model: String,
        encoder_model: String,
        precision: String,
        num_foreground_points: i64,
        num_background_points: i64,
        confidence_threshold: f64,
        use_sampling: bool,
        use_spatial_sampling: bool,
        approximate_matching: bool,
        softmatching_score_threshold: f64,
        softmatching_bidirectional: bool,
    },
    #[surreal(rename = "classical")]
    Classical {
        confidence_threshold: f64,
        max_detections: i64,
        /// Schema version 2 added it (rows before it got 0.2, the detector's former fixed value).
        min_area: f64,
    },
}

fn sam(entity: &'static str, raw: &str) -> Result<SamModel, DomainError> {
    SamModel::parse(raw).ok_or_else(|| corrupt(entity, format!("unknown SAM model {raw:?}")))
}

fn encoder(entity: &'static str, raw: &str) -> Result<EncoderModel, DomainError> {
    EncoderModel::parse(raw).ok_or_else(|| corrupt(entity, format!("unknown encoder {raw:?}")))
}

fn precision(entity: &'static str, raw: &str) -> Result<Precision, DomainError> {
    Precision::parse(raw).ok_or_else(|| corrupt(entity, format!("unknown precision {raw:?}")))
}

impl ParamsDoc {
    fn from_domain(params: &AlgorithmParams) -> Self {
        let n = i64::from;
        match params {
            AlgorithmParams::Matcher(p) => ParamsDoc::Matcher {
                sam_model: p.sam_model.as_str().to_owned(),
                encoder_model: p.encoder_model.as_str().to_owned(),
                precision: p.precision.as_str().to_owned(),
                num_foreground_points: n(p.num_foreground_points),
                num_background_points: n(p.num_background_points),
                confidence_threshold: p.confidence_threshold,
                use_mask_refinement: p.use_mask_refinement,
                similarity_threshold: p.similarity_threshold,
                num_grid_cells: n(p.num_grid_cells),
            },
            AlgorithmParams::PerDino(p) => ParamsDoc::PerDino {
                sam_model: p.sam_model.as_str().to_owned(),
                encoder_model: p.encoder_model.as_str().to_owned(),
                precision: p.precision.as_str().to_owned(),
                num_foreground_points: n(p.num_foreground_points),
                num_background_points: n(p.num_background_points),
                num_grid_cells: n(p.num_grid_cells),
                point_selection_threshold: p.point_selection_threshold,
                confidence_threshold: p.confidence_threshold,
            },
            AlgorithmParams::SoftMatcher(p) => ParamsDoc::SoftMatcher {
                sam_model: p.sam_model.as_str().to_owned(),
                encoder_model: p.encoder_model.as_str().to_owned(),
                precision: p.precision.as_str().to_owned(),
                num_foreground_points: n(p.num_foreground_points),
                num_background_points: n(p.num_background_points),
                confidence_threshold: p.confidence_threshold,
                use_sampling: p.use_sampling,
                use_spatial_sampling: p.use_spatial_sampling,
                approximate_matching: p.approximate_matching,
                softmatching_score_threshold: p.softmatching_score_threshold,
                softmatching_bidirectional: p.softmatching_bidirectional,
            },
            AlgorithmParams::Classical(p) => ParamsDoc::Classical {
                confidence_threshold: p.confidence_threshold,
                max_detections: n(p.max_detections),
                min_area: p.min_area,
            },
        }
    }

    fn into_domain(self) -> Result<AlgorithmParams, DomainError> {
        const E: &str = "model configuration";
        let n = |field: &str, v: i64| to_u32(E, field, v);
        Ok(match self {
            ParamsDoc::Matcher {
                sam_model,
                encoder_model,
                precision: p,
                num_foreground_points,
                num_background_points,
                confidence_threshold,
                use_mask_refinement,
                similarity_threshold,
                num_grid_cells,
            } => AlgorithmParams::Matcher(MatcherParams {
                sam_model: sam(E, &sam_model)?,
                encoder_model: encoder(E, &encoder_model)?,
                precision: precision(E, &p)?,
                num_foreground_points: n("num_foreground_points", num_foreground_points)?,
                num_background_points: n("num_background_points", num_background_points)?,
                confidence_threshold,
                use_mask_refinement,
                similarity_threshold,
                num_grid_cells: n("num_grid_cells", num_grid_cells)?,
            }),
            ParamsDoc::PerDino {
                sam_model,
                encoder_model,
                precision: p,
                num_foreground_points,
                num_background_points,
                num_grid_cells,
                point_selection_threshold,
                confidence_threshold,
            } => AlgorithmParams::PerDino(PerDinoParams {
                sam_model: sam(E, &sam_model)?,
                encoder_model: encoder(E, &encoder_model)?,
                precision: precision(E, &p)?,
                num_foreground_points: n("num_foreground_points", num_foreground_points)?,
                num_background_points: n("num_background_points", num_background_points)?,
                num_grid_cells: n("num_grid_cells", num_grid_cells)?,
                point_selection_threshold,
                confidence_threshold,
            }),
            ParamsDoc::SoftMatcher {
                sam_model,
                encoder_model,
                precision: p,
                num_foreground_points,
                num_background_points,
                confidence_threshold,
                use_sampling,
                use_spatial_sampling,
                approximate_matching,
                softmatching_score_threshold,
                softmatching_bidirectional,
            } => AlgorithmParams::SoftMatcher(SoftMatcherParams {
                sam_model: sam(E, &sam_model)?,
                encoder_model: encoder(E, &encoder_model)?,
                precision: precision(E, &p)?,
                num_foreground_points: n("num_foreground_points", num_foreground_points)?,
                num_background_points: n("num_background_points", num_background_points)?,
                confidence_threshold,
                use_sampling,
                use_spatial_sampling,
                approximate_matching,
                softmatching_score_threshold,
                softmatching_bidirectional,
            }),
            ParamsDoc::Classical {
                confidence_threshold,
                max_detections,
                min_area,
            } => AlgorithmParams::Classical(ClassicalParams {
                confidence_threshold,
                max_detections: n("max_detections", max_detections)?,
                min_area,
            }),
        })
    }
}

impl ModelDoc {
    pub(crate) fn from_domain(m: &ModelConfig) -> Self {
        Self {
            id: rid(table::MODEL, m.id.as_uuid()),
            project: rid(table::PROJECT, m.project_id.as_uuid()),
            name: m.name.as_str().to_owned(),
            device: m.device.to_string(),
            params: ParamsDoc::from_domain(&m.params),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl ModelRow {
    pub(crate) fn into_domain(self) -> Result<ModelConfig, DomainError> {
        const E: &str = "model configuration";
        let d = self.doc;
        Ok(ModelConfig {
            id: ModelConfigId::from_uuid(key(E, &d.id)?),
            project_id: ProjectId::from_uuid(key(E, &d.project)?),
            name: stored(E, DisplayName::parse(&d.name))?,
            active: self.active,
            device: stored(E, Device::parse(&d.device))?,
            params: d.params.into_domain()?,
            created_at: d.created_at,
            updated_at: d.updated_at,
        })
    }
}

/// One page of rows and the size of the whole list, as every list script returns it.
#[derive(Clone, Debug, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub(crate) struct PageDoc<T: SurrealValue> {
    pub items: Vec<T>,
    pub total: i64,
}

/// The `START` / `LIMIT` of a page; `Page::all()` asks for `u32::MAX` items, which SurrealQL's
/// 64-bit integers take as is.
pub(crate) fn window(page: visprompt_domain::Page) -> (i64, i64) {
    (
        i64::try_from(page.offset()).unwrap_or(i64::MAX),
        i64::from(page.limit()),
    )
}
