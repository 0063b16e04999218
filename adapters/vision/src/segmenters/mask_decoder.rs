//! SAM's mask decoder, plain (SAM, MobileSAM) and HQ (SAM-HQ: an extra HQ output token with its
//! own MLP, and high-quality features fused from the image embedding and an early encoder
//! feature map). Weight names: `mask_decoder.*` of the SAM / SAM-HQ checkpoints.
//!
//! Batches of prompts on one image are decoded together. Work that depends only on the image is
//! done once per batch (the HQ features, the first layer's image-token projections), and the
//! post-transformer upscaling runs in chunks of prompts to bound memory. For the HQ token, the
//! last 3x3 convolution of `embedding_maskfeature` is contracted with the token's hypernetwork
//! vector before it is applied (a linear map followed by a dot product is one smaller linear map),
//! which gives the same logits with 1/(C/8) of that convolution's work.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::fused::ConvNormGelu;
use super::ops::{Mlp, channels_last};
use super::prompt_encoder::DenseEmbedding;
use super::transformer::{ImageTokens, TwoWayTransformer};
use super::upscale::Upscaling;
use crate::encoders::profiling::time;

/// Decoder hyper-parameters (the released models: dim 256, depth 2, 8 heads, MLP 2048, IoU head
/// hidden 256).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecoderConfig {
    pub transformer_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_dim: usize,
    pub iou_head_hidden_dim: usize,
    /// Channels of the encoder feature the HQ decoder fuses; `None` for the plain SAM decoder.
    pub hq_vit_dim: Option<usize>,
}

impl DecoderConfig {
    pub fn sam(hq_vit_dim: Option<usize>) -> Self {
        Self {
            transformer_dim: 256,
            depth: 2,
            num_heads: 8,
            mlp_dim: 2048,
            iou_head_hidden_dim: 256,
            hq_vit_dim,
        }
    }
}

#[derive(Debug, Clone)]
struct HqParts {
    hf_token: Tensor,
    hf_mlp: Mlp,
    compress_vit_feat: Upscaling,
    embedding_encoder: Upscaling,
    /// `embedding_maskfeature` 0-2: conv 3x3, LayerNorm2d, GELU.
    maskfeature: ConvNormGelu,
    /// Last conv of `embedding_maskfeature`: weight [C/8, C/4, 3, 3] and bias [C/8].
    maskfeature_w2: Tensor,
    maskfeature_b2: Tensor,
}

/// Output of the decoder for a batch of B prompts.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// [B, M, 4g, 4g] low-resolution mask logits (M = 1 or 3, see [`super::Sam::predict`]).
    pub low_res_logits: Tensor,
    /// [B, M] predicted IoU.
    pub iou: Tensor,
}

#[derive(Debug, Clone)]
pub(crate) struct MaskDecoder {
    iou_token: Tensor,
    mask_tokens: Tensor,
    transformer: TwoWayTransformer,
    upscaling: Upscaling,
    hyper_mlps: Vec<Mlp>,
    iou_head: Mlp,
    hq: Option<HqParts>,
    dim: usize,
}

/// Prompts decoded together (bounds the working set: see [`MaskDecoder::forward`]).
const CHUNK: usize = 8;

