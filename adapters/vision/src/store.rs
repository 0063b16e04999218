//! [`ModelStore`]: finds, loads and keeps the encoders and segmenters the detectors use, so a
//! prompt change refits without reloading weights and several projects share one copy.
//!
//! Where weights come from, in order:
//! 1. a local models folder (`MODELS_DIR`): `<dir>/<model id>/` holding the model's files
//!    (encoders: `config.json` + `model.safetensors` in Hugging Face layout; segmenters: the
//!    checkpoint, `.pth`, `.pt` or `.safetensors`, and optionally a `config.json` describing a
//!    non-standard architecture);
//! 2. the Hugging Face hub cache under the data directory, downloading what is missing unless
//!    offline (`OFFLINE=1` never touches the network).
//!
//! A missing model offline is an error that names the file and both ways to provide it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device};

use crate::detect::features::FeatureEncoder;
use crate::encoders::bf16;
use crate::segmenters::{Sam, SamConfig};
use crate::weights::{
    self, DownloadProgress, HubCache, HubClient, LogProgress, ModelKind, ModelSpec, ProgressEvent,
    WeightsError,
};

/// Side of the square the encoders see (the reference's 512).
pub const ENCODER_INPUT_SIZE: usize = 512;

/// Where the store looks for weights.
#[derive(Clone, Debug)]
pub struct ModelStoreSettings {
    /// Local folder with one sub-folder per model id.
    pub models_dir: Option<PathBuf>,
    /// Hugging Face hub cache (downloads land here).
    pub cache_dir: PathBuf,
    /// Never download.
    pub offline: bool,
    /// Another hub (a mirror); `None` for huggingface.co.
    pub hub_endpoint: Option<String>,
    /// Token for gated repositories (DINOv3).
    pub hub_token: Option<String>,
}

/// A download in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct Download {
    pub model_id: String,
    pub done: u64,
    pub total: Option<u64>,
}

impl Download {
    /// Fraction done, 0..=1, when the size is known.
    pub fn fraction(&self) -> Option<f64> {
        self.total
            .filter(|t| *t > 0)
            .map(|t| (self.done.min(t) as f64) / t as f64)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The model id is not one this build can run.
    #[error("{0}")]
    Unsupported(String),
    #[error("model {model}: {source}")]
    Weights {
        model: String,
        #[source]
        source: WeightsError,
    },
}

/// Model precision on the CPU: the feature encoder's, and the segmenter's (its image encoder
/// and its mask decoder's per-prompt work, see `Sam::with_bf16_decoder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncoderPrecision {
    F32,
    /// bf16 matrix products where the CPU has them (AVX-512 BF16) and the model supports them
    /// (DINO encoders, TinyViT, the mask decoder's per-prompt products); f32 elsewhere.
    Bf16,
}

#[derive(Default)]
struct Progress {
    current: Mutex<Option<Download>>,
    log: LogProgress,
}

struct Reporter<'a> {
    model_id: &'a str,
    progress: &'a Progress,
}

impl DownloadProgress for Reporter<'_> {
    fn progress(&self, e: &ProgressEvent<'_>) {
        self.progress.log.progress(e);
        *self.progress.current.lock().expect("progress lock") = Some(Download {
            model_id: self.model_id.to_string(),
            done: e.done,
            total: e.total,
        });
    }
}

pub struct ModelStore {
    settings: ModelStoreSettings,
    device: Device,
    encoders: Mutex<HashMap<(String, EncoderPrecision), Arc<FeatureEncoder>>>,
    segmenters: Mutex<HashMap<(String, EncoderPrecision), Arc<Sam>>>,
    /// Serialises loading so two fits do not read the same checkpoint twice.
    loading: Mutex<()>,
    progress: Progress,
}

impl ModelStore {
    pub fn new(settings: ModelStoreSettings) -> Self {
        Self {
            settings,
            device: Device::Cpu,
            encoders: Mutex::default(),
            segmenters: Mutex::default(),
            loading: Mutex::default(),
            progress: Progress::default(),
        }
    }

    pub fn settings(&self) -> &ModelStoreSettings {
        &self.settings
    }

    /// The download running now, if any.
    pub fn download(&self) -> Option<Download> {
        self.progress.current.lock().expect("progress lock").clone()
    }

