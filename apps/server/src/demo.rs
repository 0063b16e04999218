//! The demo project a first start creates, so that `just run` shows live detections at once with
//! nothing to download or plug in: the synthetic scene as source, one label, and a prompt marking
//! the striped disc on the scene's first frame (its exact ground-truth mask).

use anyhow::Context;
use visprompt_domain::{
    Annotation, Color, DomainError, FrameSize, ImageFormat, LabelName, NewSource, Page,
    ProjectName, PromptContent, Service, Shape, SourceConfig,
};
use visprompt_media::SyntheticScene;
use visprompt_media::synthetic::ObjectKind;
use visprompt_runtime::FrameCodec;

pub const DEMO_PROJECT: &str = "Demo";

/// Creates the demo project when the store holds no project at all. Returns whether it did.
/// Another server seeding the same remote database at once makes the name taken: not an error.
pub async fn seed(service: &Service, codec: &dyn FrameCodec) -> anyhow::Result<bool> {
    if service.list_projects(Page::new(0, 1)?).await?.total > 0 {
        return Ok(false);
    }
    let project = match service
        .create_project(ProjectName::parse(DEMO_PROJECT)?, true)
        .await
    {
        Ok(project) => project,
        Err(DomainError::Conflict { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let label = service
        .create_label(
            project.id,
            LabelName::parse("striped disc")?,
            Some(Color::rgb(0xE6, 0x39, 0x46)),
        )
        .await?;
    let scene = SyntheticScene::default();
    let image = scene.render(0);
    let jpeg = codec
        .encode_jpeg(&image, 95)
        .context("encoding the demo reference frame")?;
    let size = FrameSize::new(image.width(), image.height())?;
    let frame = service
        .add_frame(project.id, ImageFormat::Jpeg, size, jpeg)
        .await?;
    let (_, disc) = scene
        .ground_truth(0)
        .into_iter()
        .find(|(kind, _)| *kind == ObjectKind::StripedDisc)
        .context("the synthetic scene has a striped disc")?;
    service
        .create_prompt(
            project.id,
            PromptContent::Visual {
                frame_id: frame.id,
                annotations: vec![Annotation {
                    label_id: label.id,
                    shape: Shape::Mask(disc.to_rle()),
                }],
            },
        )
        .await?;
    service
        .create_source(
            project.id,
            NewSource {
                name: None,
                active: true,
                config: SourceConfig::Synthetic,
            },
        )
        .await?;
    tracing::info!(message = "Created the demo project.", project_id = %project.id);
    Ok(true)
}
