//! The entities of a project. A project owns everything else; deleting it deletes all of them.

mod frame;
mod label;
mod model;
mod project;
mod prompt;
mod sink;
mod source;

pub use frame::{Frame, ImageFormat};
pub use label::Label;
pub use model::{
    Algorithm, AlgorithmParams, ClassicalParams, EncoderModel, MatcherParams, ModelConfig,
    PerDinoParams, Precision, SamModel, SoftMatcherParams,
};
pub use project::Project;
pub use prompt::{
    Annotation, FrameSize, Point, Prompt, PromptContent, PromptKind, Rle, Shape, TextPhrase,
};
pub use sink::{MqttQos, MqttSink, Sink, SinkConfig, SinkKind};
pub use source::{Source, SourceConfig, SourceKind};

/// When a thing was created and last changed (UTC).
pub type Timestamp = chrono::DateTime<chrono::Utc>;