    /// Whether the model's files are on this machine (local folder or hub cache).
    pub fn present_locally(&self, spec: &ModelSpec) -> bool {
        self.local_folder(spec).is_some()
            || HubCache::new(&self.settings.cache_dir).contains(
                spec.repo,
                spec.revision,
                spec.files,
            )
    }

    /// The encoder `model_id` (a catalogue id), loaded once per precision.
    pub fn encoder(
        &self,
        model_id: &str,
        precision: EncoderPrecision,
    ) -> Result<Arc<FeatureEncoder>, StoreError> {
        let key = (model_id.to_string(), precision);
        if let Some(e) = self.encoders.lock().expect("store lock").get(&key) {
            return Ok(e.clone());
        }
        let _guard = self.loading.lock().expect("loading lock");
        if let Some(e) = self.encoders.lock().expect("store lock").get(&key) {
            return Ok(e.clone());
        }
        let spec = self.spec(model_id, ModelKind::Encoder)?;
        let wrap = |source| StoreError::Weights {
            model: model_id.to_string(),
            source,
        };
        let dir = self.files_of(spec).map_err(wrap)?;
        let mut encoder =
            weights::load_encoder_dir(&dir, DType::F32, &self.device).map_err(wrap)?;
        if precision == EncoderPrecision::Bf16 && bf16::available() {
            encoder = encoder
                .with_bf16_matmuls()
                .map_err(|e| wrap(WeightsError::Encoder(e)))?;
        }
        let e = Arc::new(FeatureEncoder::new(encoder, ENCODER_INPUT_SIZE));
        self.encoders
            .lock()
            .expect("store lock")
            .insert(key, e.clone());
        tracing::info!(message = "Encoder loaded.", model = model_id, folder = %dir.display());
        Ok(e)
    }

    /// The segmenter `model_id` (a catalogue id), loaded once per precision.
    pub fn segmenter(
        &self,
        model_id: &str,
        precision: EncoderPrecision,
    ) -> Result<Arc<Sam>, StoreError> {
        let key = (model_id.to_string(), precision);
        if let Some(s) = self.segmenters.lock().expect("store lock").get(&key) {
            return Ok(s.clone());
        }
        let _guard = self.loading.lock().expect("loading lock");
        if let Some(s) = self.segmenters.lock().expect("store lock").get(&key) {
            return Ok(s.clone());
        }
        let spec = self.spec(model_id, ModelKind::Segmenter)?;
        let wrap = |source| StoreError::Weights {
            model: model_id.to_string(),
            source,
        };
        let dir = self.files_of(spec).map_err(wrap)?;
        let config = match read_sam_config(&dir).map_err(wrap)? {
            Some(c) => c,
            None => standard_sam_config(model_id)?,
        };
        let file = checkpoint_in(&dir, spec).map_err(wrap)?;
        let mut sam = Sam::from_file(&config, &file, &self.device).map_err(wrap)?;
        if precision == EncoderPrecision::Bf16 && bf16::available() && self.device.is_cpu() {
            if sam.supports_bf16_encoder() {
                sam = sam
                    .with_bf16_encoder()
                    .map_err(|e| wrap(WeightsError::Candle(e)))?;
            }
            sam = sam
                .with_bf16_decoder()
                .map_err(|e| wrap(WeightsError::Candle(e)))?;
        }
        let sam = Arc::new(sam);
        self.segmenters
            .lock()
            .expect("store lock")
            .insert(key, sam.clone());
        tracing::info!(message = "Segmenter loaded.", model = model_id, file = %file.display());
        Ok(sam)
    }