impl MaskDecoder {
    pub(crate) fn new(vb: VarBuilder, cfg: &DecoderConfig) -> Result<Self> {
        let d = cfg.transformer_dim;
        let num_mask_tokens = 4;
        let upscaling = Upscaling::new(vb.pp("output_upscaling"), d)?;
        let hyper_mlps = (0..num_mask_tokens)
            .map(|i| {
                Mlp::new(
                    vb.pp(format!("output_hypernetworks_mlps.{i}")),
                    d,
                    d,
                    d / 8,
                    3,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let hq = match cfg.hq_vit_dim {
            None => None,
            Some(vit_dim) => {
                let cv = vb.pp("compress_vit_feat");
                let ee = vb.pp("embedding_encoder");
                let mf = vb.pp("embedding_maskfeature");
                Some(HqParts {
                    hf_token: vb.get((1, d), "hf_token.weight")?,
                    hf_mlp: Mlp::new(vb.pp("hf_mlp"), d, d, d / 8, 3)?,
                    compress_vit_feat: Upscaling::with_widths(cv, (vit_dim, d, d / 8), false)?,
                    embedding_encoder: Upscaling::with_widths(ee, (d, d / 4, d / 8), false)?,
                    maskfeature: ConvNormGelu::new(mf.pp("0"), mf.pp("1"), d / 8, d / 4)?,
                    maskfeature_w2: mf.pp("3").get((d / 8, d / 4, 3, 3), "weight")?,
                    maskfeature_b2: mf.pp("3").get(d / 8, "bias")?,
                })
            }
        };
        Ok(Self {
            iou_token: vb.get((1, d), "iou_token.weight")?,
            mask_tokens: vb.get((num_mask_tokens, d), "mask_tokens.weight")?,
            transformer: TwoWayTransformer::new(
                vb.pp("transformer"),
                cfg.depth,
                d,
                cfg.num_heads,
                cfg.mlp_dim,
            )?,
            upscaling,
            hyper_mlps,
            iou_head: Mlp::new(
                vb.pp("iou_prediction_head"),
                d,
                cfg.iou_head_hidden_dim,
                4,
                3,
            )?,
            hq,
            dim: d,
        })
    }

    /// Puts the per-prompt work in bf16: the transformer's cross attentions, the output
    /// upscaling and the HQ mask-feature convolution (see [`super::Sam::with_bf16_decoder`]);
    /// and the two chains of the image's HQ features, which are the upscaling's shape.
    pub(crate) fn pack_bf16(&mut self) -> Result<()> {
        self.transformer.pack_bf16()?;
        self.upscaling.pack_bf16()?;
        if let Some(hq) = &mut self.hq {
            hq.maskfeature.pack_bf16();
            hq.embedding_encoder.pack_bf16()?;
            hq.compress_vit_feat.pack_bf16()?;
        }
        Ok(())
    }

    pub(crate) fn is_hq(&self) -> bool {
        self.hq.is_some()
    }

    /// HQ features of one image: embedding_encoder(embedding) + compress_vit_feat(interm),
    /// [1, C/8, 4g, 4g].
    pub(crate) fn hq_features(
        &self,
        embedding: &Tensor,
        interm: &Tensor,
    ) -> Result<Option<Tensor>> {
        let Some(hq) = &self.hq else { return Ok(None) };
        // Both chains take channels-last tokens: the encoder feature already is.
        let (_, c, g, _) = embedding.dims4()?;
        let tokens = channels_last(&embedding.reshape((1, c, g * g))?)?;
        let a = hq.embedding_encoder.forward(&tokens, g)?;
        let (_, gi, _, ci) = interm.dims4()?;
        let b = hq
            .compress_vit_feat
            .forward(&interm.reshape((1, gi * gi, ci))?, gi)?;
        Ok(Some((a + b)?))
    }

    /// The image side of the transformer's first layer: `embedding` [1, C, g, g], `dense` the
    /// prompts' dense embedding (a map [B or 1, C, g, g], 1: no mask prompt, shared by the
    /// batch), `key_pe` [1, g*g, C].
    pub(crate) fn prepare_image(
        &self,
        embedding: &Tensor,
        dense: &DenseEmbedding,
        key_pe: &Tensor,
    ) -> Result<ImageTokens> {
        match dense {
            DenseEmbedding::Map(map) => self
                .transformer
                .prepare(&embedding.broadcast_add(map)?, key_pe),
            DenseEmbedding::Masks(masks) => {
                Ok(ImageTokens::per_prompt(masks.image_tokens(embedding)?))
            }
        }
    }

    /// Decodes B prompts. `image` from [`Self::prepare_image`] on a g x g embedding; `key_pe`
    /// [1, g*g, C]; `sparse` [B, N, C]; `hq_features` from [`Self::hq_features`] for the HQ
    /// decoder.
    pub(crate) fn forward(
        &self,
        image: &ImageTokens,
        g: usize,
        key_pe: &Tensor,
        sparse: &Tensor,
        multimask: bool,
        hq_features: Option<&Tensor>,
    ) -> Result<DecoderOutput> {
        let b = sparse.dim(0)?;
        if b > CHUNK {
            // Prompts are decoded independently. In chunks, each operation's maps (4096 tokens
            // of 256 channels per prompt) stay in cache instead of streaming [B, 4096, 256]
            // tensors through memory once per operation.
            let (mut logits, mut iou) = (Vec::new(), Vec::new());
            for start in (0..b).step_by(CHUNK) {
                let n = CHUNK.min(b - start);
                let out = self.forward(
                    &image.prompts(start, n)?,
                    g,
                    key_pe,
                    &sparse.narrow(0, start, n)?,
                    multimask,
                    hq_features,
                )?;
                logits.push(out.low_res_logits);
                iou.push(out.iou);
            }
            return Ok(DecoderOutput {
                low_res_logits: Tensor::cat(&logits, 0)?,
                iou: Tensor::cat(&iou, 0)?,
            });
        }
        let d = self.dim;
        let mut out_tokens = vec![self.iou_token.clone(), self.mask_tokens.clone()];
        if let Some(hq) = &self.hq {
            out_tokens.push(hq.hf_token.clone());
        }
        let out_tokens = Tensor::cat(&out_tokens, 0)?;
        let n_out = out_tokens.dim(0)?;
        let tokens = Tensor::cat(
            &[
                out_tokens
                    .unsqueeze(0)?
                    .broadcast_as((b, n_out, d))?
                    .contiguous()?,
                sparse.clone(),
            ],
            1,
        )?;
        let (hs, src) = time("decoder: two-way transformer", || {
            self.transformer.forward(image, key_pe, &tokens)
        })?;
        let iou_pred = self.iou_head.forward(&hs.narrow(1, 0, 1)?.squeeze(1)?)?; // [B, 4]
        let mask_tokens_out = hs.narrow(1, 1, n_out - 1)?;
        let mut hyper = Vec::with_capacity(n_out - 1);
        for (i, mlp) in self.hyper_mlps.iter().enumerate() {
            hyper.push(mlp.forward(&mask_tokens_out.narrow(1, i, 1)?)?);
        }
        let hyper_sam = Tensor::cat(&hyper, 1)?; // [B, 4, C/8]
        // Which of the four SAM masks each prompt returns, chosen before any mask is computed
        // so that only those are: with HQ and multimask the one of masks 1-3 with the best
        // predicted IoU (its IoU returned); masks 1-3 for plain multimask; else mask 0.
        let (hyper_rows, iou) = match (self.hq.is_some(), multimask) {
            (true, true) => {
                let iou3 = iou_pred.narrow(1, 1, 3)?.contiguous()?;
                let idx = iou3.argmax_keepdim(D::Minus1)?; // [B, 1] u32
                let iou = iou3.gather(&idx, 1)?;
                let c8 = hyper_sam.dim(2)?;
                let rows = (idx.to_dtype(DType::U32)? + 1.0)?
                    .reshape((b, 1, 1))?
                    .broadcast_as((b, 1, c8))?
                    .contiguous()?;
                (hyper_sam.contiguous()?.gather(&rows, 1)?, iou)
            }
            (false, true) => (hyper_sam.narrow(1, 1, 3)?, iou_pred.narrow(1, 1, 3)?),
            (_, false) => (hyper_sam.narrow(1, 0, 1)?, iou_pred.narrow(1, 0, 1)?),
        };
        let k = hyper_rows.dim(1)?;
        let hyper_hq = match &self.hq {
            Some(hq) => Some(hq.hf_mlp.forward(&mask_tokens_out.narrow(1, 4, 1)?)?), // [B,1,C/8]
            None => None,
        };
        let mut masks = Vec::new();
        let mut start = 0;
        while start < b {
            let n = CHUNK.min(b - start);
            let s = src.narrow(0, start, n)?;
            let hs = hyper_rows.narrow(0, start, n)?.contiguous()?;
            // The upscaled map [n, C/8, 4g, 4g] and the chosen masks hs · map.
            let masks_of = |s: &Tensor| -> Result<(Tensor, Tensor)> {
                let up = time("decoder: upscaling", || self.upscaling.forward(s, g))?;
                let (_, c8, hh, ww) = up.dims4()?;
                let sam = hs.matmul(&up.reshape((n, c8, hh * ww))?)?;
                Ok((sam.reshape((n, k, hh, ww))?, up))
            };
            if let (Some(hq), Some(hh_vec)) = (&self.hq, &hyper_hq) {
                let feats = match hq_features {
                    Some(f) => f,
                    None => candle_core::bail!("the HQ decoder needs the image's HQ features"),
                };
                let hv = hh_vec.narrow(0, start, n)?.squeeze(1)?; // [n, C/8]
                // hv . (W2 * y + b2) = (hv . W2) * y + hv . b2, one output channel per prompt.
                let (c8, c4) = (d / 8, hq.maskfeature_w2.dim(1)?);
                let w2 = hq.maskfeature_w2.reshape((c8, c4 * 9))?;
                let wk = hv.matmul(&w2)?.reshape((n, c4, 3, 3))?; // [n, C/4, 3, 3]
                let bk = hv.matmul(&hq.maskfeature_b2.unsqueeze(1)?)?; // [n, 1]
                // In the reduced-precision mode the upscaling hands the mask-feature kernel
                // its input in bf16 pairs and computes the SAM masks as it goes: the f32 map
                // is never written.
                let pairs = if hq.maskfeature.takes_pairs(c8) {
                    time("decoder: upscaling", || {
                        self.upscaling.forward_masks_and_pairs(&s, g, &hs)
                    })?
                } else {
                    None
                };
                let (sam, conv) = match pairs {
                    Some((sam, pairs)) => (
                        sam,
                        time("decoder: HQ mask features", || {
                            hq.maskfeature.forward_contracted_pairs(&pairs, &wk)
                        })?,
                    ),
                    None => {
                        let (sam, up) = masks_of(&s)?;
                        let conv = time("decoder: HQ mask features", || {
                            hq.maskfeature.forward_contracted(&up, &wk)
                        })?;
                        (sam, conv)
                    }
                };
                let (hh, ww) = (sam.dim(2)?, sam.dim(3)?);
                let conv = conv.broadcast_add(&bk.reshape((n, 1, 1, 1))?)?;
                // + hv . hq_features
                let f = feats.reshape((c8, hh * ww))?;
                let fh = hv.matmul(&f)?.reshape((n, 1, hh, ww))?;
                // The chosen SAM mask plus the HQ mask.
                masks.push(((sam + conv)? + fh)?);
            } else {
                masks.push(masks_of(&s)?.0);
            }
            start += n;
        }
        Ok(DecoderOutput {
            low_res_logits: Tensor::cat(&masks, 0)?,
            iou,
        })
    }
}
