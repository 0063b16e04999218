//! Image encoders: DINOv2 (with and without registers) and DINOv3 vision transformers.
//!
//! [`ImageEncoder`] loads Hugging Face checkpoints (`config.json` + safetensors with the
//! `transformers` weight names of `Dinov2Model`, `Dinov2WithRegistersModel` and
//! `DINOv3ViTModel`) and turns normalised pixels into features:
//!
//! - [`ImageEncoder::forward_tokens`]: `last_hidden_state` as transformers returns it,
//!   `[B, 1 + R + gh·gw, C]` (class token, `R` registers, patch tokens row-major), after the final
//!   LayerNorm.
//! - [`ImageEncoder::patch_features`]: the patch tokens only, on the patch grid:
//!   `[B, gh, gw, C]` with `gh = H / p`, `gw = W / p` (floored; pixels beyond the last whole patch
//!   are ignored). Not L2-normalised; the algorithms do that.
//!
//! Any input size with at least one whole patch works: DINOv2 resizes its position embeddings to
//! the grid, DINOv3 computes rotary embeddings for it. [`preprocess`] turns 8-bit images into the
//! normalised input as the reference's image processors do. Exact (erf) GELU throughout.

pub(crate) mod amx;
mod attention;
pub mod bf16;
pub mod config;
pub(crate) mod dense;
mod dinov2;
mod dinov3;
pub(crate) mod kernels;
pub(crate) mod packed_f32;
mod patchify;
pub mod preprocess;
pub mod profiling;
pub mod resize;
mod rope;
mod tasks;
mod vit;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

pub use config::{Activation, EncoderConfig, Family, MlpKind};
pub use preprocess::{Preprocess, RgbImage};

use vit::{Block, Norm};

/// What can go wrong building or running an encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// `config.json` is missing something or describes a model this build does not support.
    #[error("encoder configuration: {0}")]
    Config(String),
    /// A tensor operation failed, or a weight is missing or has the wrong shape.
    #[error("encoder: {0}")]
    Candle(#[from] candle_core::Error),
}

enum Embeddings {
    V2(dinov2::Dinov2Embeddings),
    V3(dinov3::Dinov3Embeddings),
}

/// A DINOv2 or DINOv3 vision transformer with loaded weights.
pub struct ImageEncoder {
    config: EncoderConfig,
    embeddings: Embeddings,
    blocks: Vec<Block>,
    norm: Norm,
    dtype: DType,
    device: Device,
    bf16_matmuls: bool,
}

impl ImageEncoder {
    /// Builds the model from weights under `vb` (the root of an HF checkpoint). The weights are
    /// used in `vb`'s dtype.
    pub fn load(config: &EncoderConfig, vb: VarBuilder) -> Result<Self, EncoderError> {
        let (embeddings, layer_prefix, norm_name) = match config.family {
            Family::Dinov2 | Family::Dinov2WithRegisters => (
                Embeddings::V2(dinov2::Dinov2Embeddings::load(config, vb.pp("embeddings"))?),
                "encoder.layer",
                "layernorm",
            ),
            Family::Dinov3 => (
                Embeddings::V3(dinov3::Dinov3Embeddings::load(config, vb.pp("embeddings"))?),
                "layer",
                "norm",
            ),
        };
        let blocks = (0..config.num_layers)
            .map(|i| Block::load(config, vb.pp(format!("{layer_prefix}.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let norm = Norm::load(&vb.pp(norm_name), config.hidden_size, config.layer_norm_eps)?;
        Ok(ImageEncoder {
            config: config.clone(),
            embeddings,
            blocks,
            norm,
            dtype: vb.dtype(),
            device: vb.device().clone(),
            bf16_matmuls: false,
        })
    }

    /// Reduced precision: the transformer layers' linear weights and their inputs, and
    /// attention's q, k, v and probabilities, are rounded to bfloat16 and multiplied with the
    /// CPU's bf16 dot-product instruction, sums in f32; everything else stays f32 (as PyTorch's
    /// CPU autocast to bf16 and its bf16 attention). Needs an f32 model on the CPU and AVX-512 BF16
    /// ([`bf16::available`]); otherwise an error says why.
    pub fn with_bf16_matmuls(mut self) -> Result<Self, EncoderError> {
        if self.dtype != DType::F32 || !self.device.is_cpu() {
            return Err(EncoderError::Config(
                "bf16 matmuls need an f32 model on the CPU".into(),
            ));
        }
        if !bf16::available() {
            return Err(EncoderError::Config(
                "this CPU has no AVX-512 BF16 instructions for bf16 matmuls".into(),
            ));
        }
        for block in &mut self.blocks {
            block.pack_bf16()?;
        }
        self.bf16_matmuls = true;
        Ok(self)
    }

    /// Whether [`Self::with_bf16_matmuls`] is in effect.
    pub fn bf16_matmuls(&self) -> bool {
        self.bf16_matmuls
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// The dtype the weights are held and computed in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The patch grid `(gh, gw)` of an `height × width` input.
    pub fn grid(&self, height: usize, width: usize) -> (usize, usize) {
        let p = self.config.patch_size;
        (height / p, width / p)
    }

    /// `pixel_values` `[B, 3, H, W]` (any float dtype; converted to the model's) →
    /// `last_hidden_state` `[B, 1 + R + gh·gw, C]` and the grid `(gh, gw)`.
    pub fn forward_tokens(
        &self,
        pixel_values: &Tensor,
    ) -> Result<(Tensor, (usize, usize)), EncoderError> {
        let b = pixel_values.dim(0)?;
        let pixel_values = pixel_values.to_device(&self.device)?;
        let (mut x, grid, rope) = profiling::time("embeddings", || match &self.embeddings {
            Embeddings::V2(e) => {
                let (x, grid) = e.forward(&pixel_values)?;
                Ok((x, grid, None))
            }
            Embeddings::V3(e) => {
                let (x, grid, rope) = e.forward(&pixel_values)?;
                Ok::<_, candle_core::Error>((x, grid, Some(rope)))
            }
        })?;
        for block in &self.blocks {
            x = block.forward(&x, b, rope.as_deref())?;
        }
        let x = profiling::time("final LayerNorm", || self.norm.forward(&x))?;
        let n = x.dim(0)? / b;
        Ok((x.reshape((b, n, self.config.hidden_size))?, grid))
    }

    /// `pixel_values` `[B, 3, H, W]` → patch features `[B, gh, gw, C]`.
    pub fn patch_features(&self, pixel_values: &Tensor) -> Result<Tensor, EncoderError> {
        let (tokens, (gh, gw)) = self.forward_tokens(pixel_values)?;
        let b = tokens.dim(0)?;
        let prefix = self.config.num_prefix_tokens();
        Ok(tokens
            .narrow(1, prefix, gh * gw)?
            .reshape((b, gh, gw, self.config.hidden_size))?)
    }
}
