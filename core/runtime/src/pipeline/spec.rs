//! The desired pipeline, read from the store: which project, source, model and prompts, labels and
//! sinks. It is a plain value compared with `==`; the manager diffs the running spec against a
//! freshly loaded one to decide which stages to keep, restart, add or remove.

use std::collections::BTreeMap;
use std::sync::Arc;

use visprompt_domain::{
    DomainError, Label, ModelConfig, Page, ProjectId, Prompt, PromptContent, PromptId, Repository,
    SinkConfig, SinkId, SourceConfig, SourceId, Timestamp,
};

use crate::image::RgbImage;
use crate::mask::rasterize;
use crate::port::{FrameCodec, Reference, ReferenceAnnotation};

#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    pub id: SourceId,
    pub config: SourceConfig,
}

/// What a detector is fitted from.
#[derive(Clone, Debug)]
pub struct DetectorSpec {
    pub model: ModelConfig,
    /// Visual prompts with at least one annotation, in creation order.
    pub prompts: Vec<Prompt>,
}

impl DetectorSpec {
    fn revisions(&self) -> impl Iterator<Item = (PromptId, Timestamp)> + '_ {
        self.prompts.iter().map(|p| (p.id, p.updated_at))
    }
}

/// A change of the model, its parameters or device, or of any prompt refits; renaming the model
/// configuration does not.
impl PartialEq for DetectorSpec {
    fn eq(&self, other: &Self) -> bool {
        let key = |s: &Self| (s.model.id, s.model.params.clone(), s.model.device);
        key(self) == key(other) && self.revisions().eq(other.revisions())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSpec {
    pub project_id: ProjectId,
    pub source: Option<SourceSpec>,
    /// `None`: no active model or no usable prompt, so frames pass through.
    pub detector: Option<DetectorSpec>,
    pub labels: Vec<Label>,
    /// The project's active sinks.
    pub sinks: BTreeMap<SinkId, SinkConfig>,
}

impl PipelineSpec {
    /// The spec of the active project; `None` when no project is active.
    pub async fn load(repo: &dyn Repository) -> Result<Option<Self>, DomainError> {
        let Some(project) = repo.active_project().await? else {
            return Ok(None);
        };
        let id = project.id;
        let source = repo
            .list_sources(id, Page::all())
            .await?
            .items
            .into_iter()
            .find(|s| s.active)
            .map(|s| SourceSpec {
                id: s.id,
                config: s.config,
            });
        let prompts: Vec<Prompt> = repo
            .list_prompts(id, Page::all())
            .await?
            .items
            .into_iter()
            .filter(|p| {
                matches!(&p.content, PromptContent::Visual { annotations, .. } if !annotations.is_empty())
            })
            .collect();
        let detector = match repo.active_model(id).await? {
            Some(model) if !prompts.is_empty() => Some(DetectorSpec { model, prompts }),
            _ => None,
        };
        let labels = repo.list_labels(id, Page::all()).await?.items;
        let sinks = repo
            .list_sinks(id, Page::all())
            .await?
            .items
            .into_iter()
            .filter(|s| s.active)
            .map(|s| (s.id, s.config))
            .collect();
        Ok(Some(Self {
            project_id: id,
            source,
            detector,
            labels,
            sinks,
        }))
    }
}

/// Radius of the disc a positive click marks on a reference frame, as a fraction of the frame's
/// shorter side: big enough to sample an object's colour and texture, small enough to stay on it.
const POINT_RADIUS_FRACTION: f64 = 0.02;

/// Loads the reference frames and annotations of `spec`'s prompts and decodes them. A prompt whose
/// frame vanished meanwhile is skipped (the next reconcile sees the change anyway).
pub async fn load_references(
    repo: &dyn Repository,
    codec: &dyn FrameCodec,
    project_id: ProjectId,
    spec: &DetectorSpec,
) -> Result<Vec<Reference>, String> {
    let mut references = Vec::new();
    for prompt in &spec.prompts {
        let PromptContent::Visual {
            frame_id,
            annotations,
        } = &prompt.content
        else {
            continue;
        };
        let frame_id = *frame_id;
        let Some(frame) = repo
            .get_frame(project_id, frame_id)
            .await
            .map_err(|e| format!("reading frame {frame_id}: {e}"))?
        else {
            continue;
        };
        let Some(bytes) = repo
            .get_frame_bytes(project_id, frame_id)
            .await
            .map_err(|e| format!("reading frame {frame_id}: {e}"))?
        else {
            continue;
        };
        let image: RgbImage = codec
            .decode(&bytes)
            .map_err(|e| format!("decoding reference frame {frame_id}: {e}"))?;
        let size = frame.size;
        if image.width() != size.width() || image.height() != size.height() {
            return Err(format!(
                "reference frame {frame_id} decodes to {}x{} but is stored as {}x{}",
                image.width(),
                image.height(),
                size.width(),
                size.height()
            ));
        }
        let radius = f64::from(size.width().min(size.height())) * POINT_RADIUS_FRACTION;
        let annotations = annotations
            .iter()
            .map(|a| ReferenceAnnotation {
                mask: rasterize(&a.shape, size, radius.max(2.0)),
                label_id: a.label_id,
                shape: a.shape.clone(),
            })
            .collect();
        references.push(Reference {
            image: Arc::new(image),
            annotations,
        });
    }
    Ok(references)
}
