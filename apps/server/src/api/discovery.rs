//! `/api/v1/system/source-types/{source_type}/sources` and `/api/v1/system/datasets`: what can
//! be used as a source on this server right now (connected USB cameras, bundled datasets), so a
//! client offers choices instead of asking for device numbers.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use visprompt_domain::SourceKind;
use visprompt_media::SAMPLE_DATASETS;

use crate::api::ApiTags;
use crate::api::error::ApiError;

/// A source that could be configured as it is.
#[derive(Debug, Clone, Object)]
pub struct AvailableSource {
    pub source_type: String,
    /// The camera's or dataset's name.
    pub name: String,
    /// For `usb_camera`: N of `/dev/videoN`.
    pub device_id: Option<u32>,
    /// For `sample_dataset`.
    pub dataset_id: Option<Uuid>,
}

#[derive(Debug, Clone, Object)]
pub struct Dataset {
    pub id: Uuid,
    pub name: String,
    /// Number of frames.
    pub frames: u64,
}

#[derive(Debug, Clone, Object)]
pub struct DatasetList {
    pub datasets: Vec<Dataset>,
}

/// Kinds that can be listed; the others are named by the user (a path, a URL).
const DISCOVERABLE: [SourceKind; 3] = [
    SourceKind::UsbCamera,
    SourceKind::SampleDataset,
    SourceKind::Synthetic,
];

pub struct DiscoveryApi;

#[OpenApi(tag = "ApiTags::System")]
impl DiscoveryApi {
    /// Sources of a kind that are available now: connected V4L2 cameras for `usb_camera`, the
    /// bundled datasets for `sample_dataset`, the scene for `synthetic`. Other kinds are named by
    /// path or URL and cannot be listed (422).
    #[oai(
        path = "/api/v1/system/source-types/:source_type/sources",
        method = "get",
        operation_id = "list_available_sources"
    )]
    async fn available(
        &self,
        #[oai(validator(max_length = 64))] source_type: Path<String>,
    ) -> Result<Json<Vec<AvailableSource>>, ApiError> {
        let kind = DISCOVERABLE
            .into_iter()
            .find(|k| k.as_str() == source_type.0)
            .ok_or_else(|| {
                let names: Vec<&str> = DISCOVERABLE.iter().map(|k| k.as_str()).collect();
                ApiError::invalid(
                    "source_type",
                    format!(
                        "sources of type {:?} cannot be listed; listable types are {}",
                        source_type.0,
                        names.join(", ")
                    ),
                )
            })?;
        let sources = match kind {
            SourceKind::UsbCamera => {
                // Reads /dev and queries each device: blocking calls.
                let cameras = tokio::task::spawn_blocking(visprompt_media::discover_cameras)
                    .await
                    .map_err(|_| ApiError::internal())?;
                cameras
                    .into_iter()
                    .map(|c| AvailableSource {
                        source_type: kind.as_str().into(),
                        name: c.name,
                        device_id: Some(c.device_id),
                        dataset_id: None,
                    })
                    .collect()
            }
            SourceKind::SampleDataset => SAMPLE_DATASETS
                .iter()
                .map(|d| AvailableSource {
                    source_type: kind.as_str().into(),
                    name: d.name.into(),
                    device_id: None,
                    dataset_id: Some(d.id),
                })
                .collect(),
            _ => vec![AvailableSource {
                source_type: kind.as_str().into(),
                name: kind.default_name().into(),
                device_id: None,
                dataset_id: None,
            }],
        };
        Ok(Json(sources))
    }

    /// The sample datasets bundled with the server.
    #[oai(
        path = "/api/v1/system/datasets",
        method = "get",
        operation_id = "list_datasets"
    )]
    async fn datasets(&self) -> Json<DatasetList> {
        Json(DatasetList {
            datasets: SAMPLE_DATASETS
                .iter()
                .map(|d| Dataset {
                    id: d.id,
                    name: d.name.into(),
                    frames: d.len() as u64,
                })
                .collect(),
        })
    }
}
