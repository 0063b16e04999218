//! Promptable segmenters: SAM-HQ tiny (TinyViT-5M + HQ decoder, the product default), SAM-HQ
//! ViT-B/L/H, SAM ViT-B/L/H and MobileSAM (TinyViT-5M + plain decoder).
//!
//! Use: [`Sam::from_file`] (a `.pth` checkpoint as released, or the same tensors in
//! `.safetensors`), [`Sam::embed_image`] once per frame (resize of the longest side to 1024 as the
//! reference product does, normalisation, padding, image encoder), then [`Sam::predict`] with a
//! batch of prompts (points with labels 1 / 0 / -1, boxes, low-resolution mask prompts) and
//! [`Sam::upscale_masks`] to get logits at the original image size.
//!
//! Weight names are those of the original SAM / SAM-HQ / MobileSAM checkpoints (as the
//! `segment-anything-hq` package builds them: `image_encoder.*`, `prompt_encoder.*`,
//! `mask_decoder.*`), not Hugging Face `SamModel` names. Parity with the reference is proven by
//! `tests/segmenters.rs` on fixtures from `tools/parity/segmenters.py`.

mod fused;
mod inverted_residual;
mod mask_decoder;
mod neck;
pub(crate) mod ops;
pub mod preprocess;
mod prompt_encoder;
mod tiny_vit;
mod token_attention;
mod transformer;
mod upscale;
mod vit;

use std::path::Path;
use std::sync::OnceLock;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::encoders::profiling::time;
use crate::weights::{self, WeightsError};

pub use mask_decoder::{DecoderConfig, DecoderOutput};
pub use tiny_vit::{TinyVit, TinyVitConfig};
pub use vit::{SamVit, VitConfig};

use mask_decoder::MaskDecoder;
use prompt_encoder::{DenseEmbedding, PromptEncoder};
use transformer::ImageTokens;

/// Which image encoder a SAM model uses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum EncoderConfig {
    TinyVit(TinyVitConfig),
    Vit(VitConfig),
}

impl EncoderConfig {
    pub fn img_size(&self) -> usize {
        match self {
            Self::TinyVit(c) => c.img_size,
            Self::Vit(c) => c.img_size,
        }
    }

    pub fn grid(&self) -> usize {
        match self {
            Self::TinyVit(c) => c.grid(),
            Self::Vit(c) => c.grid(),
        }
    }

    /// Channels of the early feature map the HQ decoder fuses.
    pub fn interm_dim(&self) -> usize {
        match self {
            Self::TinyVit(c) => c.embed_dims[2],
            Self::Vit(c) => c.embed_dim,
        }
    }
}

/// A SAM-family model: image encoder, prompt encoder, mask decoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamConfig {
    pub encoder: EncoderConfig,
    pub decoder: DecoderConfig,
    /// Hidden channels of the mask-prompt encoder (16).
    pub mask_in_chans: usize,
}

impl SamConfig {
    /// SAM-HQ tiny (`sam_hq_vit_tiny.pth`): TinyViT-5M + HQ decoder (vit_dim 160).
    pub fn sam_hq_tiny() -> Self {
        Self {
            encoder: EncoderConfig::TinyVit(TinyVitConfig::vit_5m()),
            decoder: DecoderConfig::sam(Some(160)),
            mask_in_chans: 16,
        }
    }

    /// MobileSAM (`mobile_sam.pt`): TinyViT-5M + the plain SAM decoder.
    pub fn mobile_sam() -> Self {
        Self {
            decoder: DecoderConfig::sam(None),
            ..Self::sam_hq_tiny()
        }
    }

    /// SAM ViT-B (`sam_vit_b_01ec64.pth`).
    pub fn sam_vit_b() -> Self {
        Self {
            encoder: EncoderConfig::Vit(VitConfig::vit_b()),
            decoder: DecoderConfig::sam(None),
            mask_in_chans: 16,
        }
    }

    /// SAM-HQ ViT-B (`sam_hq_vit_b.pth`).
    pub fn sam_hq_vit_b() -> Self {
        Self {
            decoder: DecoderConfig::sam(Some(768)),
            ..Self::sam_vit_b()
        }
    }

