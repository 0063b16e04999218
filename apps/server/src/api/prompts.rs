//! `/api/v1/projects/{project_id}/prompts`: visual prompts (a frame with annotated shapes) and
//! text prompts (a phrase per label). Shapes are checked against the frame they annotate.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use uuid::Uuid;
use visprompt_domain::{
    Annotation, FrameId, FrameSize, LabelId, Phrase, Point, ProjectId, Prompt, PromptContent,
    PromptId, Rle, Service, Shape, TextPhrase,
};

use crate::api::common::{Pagination, location, page};
use crate::api::error::ApiError;
use crate::api::text::Text;
use crate::api::{ApiTags, Deleted};

/// A pixel position; (0, 0) is the top-left corner of the frame.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Point")]
pub struct PointBody {
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub x: f64,
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub y: f64,
}

/// A click on the object (`positive`) or on what is not the object.
#[derive(Debug, Clone, Object)]
#[oai(rename = "PromptPoint")]
pub struct PromptPointBody {
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub x: f64,
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub y: f64,
    #[oai(default = "yes")]
    pub positive: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Object)]
pub struct PointsShape {
    #[oai(validator(min_items = 1, max_items = 10000))]
    pub points: Vec<PromptPointBody>,
}

/// A box from its top-left (`min`) to its bottom-right (`max`) corner.
#[derive(Debug, Clone, Object)]
pub struct RectangleShape {
    pub min: PointBody,
    pub max: PointBody,
}

#[derive(Debug, Clone, Object)]
pub struct PolygonShape {
    #[oai(validator(min_items = 3, max_items = 10000))]
    pub points: Vec<PointBody>,
}

/// A binary mask the size of the frame, as uncompressed COCO run-length encoding: runs of 0 and
/// 1 alternating, starting with 0, over the pixels in column-major order.
#[derive(Debug, Clone, Object)]
pub struct MaskShape {
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub width: u32,
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub height: u32,
    #[oai(validator(min_items = 1))]
    pub counts: Vec<u32>,
}

#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type")]
pub enum ShapeBody {
    #[oai(mapping = "points")]
    Points(PointsShape),
    #[oai(mapping = "rectangle")]
    Rectangle(RectangleShape),
    #[oai(mapping = "polygon")]
    Polygon(PolygonShape),
    #[oai(mapping = "mask")]
    Mask(MaskShape),
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "Annotation")]
pub struct AnnotationBody {
    pub label_id: Uuid,
    pub shape: ShapeBody,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "TextPhrase")]
pub struct PhraseBody {
    pub label_id: Uuid,
    #[oai(validator(min_length = 1, max_length = 500))]
    pub text: Text,
}

#[derive(Debug, Clone, Object)]
pub struct VisualPromptBody {
    /// A frame of this project that no other prompt uses.
    pub frame_id: Uuid,
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub annotations: Vec<AnnotationBody>,
}

#[derive(Debug, Clone, Object)]
pub struct TextPromptBody {
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub phrases: Vec<PhraseBody>,
}

/// What a client sends to create or replace a prompt.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type")]
pub enum PromptBody {
    #[oai(mapping = "visual")]
    Visual(VisualPromptBody),
    #[oai(mapping = "text")]
    Text(TextPromptBody),
}

