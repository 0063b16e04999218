//! `/api/v1/projects`: create, list, read, rename, activate and deactivate, delete, export to a
//! zip archive and import one back as a new project.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use uuid::Uuid;
use visprompt_archive::{ArchiveError, ArchiveLimits, read_archive, write_archive};
use visprompt_domain::{Project, ProjectId, ProjectName, ProjectUpdate, Service};

use crate::api::ApiTags;
use crate::api::Deleted;
use crate::api::common::{Pagination, location, page};
use crate::api::error::ApiError;
use crate::api::text::Text;

#[derive(Debug, Clone, Object)]
pub struct ProjectCreateBody {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Text,
    /// Whether the new project becomes the active one (deactivating the current one).
    #[oai(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

/// Fields left out keep their value.
#[derive(Debug, Clone, Object)]
pub struct ProjectUpdateBody {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<Text>,
    /// `true` activates the project (deactivating any other), `false` deactivates it.
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "Project")]
pub struct ProjectResponse {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Project> for ProjectResponse {
    fn from(p: Project) -> Self {
        Self {
            id: p.id.as_uuid(),
            name: p.name.to_string(),
            active: p.active,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ProjectList {
    pub projects: Vec<ProjectResponse>,
    pub pagination: Pagination,
}

#[derive(ApiResponse)]
pub enum ProjectCreated {
    #[oai(status = 201)]
    Created(Json<ProjectResponse>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum ProjectArchive {
    /// The project as a zip archive.
    #[oai(status = 200, content_type = "application/zip")]
    Archive(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

#[derive(ApiRequest)]
pub enum ArchiveUpload {
    /// An archive made by the export operation.
    #[oai(content_type = "application/zip")]
    Zip(Binary<Vec<u8>>),
    /// The same archive sent as plain bytes.
    #[oai(content_type = "application/octet-stream")]
    Bytes(Binary<Vec<u8>>),
}

pub struct ProjectsApi {
    pub service: Service,
    pub archive_limits: ArchiveLimits,
}

fn project_name(raw: &str) -> Result<ProjectName, ApiError> {
    Ok(ProjectName::parse(raw)?)
}

fn created(project: Project) -> ProjectCreated {
    let loc = location(&[&"projects", &project.id]);
    ProjectCreated::Created(Json(project.into()), loc)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Projects")]
impl ProjectsApi {
    /// Create a project, with one model configuration per algorithm (the classical one active).
    #[oai(path = "/projects", method = "post", operation_id = "create_project")]
    async fn create(&self, body: Json<ProjectCreateBody>) -> Result<ProjectCreated, ApiError> {
        let name = project_name(&body.name)?;
        Ok(created(
            self.service.create_project(name, body.active).await?,
        ))
    }

    /// List projects in creation order.
    #[oai(path = "/projects", method = "get", operation_id = "list_projects")]
    async fn list(
        &self,
        /// Items to skip.
        #[oai(validator(maximum(value = "1000000000")))]
        offset: Query<Option<u64>>,
        /// Items to return, 1 to 1000 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<ProjectList>, ApiError> {
        let paged = self.service.list_projects(page(offset.0, limit.0)?).await?;
        let pagination = Pagination::of(&paged);
        Ok(Json(ProjectList {
            projects: paged.items.into_iter().map(Into::into).collect(),
            pagination,
        }))
    }

    /// The active project.
    #[oai(
        path = "/projects/active",
        method = "get",
        operation_id = "get_active_project"
    )]
    async fn active(&self) -> Result<Json<ProjectResponse>, ApiError> {
        Ok(Json(self.service.active_project().await?.into()))
    }

    #[oai(
        path = "/projects/:project_id",
        method = "get",
        operation_id = "get_project"
    )]
    async fn get(&self, project_id: Path<Uuid>) -> Result<Json<ProjectResponse>, ApiError> {
        Ok(Json(
            self.service
                .get_project(ProjectId::from_uuid(project_id.0))
                .await?
                .into(),
        ))
    }

    /// Rename and/or (de)activate a project.
    #[oai(
        path = "/projects/:project_id",
        method = "put",
        operation_id = "update_project"
    )]
    async fn update(
        &self,
        project_id: Path<Uuid>,
        body: Json<ProjectUpdateBody>,
    ) -> Result<Json<ProjectResponse>, ApiError> {
        let update = ProjectUpdate {
            name: body.name.as_deref().map(project_name).transpose()?,
            active: body.active,
        };
        let project = self
            .service
            .update_project(ProjectId::from_uuid(project_id.0), update)
            .await?;
        Ok(Json(project.into()))
    }

    /// Make this the one active project.
    #[oai(
        path = "/projects/:project_id/activate",
        method = "post",
        operation_id = "activate_project"
    )]
    async fn activate(&self, project_id: Path<Uuid>) -> Result<Json<ProjectResponse>, ApiError> {
        let project = self
            .service
            .activate_project(ProjectId::from_uuid(project_id.0))
            .await?;
        Ok(Json(project.into()))
    }