    /// SAM-HQ ViT-L (`sam_hq_vit_l.pth`).
    pub fn sam_hq_vit_l() -> Self {
        Self {
            encoder: EncoderConfig::Vit(VitConfig::vit_l()),
            decoder: DecoderConfig::sam(Some(1024)),
            mask_in_chans: 16,
        }
    }

    /// SAM-HQ ViT-H (`sam_hq_vit_h.pth`).
    pub fn sam_hq_vit_h() -> Self {
        Self {
            encoder: EncoderConfig::Vit(VitConfig::vit_h()),
            decoder: DecoderConfig::sam(Some(1280)),
            mask_in_chans: 16,
        }
    }
}

#[derive(Debug, Clone)]
enum Encoder {
    Tiny(TinyVit),
    Vit(SamVit),
}

/// The image side of a prediction: embeddings of one frame and its geometry.
#[derive(Debug, Clone)]
pub struct ImageEmbedding {
    /// [1, C, g, g]
    pub embedding: Tensor,
    /// The early encoder feature map SAM-HQ fuses, [1, g, g, C'] (channels last).
    pub interm: Tensor,
    /// (height, width) of the frame given to [`Sam::embed_image`].
    pub original_size: (usize, usize),
    /// (height, width) after resizing the longest side to the model's input size.
    pub input_size: (usize, usize),
    hq_features: OnceLock<Tensor>,
    /// The decoder's first-layer work on this image for prompts without a mask prompt.
    image_tokens: OnceLock<ImageTokens>,
}

impl ImageEmbedding {
    pub fn new(
        embedding: Tensor,
        interm: Tensor,
        original_size: (usize, usize),
        input_size: (usize, usize),
    ) -> Self {
        Self {
            embedding,
            interm,
            original_size,
            input_size,
            hq_features: OnceLock::new(),
            image_tokens: OnceLock::new(),
        }
    }

    /// The same embedding without the decoder work cached by an earlier [`Sam::predict`].
    pub fn without_cache(&self) -> Self {
        Self::new(
            self.embedding.clone(),
            self.interm.clone(),
            self.original_size,
            self.input_size,
        )
    }
}

/// A batch of B prompts on one image; every part present has B rows. Coordinates are pixels of
/// the original frame (x, y), as given to [`Sam::embed_image`].
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    /// Points [B, N, 2] (f32) and labels [B, N] (1 positive, 0 negative, -1 not-a-point).
    pub points: Option<(Tensor, Tensor)>,
    /// Boxes [B, 4]: x0, y0, x1, y1.
    pub boxes: Option<Tensor>,
    /// Low-resolution mask logits [B, 1, 4g, 4g] (e.g. a previous prediction's output).
    pub masks: Option<Tensor>,
}

/// A SAM-family promptable segmenter.
#[derive(Debug, Clone)]
pub struct Sam {
    encoder: Encoder,
    prompt_encoder: PromptEncoder,
    decoder: MaskDecoder,
    /// The dense positional encoding of the embedding grid, channels last [1, g*g, C].
    key_pe: Tensor,
    cfg: SamConfig,
    device: Device,
}

impl Sam {
    /// Builds the model from weights with the original checkpoint names.
    pub fn new(cfg: &SamConfig, vb: VarBuilder) -> Result<Self> {
        let device = vb.device().clone();
        let encoder = match &cfg.encoder {
            EncoderConfig::TinyVit(c) => Encoder::Tiny(TinyVit::new(c, vb.pp("image_encoder"))?),
            EncoderConfig::Vit(c) => Encoder::Vit(SamVit::new(c, vb.pp("image_encoder"))?),
        };
        if let Some(d) = cfg.decoder.hq_vit_dim
            && d != cfg.encoder.interm_dim()
        {
            candle_core::bail!(
                "HQ decoder expects {d} encoder channels, the encoder gives {}",
                cfg.encoder.interm_dim()
            );
        }
        let prompt_encoder = PromptEncoder::new(
            vb.pp("prompt_encoder"),
            cfg.decoder.transformer_dim,
            cfg.encoder.grid(),
            cfg.encoder.img_size(),
            cfg.mask_in_chans,
        )?;
        let decoder = MaskDecoder::new(vb.pp("mask_decoder"), &cfg.decoder)?;
        let image_pe = prompt_encoder.dense_pe(&device)?; // [1, C, g, g]
        let (_, c, gh, gw) = image_pe.dims4()?;
        let key_pe = ops::channels_last(&image_pe.reshape((1, c, gh * gw))?)?;
        Ok(Self {
            encoder,
            prompt_encoder,
            decoder,
            key_pe,
            cfg: cfg.clone(),
            device,
        })
    }