#[derive(Debug, Clone, Object)]
pub struct VisualPrompt {
    pub id: Uuid,
    pub frame_id: Uuid,
    pub annotations: Vec<AnnotationBody>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct TextPrompt {
    pub id: Uuid,
    pub phrases: Vec<PhraseBody>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type", rename = "Prompt")]
pub enum PromptResponse {
    #[oai(mapping = "visual")]
    Visual(VisualPrompt),
    #[oai(mapping = "text")]
    Text(TextPrompt),
}

#[derive(Debug, Clone, Object)]
pub struct PromptList {
    pub prompts: Vec<PromptResponse>,
    pub pagination: Pagination,
}

#[derive(ApiResponse)]
pub enum PromptCreated {
    #[oai(status = 201)]
    Created(Json<PromptResponse>, #[oai(header = "Location")] String),
}

fn point(p: &PointBody) -> Point {
    Point { x: p.x, y: p.y }
}

fn shape(body: ShapeBody, field: &str) -> Result<Shape, ApiError> {
    Ok(match body {
        ShapeBody::Points(s) => Shape::Points(
            s.points
                .iter()
                .map(|p| (Point { x: p.x, y: p.y }, p.positive))
                .collect(),
        ),
        ShapeBody::Rectangle(s) => Shape::Rectangle {
            min: point(&s.min),
            max: point(&s.max),
        },
        ShapeBody::Polygon(s) => Shape::Polygon(s.points.iter().map(point).collect()),
        ShapeBody::Mask(s) => Shape::Mask(Rle {
            size: FrameSize::new(s.width, s.height)
                .map_err(|e| ApiError::from(e.in_field(field)))?,
            counts: s.counts,
        }),
    })
}

fn content(body: PromptBody) -> Result<PromptContent, ApiError> {
    Ok(match body {
        PromptBody::Visual(v) => PromptContent::Visual {
            frame_id: FrameId::from_uuid(v.frame_id),
            annotations: v
                .annotations
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    Ok(Annotation {
                        label_id: LabelId::from_uuid(a.label_id),
                        shape: shape(a.shape, &format!("annotations[{i}].shape"))?,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        },
        PromptBody::Text(t) => PromptContent::Text {
            phrases: t
                .phrases
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    Ok(TextPhrase {
                        label_id: LabelId::from_uuid(p.label_id),
                        text: Phrase::parse(&p.text)
                            .map_err(|e| ApiError::from(e.in_field(&format!("phrases[{i}]"))))?,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        },
    })
}

fn shape_body(s: &Shape) -> ShapeBody {
    let pb = |p: &Point| PointBody { x: p.x, y: p.y };
    match s {
        Shape::Points(points) => ShapeBody::Points(PointsShape {
            points: points
                .iter()
                .map(|(p, positive)| PromptPointBody {
                    x: p.x,
                    y: p.y,
                    positive: *positive,
                })
                .collect(),
        }),
        Shape::Rectangle { min, max } => ShapeBody::Rectangle(RectangleShape {
            min: pb(min),
            max: pb(max),
        }),
        Shape::Polygon(points) => ShapeBody::Polygon(PolygonShape {
            points: points.iter().map(pb).collect(),
        }),
        Shape::Mask(rle) => ShapeBody::Mask(MaskShape {
            width: rle.size.width(),
            height: rle.size.height(),
            counts: rle.counts.clone(),
        }),
    }
}

impl From<Prompt> for PromptResponse {
    fn from(p: Prompt) -> Self {
        match p.content {
            PromptContent::Visual {
                frame_id,
                annotations,
            } => PromptResponse::Visual(VisualPrompt {
                id: p.id.as_uuid(),
                frame_id: frame_id.as_uuid(),
                annotations: annotations
                    .iter()
                    .map(|a| AnnotationBody {
                        label_id: a.label_id.as_uuid(),
                        shape: shape_body(&a.shape),
                    })
                    .collect(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            }),
            PromptContent::Text { phrases } => PromptResponse::Text(TextPrompt {
                id: p.id.as_uuid(),
                phrases: phrases
                    .iter()
                    .map(|t| PhraseBody {
                        label_id: t.label_id.as_uuid(),
                        text: Text(t.text.to_string()),
                    })
                    .collect(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            }),
        }
    }
}

pub struct PromptsApi {
    pub service: Service,
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Prompts")]
impl PromptsApi {
    /// Create a visual or text prompt.
    #[oai(
        path = "/:project_id/prompts",
        method = "post",
        operation_id = "create_prompt"
    )]
    async fn create(
        &self,
        project_id: Path<Uuid>,
        body: Json<PromptBody>,
    ) -> Result<PromptCreated, ApiError> {
        let pid = ProjectId::from_uuid(project_id.0);
        let prompt = self.service.create_prompt(pid, content(body.0)?).await?;
        let loc = location(&[&"projects", &pid, &"prompts", &prompt.id]);
        Ok(PromptCreated::Created(Json(prompt.into()), loc))
    }

    /// Prompts in creation order.
    #[oai(
        path = "/:project_id/prompts",
        method = "get",
        operation_id = "list_prompts"
    )]
    async fn list(
        &self,
        project_id: Path<Uuid>,
        /// Items to skip.
        #[oai(validator(maximum(value = "1000000000")))]
        offset: Query<Option<u64>>,
        /// Items to return, 1 to 1000 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<PromptList>, ApiError> {
        let paged = self
            .service
            .list_prompts(ProjectId::from_uuid(project_id.0), page(offset.0, limit.0)?)
            .await?;
        let pagination = Pagination::of(&paged);
        Ok(Json(PromptList {
            prompts: paged.items.into_iter().map(Into::into).collect(),
            pagination,
        }))
    }

    #[oai(
        path = "/:project_id/prompts/:prompt_id",
        method = "get",
        operation_id = "get_prompt"
    )]
    async fn get(
        &self,
        project_id: Path<Uuid>,
        prompt_id: Path<Uuid>,
    ) -> Result<Json<PromptResponse>, ApiError> {
        let prompt = self
            .service
            .get_prompt(
                ProjectId::from_uuid(project_id.0),
                PromptId::from_uuid(prompt_id.0),
            )
            .await?;
        Ok(Json(prompt.into()))
    }

    /// Replace a prompt's content; its type cannot change. A frame no longer used is deleted.
    #[oai(
        path = "/:project_id/prompts/:prompt_id",
        method = "put",
        operation_id = "update_prompt"
    )]
    async fn update(
        &self,
        project_id: Path<Uuid>,
        prompt_id: Path<Uuid>,
        body: Json<PromptBody>,
    ) -> Result<Json<PromptResponse>, ApiError> {
        let prompt = self
            .service
            .update_prompt(
                ProjectId::from_uuid(project_id.0),
                PromptId::from_uuid(prompt_id.0),
                content(body.0)?,
            )
            .await?;
        Ok(Json(prompt.into()))
    }

    /// Delete a prompt and the frame it used.
    #[oai(
        path = "/:project_id/prompts/:prompt_id",
        method = "delete",
        operation_id = "delete_prompt"
    )]
    async fn delete(
        &self,
        project_id: Path<Uuid>,
        prompt_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        self.service
            .delete_prompt(
                ProjectId::from_uuid(project_id.0),
                PromptId::from_uuid(prompt_id.0),
            )
            .await?;
        Ok(Deleted::NoContent)
    }
}
