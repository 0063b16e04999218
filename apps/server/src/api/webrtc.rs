//! WebRTC signalling: `POST /api/v1/projects/{id}/offer` answers a browser's complete SDP offer,
//! `DELETE /api/v1/projects/{id}/offer/{webrtc_id}` hangs the session up, and
//! `GET /api/v1/system/webrtc/config` gives the ICE servers a browser should use (with fresh
//! TURN credentials when a shared secret is configured). Paths and bodies follow the reference
//! system, so its clients work unchanged.

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use visprompt_domain::{ProjectId, Service};
use visprompt_webrtc::{LiveView, OfferError};

use crate::api::error::ApiError;
use crate::api::{ApiTags, Deleted};

#[derive(Debug, Clone, Object)]
#[oai(rename = "Offer")]
pub struct OfferBody {
    /// The browser's id for this connection; offering again with it replaces the connection.
    #[oai(validator(pattern = r"^[A-Za-z0-9._-]{1,128}$"))]
    pub webrtc_id: String,
    /// The complete (non-trickle) SDP offer: a receive-only H.264 video section and, for
    /// predictions, a data channel named `predictions`.
    #[oai(validator(max_length = 65536))]
    pub sdp: String,
    /// Always `offer`.
    #[oai(rename = "type", default = "default_offer_type")]
    pub kind: String,
}

fn default_offer_type() -> String {
    "offer".into()
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "Answer")]
pub struct AnswerBody {
    /// The SDP answer with all of the server's candidates.
    pub sdp: String,
    /// Always `answer`.
    #[oai(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "WebRTCIceServer")]
pub struct IceServerBody {
    /// One `stun:`, `stuns:`, `turn:` or `turns:` URL.
    pub urls: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "WebRTCConfig")]
pub struct WebRtcConfigBody {
    #[oai(rename = "iceServers")]
    pub ice_servers: Vec<IceServerBody>,
}

pub struct WebRtcApi {
    pub service: Service,
    pub live: Arc<LiveView>,
}

#[OpenApi(tag = "ApiTags::WebRtc")]
impl WebRtcApi {
    /// The ICE servers for a browser's `RTCPeerConnection`. With TURN REST configured, each call
    /// issues fresh time-limited credentials.
    #[oai(
        path = "/api/v1/system/webrtc/config",
        method = "get",
        operation_id = "get_webrtc_config"
    )]
    async fn config(&self) -> Json<WebRtcConfigBody> {
        let client = Uuid::new_v4().simple().to_string();
        let ice_servers = self
            .live
            .ice_servers_for(&client[..12])
            .into_iter()
            .flat_map(|server| {
                server.urls.into_iter().map(move |urls| IceServerBody {
                    urls,
                    username: server.username.clone(),
                    credential: server.credential.clone(),
                })
            })
            .collect();
        Json(WebRtcConfigBody { ice_servers })
    }

    /// Answers a browser's SDP offer to watch the project's live view: annotated H.264 video
    /// and, on a data channel named `predictions`, each processed frame's prediction JSON. The
    /// project must be the active one; the viewer stays connected when the source, model or
    /// active project changes afterwards.
    #[oai(
        path = "/api/v1/projects/:project_id/offer",
        method = "post",
        operation_id = "create_webrtc_offer"
    )]
    async fn offer(
        &self,
        project_id: Path<Uuid>,
        body: Json<OfferBody>,
    ) -> Result<Json<AnswerBody>, ApiError> {
        let project_id = ProjectId::from_uuid(project_id.0);
        let project = self.service.get_project(project_id).await?;
        let body = body.0;
        if body.kind != "offer" {
            return Err(ApiError::invalid(
                "type",
                format!("type: expected `offer`, got `{}`", body.kind),
            ));
        }
        if !project.active {
            return Err(ApiError::conflict(format!(
                "project {} is not active; activate it to watch its live view",
                project_id
            )));
        }
        let answer = self
            .live
            .offer(project_id, &body.webrtc_id, body.sdp)
            .await
            .map_err(|e| match e {
                OfferError::TooLarge(_) => ApiError::too_large(e.to_string()),
                OfferError::BadSessionId => ApiError::invalid("webrtc_id", e.to_string()),
                OfferError::BadSdp(_) | OfferError::NoH264Video => {
                    ApiError::bad_request(e.to_string())
                }
                OfferError::TooManyViewers(_) => ApiError::conflict(e.to_string()),
                OfferError::Internal(_) => {
                    tracing::error!(message = "WebRTC offer failed.", error = %e);
                    ApiError::internal()
                }
            })?;
        Ok(Json(AnswerBody {
            sdp: answer,
            kind: "answer".into(),
        }))
    }

    /// Hangs up a live-view session.
    #[oai(
        path = "/api/v1/projects/:project_id/offer/:webrtc_id",
        method = "delete",
        operation_id = "delete_webrtc_session"
    )]
    async fn hang_up(
        &self,
        project_id: Path<Uuid>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._-]{1,128}$"))] webrtc_id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let project_id = ProjectId::from_uuid(project_id.0);
        self.service.get_project(project_id).await?;
        let belongs = self
            .live
            .sessions()
            .iter()
            .any(|(id, project)| *id == webrtc_id.0 && *project == project_id);
        if belongs && self.live.hang_up(&webrtc_id.0).await {
            Ok(Deleted::NoContent)
        } else {
            Err(ApiError::NotFound(Json(crate::api::error::ErrorBody::new(
                "not_found",
                format!("no live-view session `{}` for this project", webrtc_id.0),
            ))))
        }
    }
}