    /// Loads a checkpoint: `.pth` / `.pt` (a pickled PyTorch state dict, as SAM, SAM-HQ and
    /// MobileSAM ship) or `.safetensors` with the same tensor names. Errors name a missing file.
    pub fn from_file(
        cfg: &SamConfig,
        path: &Path,
        device: &Device,
    ) -> std::result::Result<Self, WeightsError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        let vb = match ext {
            "pth" | "pt" => weights::load_pth(path, None, DType::F32, device)?,
            _ => weights::load_safetensors(&[path.to_path_buf()], DType::F32, device)?,
        };
        Ok(Self::new(cfg, vb)?)
    }

    /// Reduced precision for the image encoder: the linear layers of TinyViT's transformer
    /// blocks (attention q/k/v and projection, MLP) and the 1x1 convolutions of its
    /// convolutional blocks, the bulk of its GEMM work, take bf16 weights and inputs with f32
    /// sums (AVX-512 BF16); the patch embedding, depthwise convolutions, the attention
    /// products, the neck and the mask decoder stay f32. TinyViT encoders on the CPU only, as
    /// an f32 model; otherwise an error says why.
    pub fn with_bf16_encoder(mut self) -> Result<Self> {
        if !crate::encoders::bf16::available() {
            candle_core::bail!("this CPU has no AVX-512 BF16 instructions for a bf16 encoder");
        }
        if !self.device.is_cpu() {
            candle_core::bail!("a bf16 encoder runs on the CPU only");
        }
        match &mut self.encoder {
            Encoder::Tiny(e) => e.pack_bf16()?,
            Encoder::Vit(_) => {
                candle_core::bail!(
                    "a bf16 encoder is available for TinyViT (SAM-HQ tiny, MobileSAM)"
                )
            }
        }
        Ok(self)
    }

    /// Reduced precision for the mask decoder's per-prompt work: SAM-HQ's mask-feature
    /// convolution (`embedding_maskfeature`, 3x3 from 32 to 64 channels on the 256 x 256 map:
    /// 2.4 GFLOP a prompt, the decoder's largest product), the output upscaling's two GEMMs
    /// (0.8 GFLOP) and the two-way transformer's products of the image tokens with the folded
    /// token rows take bf16 operands with f32 sums (AVX-512 BF16). Token-to-image's weighted
    /// sums of the image tokens, the token-side layers, the hypernetworks and the per-image HQ
    /// feature chains stay f32. On the CPU only; a CPU without AVX-512 BF16 gets an error
    /// saying so.
    pub fn with_bf16_decoder(mut self) -> Result<Self> {
        if !crate::encoders::bf16::available() {
            candle_core::bail!("this CPU has no AVX-512 BF16 instructions for a bf16 decoder");
        }
        if !self.device.is_cpu() {
            candle_core::bail!("a bf16 decoder runs on the CPU only");
        }
        self.decoder.pack_bf16()?;
        Ok(self)
    }

    /// Whether [`Self::with_bf16_encoder`] applies to this model's encoder (TinyViT).
    pub fn supports_bf16_encoder(&self) -> bool {
        matches!(self.encoder, Encoder::Tiny(_))
    }

    pub fn config(&self) -> &SamConfig {
        &self.cfg
    }

    pub fn is_hq(&self) -> bool {
        self.decoder.is_hq()
    }

    /// Side of the square model input (1024).
    pub fn img_size(&self) -> usize {
        self.cfg.encoder.img_size()
    }

    /// Side of the low-resolution masks (256).
    pub fn low_res_size(&self) -> usize {
        self.prompt_encoder.mask_input_size()
    }

    /// Runs the image encoder on a normalised, padded input [1, 3, S, S].
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        match &self.encoder {
            Encoder::Tiny(e) => e.forward(x),
            Encoder::Vit(e) => e.forward(x),
        }
    }

    /// Embeds an RGB frame (`rgb` is height x width x 3, row-major u8), resizing it as the
    /// reference product does.
    pub fn embed_image(&self, rgb: &[u8], height: usize, width: usize) -> Result<ImageEmbedding> {
        let s = self.img_size();
        let (resized, nh, nw) = preprocess::resize_longest_side(rgb, height, width, s)?;
        let x = preprocess::normalize_and_pad(&resized, nh, nw, s, &self.device)?;
        let (embedding, interm) = self.encode(&x)?;
        Ok(ImageEmbedding::new(
            embedding,
            interm,
            (height, width),
            (nh, nw),
        ))
    }

    /// Decodes a batch of prompts. With `multimask`, the plain decoder returns its 3
    /// disambiguating masks per prompt; the HQ decoder returns one: the best of the 3 by
    /// predicted IoU plus the HQ token's mask (as `segment-anything-hq` with
    /// `hq_token_only=False`). Without it, both return the single-mask output (plus HQ).
    pub fn predict(
        &self,
        image: &ImageEmbedding,
        prompts: &Prompts,
        multimask: bool,
    ) -> Result<DecoderOutput> {
        let (oh, ow) = image.original_size;
        let (nh, nw) = image.input_size;
        let sx = (nw as f64 / ow as f64) as f32;
        let sy = (nh as f64 / oh as f64) as f32;
        let scale = Tensor::from_vec(vec![sx, sy], (1, 1, 2), &self.device)?;
        let points = match &prompts.points {
            Some((c, l)) => Some((
                c.to_dtype(DType::F32)?.broadcast_mul(&scale)?,
                l.to_dtype(DType::F32)?,
            )),
            None => None,
        };
        let boxes = match &prompts.boxes {
            Some(b) => {
                let n = b.dim(0)?;
                Some(
                    b.to_dtype(DType::F32)?
                        .reshape((n, 2, 2))?
                        .broadcast_mul(&scale)?
                        .reshape((n, 4))?,
                )
            }
            None => None,
        };
        let (sparse, dense) = time("decoder: prompt encoder", || {
            self.prompt_encoder.forward(
                points.as_ref().map(|(c, l)| (c, l)),
                boxes.as_ref(),
                prompts.masks.as_ref(),
                &self.device,
            )
        })?;
        // Without mask prompts the dense embedding is the same for the whole batch, and for every
        // batch on this image: the first layer's work on the image tokens is done once per image.
        let image_tokens = if prompts.masks.is_none() {
            match image.image_tokens.get() {
                Some(t) => t.clone(),
                None => {
                    let dense = match dense {
                        DenseEmbedding::Map(map) => {
                            DenseEmbedding::Map(map.narrow(0, 0, 1)?.contiguous()?)
                        }
                        DenseEmbedding::Masks(_) => {
                            candle_core::bail!("mask features without masks")
                        }
                    };
                    let t = time("decoder: image tokens, first layer", || {
                        self.decoder
                            .prepare_image(&image.embedding, &dense, &self.key_pe)
                    })?;
                    let _ = image.image_tokens.set(t.clone());
                    t
                }
            }
        } else {
            time("decoder: image tokens with mask prompts", || {
                self.decoder
                    .prepare_image(&image.embedding, &dense, &self.key_pe)
            })?
        };
        let hq = if self.decoder.is_hq() {
            let f = match image.hq_features.get() {
                Some(f) => f.clone(),
                None => {
                    let f = time("decoder: HQ features of the image", || {
                        self.decoder.hq_features(&image.embedding, &image.interm)
                    });
                    let f = match f? {
                        Some(f) => f,
                        None => candle_core::bail!("no HQ features"),
                    };
                    let _ = image.hq_features.set(f.clone());
                    f
                }
            };
            Some(f)
        } else {
            None
        };
        self.decoder.forward(
            &image_tokens,
            image.embedding.dim(2)?,
            &self.key_pe,
            &sparse,
            multimask,
            hq.as_ref(),
        )
    }

    /// Low-resolution logits [B, M, 4g, 4g] to logits at the original frame size [B, M, H, W]:
    /// bilinear to the padded input size, crop to the resized frame, bilinear to the original
    /// size (as the reference's `postprocess_masks`). Threshold at 0 for binary masks.
    pub fn upscale_masks(&self, image: &ImageEmbedding, low_res: &Tensor) -> Result<Tensor> {
        preprocess::postprocess_masks(
            low_res,
            self.img_size(),
            image.input_size,
            image.original_size,
        )
    }
}
