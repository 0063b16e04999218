//! `/api/v1/projects/{project_id}/sinks`: where predictions are published. Any number of sinks
//! may be active. MQTT passwords are write-only: responses say only whether one is set.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use uuid::Uuid;
use visprompt_domain::{
    DisplayName, DomainError, MqttQos, MqttSink, NewSink, ProjectId, Service, Sink, SinkConfig,
    SinkId,
};

use crate::api::common::{Pagination, location, page};
use crate::api::error::ApiError;
use crate::api::text::Text;
use crate::api::{ApiTags, Deleted};

fn default_mqtt_port() -> u16 {
    1883
}

fn default_topic() -> Text {
    Text("visprompt/predictions".into())
}

/// An MQTT broker. A password left out on update keeps the stored one.
#[derive(Debug, Clone, Object)]
pub struct MqttSinkBody {
    #[oai(validator(min_length = 1, max_length = 253, pattern = "^[A-Za-z0-9._:-]+$"))]
    pub broker_host: Text,
    #[oai(default = "default_mqtt_port", validator(minimum(value = "1")))]
    pub broker_port: u16,
    #[oai(
        default = "default_topic",
        validator(min_length = 1, max_length = 1024, pattern = "^[^+#\\u0000]+$")
    )]
    pub topic: Text,
    #[oai(validator(max_length = 1024))]
    pub username: Option<Text>,
    #[oai(validator(max_length = 1024), write_only)]
    pub password: Option<Text>,
    /// Delivery guarantee: 0 at most once (the default), 1 at least once, 2 exactly once.
    #[oai(default, validator(minimum(value = "0"), maximum(value = "2")))]
    pub qos: i64,
    /// Connect with TLS, verifying the broker's certificate against the system's trusted roots
    /// (usually on port 8883). Default false.
    #[oai(default)]
    pub tls: bool,
}

/// An HTTP(S) endpoint that receives each prediction as a JSON POST.
#[derive(Debug, Clone, Object)]
pub struct WebhookSinkBody {
    #[oai(validator(
        min_length = 1,
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://"
    ))]
    pub url: Text,
}

/// A JSON-lines file on the server, inside the media roots.
#[derive(Debug, Clone, Object)]
pub struct FileSinkBody {
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub path: Text,
}

#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "sink_type")]
pub enum SinkConfigBody {
    #[oai(mapping = "mqtt")]
    Mqtt(MqttSinkBody),
    #[oai(mapping = "webhook")]
    Webhook(WebhookSinkBody),
    #[oai(mapping = "file")]
    File(FileSinkBody),
}

/// An MQTT sink as returned: the password itself is never sent back.
#[derive(Debug, Clone, Object)]
pub struct MqttSinkView {
    pub broker_host: String,
    pub broker_port: u16,
    pub topic: String,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    pub password_set: bool,
    /// 0 at most once, 1 at least once, 2 exactly once.
    pub qos: i64,
    pub tls: bool,
}

#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "sink_type")]
pub enum SinkConfigView {
    #[oai(mapping = "mqtt")]
    Mqtt(MqttSinkView),
    #[oai(mapping = "webhook")]
    Webhook(WebhookSinkBody),
    #[oai(mapping = "file")]
    File(FileSinkBody),
}

impl TryFrom<SinkConfigBody> for SinkConfig {
    type Error = DomainError;

    /// Fails only on a QoS level the schema's range should already have refused; the domain
    /// parses it anyway, so this does not depend on that range being declared.
    fn try_from(b: SinkConfigBody) -> Result<Self, DomainError> {
        Ok(match b {
            SinkConfigBody::Mqtt(m) => SinkConfig::Mqtt(MqttSink {
                broker_host: m.broker_host.into(),
                broker_port: m.broker_port,
                topic: m.topic.into(),
                username: m.username.map(Into::into),
                password: m.password.map(Into::into),
                qos: MqttQos::from_level(m.qos).map_err(|e| e.in_field("config"))?,
                tls: m.tls,
            }),
            SinkConfigBody::Webhook(w) => SinkConfig::Webhook { url: w.url.into() },
            SinkConfigBody::File(f) => SinkConfig::File {
                path: f.path.into(),
            },
        })
    }
}

