//! `/api/v1/projects/{project_id}/labels`: named, coloured categories of a project.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;
use visprompt_domain::{Color, Label, LabelId, LabelName, ProjectId, Service};

use crate::api::common::{Pagination, location, page};
use crate::api::error::ApiError;
use crate::api::text::Text;
use crate::api::{ApiTags, Deleted};

#[derive(Debug, Clone, Object)]
pub struct LabelCreateBody {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Text,
    /// `#RRGGBB`; a palette colour not yet used in the project when left out.
    #[oai(validator(pattern = "^#[0-9A-Fa-f]{6}$"))]
    pub color: Option<Text>,
}

/// Fields left out keep their value.
#[derive(Debug, Clone, Object)]
pub struct LabelUpdateBody {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<Text>,
    #[oai(validator(pattern = "^#[0-9A-Fa-f]{6}$"))]
    pub color: Option<Text>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "Label")]
pub struct LabelResponse {
    pub id: Uuid,
    pub name: String,
    /// `#RRGGBB`, upper case.
    pub color: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Label> for LabelResponse {
    fn from(l: Label) -> Self {
        Self {
            id: l.id.as_uuid(),
            name: l.name.to_string(),
            color: l.color.to_string(),
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct LabelList {
    pub labels: Vec<LabelResponse>,
    pub pagination: Pagination,
}

#[derive(ApiResponse)]
pub enum LabelCreated {
    #[oai(status = 201)]
    Created(Json<LabelResponse>, #[oai(header = "Location")] String),
}

pub struct LabelsApi {
    pub service: Service,
}

fn parts(
    name: Option<&str>,
    color: Option<&str>,
) -> Result<(Option<LabelName>, Option<Color>), ApiError> {
    Ok((
        name.map(LabelName::parse).transpose()?,
        color.map(Color::parse).transpose()?,
    ))
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Labels")]
impl LabelsApi {
    #[oai(
        path = "/:project_id/labels",
        method = "post",
        operation_id = "create_label"
    )]
    async fn create(
        &self,
        project_id: Path<Uuid>,
        body: Json<LabelCreateBody>,
    ) -> Result<LabelCreated, ApiError> {
        let (name, color) = parts(Some(&body.name), body.color.as_deref())?;
        let pid = ProjectId::from_uuid(project_id.0);
        let label = self
            .service
            .create_label(pid, name.expect("given"), color)
            .await?;
        let loc = location(&[&"projects", &pid, &"labels", &label.id]);
        Ok(LabelCreated::Created(Json(label.into()), loc))
    }

    /// Labels in creation order.
    #[oai(
        path = "/:project_id/labels",
        method = "get",
        operation_id = "list_labels"
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
    ) -> Result<Json<LabelList>, ApiError> {
        let paged = self
            .service
            .list_labels(ProjectId::from_uuid(project_id.0), page(offset.0, limit.0)?)
            .await?;
        let pagination = Pagination::of(&paged);
        Ok(Json(LabelList {
            labels: paged.items.into_iter().map(Into::into).collect(),
            pagination,
        }))
    }

    #[oai(
        path = "/:project_id/labels/:label_id",
        method = "get",
        operation_id = "get_label"
    )]
    async fn get(
        &self,
        project_id: Path<Uuid>,
        label_id: Path<Uuid>,
    ) -> Result<Json<LabelResponse>, ApiError> {
        let label = self
            .service
            .get_label(
                ProjectId::from_uuid(project_id.0),
                LabelId::from_uuid(label_id.0),
            )
            .await?;
        Ok(Json(label.into()))
    }

    /// Rename and/or recolour a label.
    #[oai(
        path = "/:project_id/labels/:label_id",
        method = "put",
        operation_id = "update_label"
    )]
    async fn update(
        &self,
        project_id: Path<Uuid>,
        label_id: Path<Uuid>,
        body: Json<LabelUpdateBody>,
    ) -> Result<Json<LabelResponse>, ApiError> {
        let (name, color) = parts(body.name.as_deref(), body.color.as_deref())?;
        let label = self
            .service
            .update_label(
                ProjectId::from_uuid(project_id.0),
                LabelId::from_uuid(label_id.0),
                name,
                color,
            )
            .await?;
        Ok(Json(label.into()))
    }

    /// Delete a label that no prompt uses (409 otherwise).
    #[oai(
        path = "/:project_id/labels/:label_id",
        method = "delete",
        operation_id = "delete_label"
    )]
    async fn delete(
        &self,
        project_id: Path<Uuid>,
        label_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        self.service
            .delete_label(
                ProjectId::from_uuid(project_id.0),
                LabelId::from_uuid(label_id.0),
            )
            .await?;
        Ok(Deleted::NoContent)
    }
}