    /// Deactivate this project (no project is active afterwards).
    #[oai(
        path = "/projects/:project_id/deactivate",
        method = "post",
        operation_id = "deactivate_project"
    )]
    async fn deactivate(&self, project_id: Path<Uuid>) -> Result<Json<ProjectResponse>, ApiError> {
        let project = self
            .service
            .deactivate_project(ProjectId::from_uuid(project_id.0))
            .await?;
        Ok(Json(project.into()))
    }

    /// Delete a project and everything it owns.
    #[oai(
        path = "/projects/:project_id",
        method = "delete",
        operation_id = "delete_project"
    )]
    async fn delete(&self, project_id: Path<Uuid>) -> Result<Deleted, ApiError> {
        self.service
            .delete_project(ProjectId::from_uuid(project_id.0))
            .await?;
        Ok(Deleted::NoContent)
    }

    /// Export a project (labels, prompts with their frames, sources, sinks, model
    /// configurations) as a zip archive. MQTT passwords are left out.
    #[oai(
        path = "/projects/:project_id/export",
        method = "get",
        operation_id = "export_project"
    )]
    async fn export(&self, project_id: Path<Uuid>) -> Result<ProjectArchive, ApiError> {
        let bundle = self
            .service
            .export_project(ProjectId::from_uuid(project_id.0))
            .await?;
        let name = archive_disposition(bundle.project.name.as_str());
        let bytes = tokio::task::spawn_blocking(move || write_archive(&bundle))
            .await
            .map_err(|_| ApiError::internal())?;
        Ok(ProjectArchive::Archive(Binary(bytes), name))
    }

    /// Import an exported archive as a new, inactive project with fresh ids.
    #[oai(
        path = "/projects/import",
        method = "post",
        operation_id = "import_project"
    )]
    async fn import(
        &self,
        /// Name of the new project; defaults to the name in the archive.
        #[oai(validator(min_length = 1, max_length = 100))]
        name: Query<Option<String>>,
        body: ArchiveUpload,
    ) -> Result<ProjectCreated, ApiError> {
        let name = name.0.as_deref().map(project_name).transpose()?;
        let (ArchiveUpload::Zip(Binary(bytes)) | ArchiveUpload::Bytes(Binary(bytes))) = body;
        let limits = self.archive_limits;
        let bundle = tokio::task::spawn_blocking(move || read_archive(&bytes, limits))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(archive_error)?;
        Ok(created(self.service.import_project(bundle, name).await?))
    }
}

fn archive_error(err: ArchiveError) -> ApiError {
    match err {
        ArchiveError::Invalid(domain) => domain.into(),
        ArchiveError::TooLarge(..) | ArchiveError::TooManyEntries(_) => {
            ApiError::too_large(err.to_string())
        }
        other => ApiError::invalid("archive", other.to_string()),
    }
}

/// `Content-Disposition` of an export, named after the project: a plain ASCII `filename` for
/// every client (anything else becomes `_`, quotes and slashes included, so the header cannot be
/// broken out of) and the exact name, percent-encoded, in `filename*` (RFC 6266).
fn archive_disposition(project_name: &str) -> String {
    let ascii: String = project_name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            ' ' => '-',
            _ => '_',
        })
        .collect();
    let ascii = ascii.trim_matches(|c| c == '.' || c == '-');
    let ascii = if ascii.is_empty() { "project" } else { ascii };
    let file = format!("{project_name}.zip");
    let exact = percent_encoding::utf8_percent_encode(&file, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}.zip\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod disposition_tests {
    use super::archive_disposition;

    #[test]
    fn exports_are_named_after_the_project_without_breaking_the_header() {
        assert_eq!(
            archive_disposition("Line 3"),
            "attachment; filename=\"Line-3.zip\"; filename*=UTF-8''Line%203%2Ezip"
        );
        let hostile = archive_disposition("a\"; x=\"/../évil");
        let plain = hostile.split("; filename*=").next().unwrap();
        assert_eq!(plain.matches('"').count(), 2, "{hostile}");
        assert!(!plain.contains('/'), "{hostile}");
        assert!(hostile.contains("%C3%A9vil"), "{hostile}");
        assert!(archive_disposition("...").contains("filename=\"project.zip\""));
    }
}
