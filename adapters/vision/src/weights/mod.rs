//! Where model weights come from: local folders, `.pth` checkpoints, the Hugging Face hub cache.
//!
//! - [`load_safetensors`] / [`load_pth`]: files → a candle [`VarBuilder`] (in memory, any dtype).
//! - [`model_dir_files`]: the weight files of a folder in Hugging Face layout (`config.json` +
//!   `model.safetensors`, or shards listed by `model.safetensors.index.json`).
//! - [`load_encoder_dir`]: a DINOv2/DINOv3 folder → a ready [`ImageEncoder`].
//! - [`hub`]: the hub cache layout (`models--org--name/snapshots/<commit>/…`), lookups that never
//!   touch the network, and download on first use with progress ([`progress`]).
//! - [`catalogue()`]: every model this build knows, with repository, files, size and licence.

pub mod catalogue;
pub mod hub;
pub mod progress;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::encoders::{EncoderConfig, EncoderError, ImageEncoder};

pub use catalogue::{ModelKind, ModelSpec, catalogue};
pub use hub::{HubCache, HubClient};
pub use progress::{DownloadProgress, LogProgress, NoProgress, ProgressEvent};

/// What can go wrong finding, downloading or reading weights.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A file is not where it should be; `how` says how to provide it.
    #[error("missing model file {file}: {how}")]
    Missing { file: String, how: String },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The hub answered with an error, or could not be reached.
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    /// A file exists but its content is not what it should be.
    #[error("{0}")]
    Invalid(String),
    /// Decoding tensors failed.
    #[error("reading tensors: {0}")]
    Candle(#[from] candle_core::Error),
    /// The model's configuration is not supported.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> WeightsError {
    let context = context.into();
    move |source| WeightsError::Io { context, source }
}

/// Reads every tensor of the given safetensors files (in memory) into a [`VarBuilder`] that
/// hands them out converted to `dtype` on `device`.
pub fn load_safetensors(
    paths: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, WeightsError> {
    let mut all: HashMap<String, Tensor> = HashMap::new();
    for path in paths {
        if !path.is_file() {
            return Err(WeightsError::Missing {
                file: path.display().to_string(),
                how: "put the safetensors file there or point the model at another folder".into(),
            });
        }
        let tensors = candle_core::safetensors::load(path, device).map_err(|e| {
            WeightsError::Invalid(format!("{} is not a safetensors file: {e}", path.display()))
        })?;
        all.extend(tensors);
    }
    Ok(VarBuilder::from_tensors(all, dtype, device))
}

/// Reads a PyTorch checkpoint (`.pth` / `.pt`, a pickled state dict, as SAM, SAM-HQ and MobileSAM
/// ship them). `key` selects a nested dict (e.g. `"model"` or `"state_dict"`); with `None`, a
/// checkpoint that holds no tensors at the top level but a `model` or `state_dict` entry is read
/// from there.
pub fn load_pth(
    path: &Path,
    key: Option<&str>,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, WeightsError> {
    if !path.is_file() {
        return Err(WeightsError::Missing {
            file: path.display().to_string(),
            how: "put the checkpoint there or point the model at another file".into(),
        });
    }
    let read = |key: Option<&str>| {
        candle_core::pickle::read_all_with_key(path, key).map_err(|e| {
            WeightsError::Invalid(format!(
                "{} is not a readable PyTorch checkpoint: {e}",
                path.display()
            ))
        })
    };
    let mut tensors = read(key)?;
    if tensors.is_empty() && key.is_none() {
        for nested in ["model", "state_dict"] {
            if let Ok(t) = read(Some(nested))
                && !t.is_empty()
            {
                tensors = t;
                break;
            }
        }
    }
    if tensors.is_empty() {
        return Err(WeightsError::Invalid(format!(
            "{} holds no tensors{}",
            path.display(),
            key.map(|k| format!(" under {k:?}")).unwrap_or_default()
        )));
    }
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| t.to_device(device).map(|t| (name, t)))
        .collect::<candle_core::Result<_>>()?;
    Ok(VarBuilder::from_tensors(map, dtype, device))
}

/// The weight files of a model folder in Hugging Face layout: `model.safetensors`, or the shards
/// that `model.safetensors.index.json` lists. Errors name the missing file.
pub fn model_dir_files(dir: &Path) -> Result<Vec<PathBuf>, WeightsError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index)
            .map_err(io_err(format!("reading {}", index.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| WeightsError::Invalid(format!("{} is not JSON: {e}", index.display())))?;
        let map = v
            .get("weight_map")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| {
                WeightsError::Invalid(format!("{} has no weight_map", index.display()))
            })?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    Err(WeightsError::Missing {
        file: single.display().to_string(),
        how: "a model folder needs config.json and model.safetensors (Hugging Face layout)".into(),
    })
}

/// Loads a DINOv2 / DINOv3 image encoder from a folder in Hugging Face layout (a download, a
/// hub-cache snapshot, or a copy made by hand).
pub fn load_encoder_dir(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<ImageEncoder, WeightsError> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            WeightsError::Missing {
                file: config_path.display().to_string(),
                how: "a model folder needs config.json and model.safetensors (Hugging Face layout)"
                    .into(),
            }
        } else {
            WeightsError::Io {
                context: format!("reading {}", config_path.display()),
                source: e,
            }
        }
    })?;
    let config = EncoderConfig::from_json_str(&text)?;
    let vb = load_safetensors(&model_dir_files(dir)?, dtype, device)?;
    Ok(ImageEncoder::load(&config, vb)?)
}