impl From<SinkConfig> for SinkConfigView {
    fn from(c: SinkConfig) -> Self {
        match c {
            SinkConfig::Mqtt(m) => Self::Mqtt(MqttSinkView {
                broker_host: m.broker_host,
                broker_port: m.broker_port,
                topic: m.topic,
                username: m.username,
                password_set: m.password.is_some(),
                qos: i64::from(m.qos.level()),
                tls: m.tls,
            }),
            SinkConfig::Webhook { url } => Self::Webhook(WebhookSinkBody { url: url.into() }),
            SinkConfig::File { path } => Self::File(FileSinkBody { path: path.into() }),
        }
    }
}

/// What a client sends to create or replace a sink.
#[derive(Debug, Clone, Object)]
pub struct SinkBody {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<Text>,
    #[oai(default)]
    pub active: bool,
    pub config: SinkConfigBody,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "Sink")]
pub struct SinkResponse {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub config: SinkConfigView,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Sink> for SinkResponse {
    fn from(s: Sink) -> Self {
        Self {
            id: s.id.as_uuid(),
            name: s.name.to_string(),
            active: s.active,
            config: s.config.into(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct SinkList {
    pub sinks: Vec<SinkResponse>,
    pub pagination: Pagination,
}

#[derive(ApiResponse)]
pub enum SinkCreated {
    #[oai(status = 201)]
    Created(Json<SinkResponse>, #[oai(header = "Location")] String),
}

fn new_sink(body: SinkBody) -> Result<NewSink, ApiError> {
    Ok(NewSink {
        name: body.name.as_deref().map(DisplayName::parse).transpose()?,
        active: body.active,
        config: body.config.try_into()?,
    })
}

pub struct SinksApi {
    pub service: Service,
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "ApiTags::Sinks")]
impl SinksApi {
    #[oai(
        path = "/:project_id/sinks",
        method = "post",
        operation_id = "create_sink"
    )]
    async fn create(
        &self,
        project_id: Path<Uuid>,
        body: Json<SinkBody>,
    ) -> Result<SinkCreated, ApiError> {
        let pid = ProjectId::from_uuid(project_id.0);
        let sink = self.service.create_sink(pid, new_sink(body.0)?).await?;
        let loc = location(&[&"projects", &pid, &"sinks", &sink.id]);
        Ok(SinkCreated::Created(Json(sink.into()), loc))
    }

    /// Sinks in creation order.
    #[oai(
        path = "/:project_id/sinks",
        method = "get",
        operation_id = "list_sinks"
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
    ) -> Result<Json<SinkList>, ApiError> {
        let paged = self
            .service
            .list_sinks(ProjectId::from_uuid(project_id.0), page(offset.0, limit.0)?)
            .await?;
        let pagination = Pagination::of(&paged);
        Ok(Json(SinkList {
            sinks: paged.items.into_iter().map(Into::into).collect(),
            pagination,
        }))
    }

    #[oai(
        path = "/:project_id/sinks/:sink_id",
        method = "get",
        operation_id = "get_sink"
    )]
    async fn get(
        &self,
        project_id: Path<Uuid>,
        sink_id: Path<Uuid>,
    ) -> Result<Json<SinkResponse>, ApiError> {
        let sink = self
            .service
            .get_sink(
                ProjectId::from_uuid(project_id.0),
                SinkId::from_uuid(sink_id.0),
            )
            .await?;
        Ok(Json(sink.into()))
    }

    /// Replace a sink's name, active flag and configuration; its type cannot change.
    #[oai(
        path = "/:project_id/sinks/:sink_id",
        method = "put",
        operation_id = "update_sink"
    )]
    async fn update(
        &self,
        project_id: Path<Uuid>,
        sink_id: Path<Uuid>,
        body: Json<SinkBody>,
    ) -> Result<Json<SinkResponse>, ApiError> {
        let sink = self
            .service
            .replace_sink(
                ProjectId::from_uuid(project_id.0),
                SinkId::from_uuid(sink_id.0),
                new_sink(body.0)?,
            )
            .await?;
        Ok(Json(sink.into()))
    }

    #[oai(
        path = "/:project_id/sinks/:sink_id",
        method = "delete",
        operation_id = "delete_sink"
    )]
    async fn delete(
        &self,
        project_id: Path<Uuid>,
        sink_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        self.service
            .delete_sink(
                ProjectId::from_uuid(project_id.0),
                SinkId::from_uuid(sink_id.0),
            )
            .await?;
        Ok(Deleted::NoContent)
    }
}