    fn spec(&self, model_id: &str, kind: ModelKind) -> Result<&'static ModelSpec, StoreError> {
        weights::catalogue::find(model_id)
            .filter(|s| s.kind == kind)
            .ok_or_else(|| {
                let known: Vec<&str> = weights::catalogue()
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(|s| s.id)
                    .collect();
                StoreError::Unsupported(format!(
                    "model {model_id:?} is not supported by this build; supported: {}",
                    known.join(", ")
                ))
            })
    }

    /// `<models_dir>/<id>/` when it holds the model.
    fn local_folder(&self, spec: &ModelSpec) -> Option<PathBuf> {
        let dir = self.settings.models_dir.as_ref()?.join(spec.id);
        let complete = match spec.kind {
            ModelKind::Encoder => spec.files.iter().all(|f| dir.join(f).is_file()),
            ModelKind::Segmenter => checkpoint_in(&dir, spec).is_ok(),
        };
        complete.then_some(dir)
    }

    /// The folder holding the model's files: local, cached, or downloaded now.
    fn files_of(&self, spec: &ModelSpec) -> Result<PathBuf, WeightsError> {
        if let Some(dir) = self.local_folder(spec) {
            return Ok(dir);
        }
        let mut client = HubClient::new(HubCache::new(&self.settings.cache_dir))
            .offline(self.settings.offline)
            .with_token(self.settings.hub_token.clone());
        if let Some(endpoint) = &self.settings.hub_endpoint {
            client = client.with_endpoint(endpoint.clone());
        }
        let reporter = Reporter {
            model_id: spec.id,
            progress: &self.progress,
        };
        // A thread of its own with its own runtime: callers are blocking code that may or may
        // not run inside a Tokio runtime, of either flavour.
        let result = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(weights::io_err("starting a download runtime"))?
                        .block_on(client.ensure(spec.repo, spec.revision, spec.files, &reporter))
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(WeightsError::Invalid("the download thread crashed".into()))
                })
        });
        *self.progress.current.lock().expect("progress lock") = None;
        result.map_err(|e| match e {
            WeightsError::Missing { file, .. } => WeightsError::Missing {
                file,
                how: self.how_to_provide(spec),
            },
            other => other,
        })
    }

    fn how_to_provide(&self, spec: &ModelSpec) -> String {
        let local = match &self.settings.models_dir {
            Some(d) => format!(
                "put {} in {}",
                spec.files.join(" and "),
                d.join(spec.id).display()
            ),
            None => format!(
                "set MODELS_DIR to a folder with a {}/ sub-folder holding {}",
                spec.id,
                spec.files.join(" and ")
            ),
        };
        if self.settings.offline {
            format!(
                "{local}, or unset OFFLINE to download it from huggingface.co/{}{}",
                spec.repo,
                if spec.gated {
                    " (a gated repository: accept its licence and set HF_TOKEN)"
                } else {
                    ""
                }
            )
        } else {
            local
        }
    }
}

/// The checkpoint of a segmenter in `dir`: the catalogue's file name, else the only
/// `.pth` / `.pt` / `.safetensors` there.
fn checkpoint_in(dir: &Path, spec: &ModelSpec) -> Result<PathBuf, WeightsError> {
    for f in spec.files {
        let p = dir.join(f);
        if p.is_file() {
            return Ok(p);
        }
        if let Some(name) = Path::new(f).file_name()
            && dir.join(name).is_file()
        {
            return Ok(dir.join(name));
        }
    }
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("pth" | "pt" | "safetensors")
                        )
                })
                .collect()
        })
        .unwrap_or_default();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(WeightsError::Missing {
            file: dir.join(spec.files[0]).display().to_string(),
            how: "a segmenter folder holds one checkpoint (.pth, .pt or .safetensors)".into(),
        }),
    }
}

/// An architecture described by `config.json` next to the checkpoint (our `SamConfig` fields).
fn read_sam_config(dir: &Path) -> Result<Option<SamConfig>, WeightsError> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(weights::io_err(format!("reading {}", path.display())))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| WeightsError::Invalid(format!("{}: {e}", path.display())))
}

fn standard_sam_config(model_id: &str) -> Result<SamConfig, StoreError> {
    Ok(match model_id {
        "sam_hq_tiny" => SamConfig::sam_hq_tiny(),
        "sam_hq_vit_b" => SamConfig::sam_hq_vit_b(),
        "sam_hq_vit_l" => SamConfig::sam_hq_vit_l(),
        "sam_hq_vit_h" => SamConfig::sam_hq_vit_h(),
        "sam_vit_b" => SamConfig::sam_vit_b(),
        "mobile_sam" => SamConfig::mobile_sam(),
        other => {
            return Err(StoreError::Unsupported(format!(
                "no architecture known for segmenter {other:?}"
            )));
        }
    })
}
