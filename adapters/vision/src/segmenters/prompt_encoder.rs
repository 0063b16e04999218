//! SAM's prompt encoder: random-Fourier positional encoding of points and box corners (sparse
//! embeddings) and a small convolutional encoder of low-resolution mask prompts (dense
//! embeddings). Weight names: `prompt_encoder.*` of the SAM / SAM-HQ checkpoints.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::ops::{Conv, LayerNorm2d, channels_last, contiguous_f32, gelu};
use crate::encoders::kernels::gemm_f32;

#[derive(Debug, Clone)]
pub(crate) struct PromptEncoder {
    /// [2, embed_dim / 2]
    gaussian: Tensor,
    /// point_embeddings 0..3: negative point, positive point, box corner 1, box corner 2.
    point_embeddings: Vec<Tensor>,
    not_a_point: Tensor,
    no_mask: Tensor,
    mask_down: (Conv, LayerNorm2d, Conv, LayerNorm2d, Conv),
    /// The mask encoder's last (1x1) convolution as f32 values, prepared once for
    /// [`MaskProjection`] (`None` off the f32 CPU path).
    mask_projection: Option<std::sync::Arc<ProjectionWeights>>,
    embed_dim: usize,
    /// Side of the image embedding grid (64 at 1024 px).
    grid: usize,
    /// Side of the padded model input (1024).
    input_size: usize,
}

impl PromptEncoder {
    pub(crate) fn new(
        vb: VarBuilder,
        embed_dim: usize,
        grid: usize,
        input_size: usize,
        mask_in_chans: usize,
    ) -> Result<Self> {
        let gaussian = vb.get(
            (2, embed_dim / 2),
            "pe_layer.positional_encoding_gaussian_matrix",
        )?;
        let point_embeddings = (0..4)
            .map(|i| vb.get((1, embed_dim), &format!("point_embeddings.{i}.weight")))
            .collect::<Result<Vec<_>>>()?;
        let md = vb.pp("mask_downscaling");
        let q = mask_in_chans / 4;
        let mask_down = (
            Conv::new(md.pp("0"), 1, q, 2, 2, 0, true)?,
            LayerNorm2d::new(q, md.pp("1"))?,
            Conv::new(md.pp("3"), q, mask_in_chans, 2, 2, 0, true)?,
            LayerNorm2d::new(mask_in_chans, md.pp("4"))?,
            Conv::new(md.pp("6"), mask_in_chans, embed_dim, 1, 1, 0, true)?,
        );
        let mask_projection = ProjectionWeights::of(&mask_down.4)?.map(std::sync::Arc::new);
        Ok(Self {
            gaussian,
            point_embeddings,
            mask_projection,
            not_a_point: vb.get((1, embed_dim), "not_a_point_embed.weight")?,
            no_mask: vb.get((1, embed_dim), "no_mask_embed.weight")?,
            mask_down,
            embed_dim,
            grid,
            input_size,
        })
    }

    /// Side of the mask prompts this encoder takes (4 x the embedding grid: 256).
    pub(crate) fn mask_input_size(&self) -> usize {
        4 * self.grid
    }

    /// coords in [0, 1], [..., 2] -> [..., embed_dim].
    fn pe_encoding(&self, coords: &Tensor) -> Result<Tensor> {
        let c = ((coords * 2.0)? - 1.0)?;
        let c = c.broadcast_matmul(&self.gaussian)?;
        let c = (c * (2.0 * std::f64::consts::PI))?;
        Tensor::cat(&[c.sin()?, c.cos()?], candle_core::D::Minus1)
    }

    /// The dense positional encoding of the embedding grid: [1, embed_dim, g, g].
    pub(crate) fn dense_pe(&self, device: &Device) -> Result<Tensor> {
        let g = self.grid;
        let mut v = Vec::with_capacity(g * g * 2);
        for i in 0..g {
            for j in 0..g {
                v.push((j as f32 + 0.5) / g as f32);
                v.push((i as f32 + 0.5) / g as f32);
            }
        }
        let coords = Tensor::from_vec(v, (g, g, 2), device)?;
        self.pe_encoding(&coords)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()
    }

    /// coords in input pixels [B, N, 2] -> [B, N, embed_dim].
    fn pe_pixels(&self, coords: &Tensor) -> Result<Tensor> {
        let s = self.input_size as f64;
        self.pe_encoding(&(coords / s)?)
    }

    /// Sparse and dense embeddings. `points` are (coords [B,N,2] in the resized frame, labels
    /// [B,N] as f32: 1 positive, 0 negative, -1 not-a-point); `boxes` [B,4] x0,y0,x1,y1 in the
    /// resized frame; `masks` [B,1,4g,4g] low-resolution logits.
    pub(crate) fn forward(
        &self,
        points: Option<(&Tensor, &Tensor)>,
        boxes: Option<&Tensor>,
        masks: Option<&Tensor>,
        device: &Device,
    ) -> Result<(Tensor, DenseEmbedding)> {
        let bs = match (points, boxes, masks) {
            (Some((p, _)), _, _) => p.dim(0)?,
            (None, Some(b), _) => b.dim(0)?,
            (None, None, Some(m)) => m.dim(0)?,
            _ => 1,
        };
        let d = self.embed_dim;
        let mut sparse: Vec<Tensor> = Vec::new();
        if let Some((coords, labels)) = points {
            let mut coords = (coords.to_dtype(DType::F32)? + 0.5)?;
            let mut labels = labels.to_dtype(DType::F32)?;
            if boxes.is_none() {
                coords = Tensor::cat(&[coords, Tensor::zeros((bs, 1, 2), DType::F32, device)?], 1)?;
                labels = Tensor::cat(&[labels, Tensor::full(-1f32, (bs, 1), device)?], 1)?;
            }
            let pe = self.pe_pixels(&coords)?;
            let lab = labels.unsqueeze(2)?;
            let is = |v: f64| -> Result<Tensor> { lab.eq(v)?.to_dtype(DType::F32) };
            let (m_na, m_neg, m_pos) = (is(-1.0)?, is(0.0)?, is(1.0)?);
            let keep = (1.0 - &m_na)?;
            let emb = pe
                .broadcast_mul(&keep)?
                .add(&m_na.broadcast_mul(&self.not_a_point)?)?
                .add(&m_neg.broadcast_mul(&self.point_embeddings[0])?)?
                .add(&m_pos.broadcast_mul(&self.point_embeddings[1])?)?;
            sparse.push(emb);
        }
        if let Some(b) = boxes {
            let coords = (b.to_dtype(DType::F32)? + 0.5)?.reshape((bs, 2, 2))?;
            let pe = self.pe_pixels(&coords)?;
            let c0 = pe
                .narrow(1, 0, 1)?
                .broadcast_add(&self.point_embeddings[2])?;
            let c1 = pe
                .narrow(1, 1, 1)?
                .broadcast_add(&self.point_embeddings[3])?;
            sparse.push(Tensor::cat(&[c0, c1], 1)?);
        }
        let sparse = if sparse.is_empty() {
            Tensor::zeros((bs, 0, d), DType::F32, device)?
        } else {
            Tensor::cat(&sparse, 1)?
        };
        let dense = match masks {
            Some(m) => {
                let (c0, n0, c1, n1, c2) = &self.mask_down;
                let x = gelu(&n0.forward(&c0.forward(m)?)?)?;
                let x = gelu(&n1.forward(&c1.forward(&x)?)?)?;
                match &self.mask_projection {
                    Some(weights) if x.device().is_cpu() && x.dtype() == DType::F32 => {
                        DenseEmbedding::Masks(MaskProjection {
                            features: x.contiguous()?,
                            weights: weights.clone(),
                        })
                    }
                    _ => DenseEmbedding::Map(c2.forward(&x)?),
                }
            }
            None => DenseEmbedding::Map(
                self.no_mask
                    .reshape((1, d, 1, 1))?
                    .broadcast_as((bs, d, self.grid, self.grid))?,
            ),
        };
        Ok((sparse, dense))
    }
}

/// The dense prompt embedding, which the decoder adds to the image embedding.
pub(crate) enum DenseEmbedding {
    /// As a map [B or 1, C, g, g] (the no-mask embedding broadcast, or mask prompts off the f32
    /// CPU path).
    Map(Tensor),
    /// Mask prompts, before the mask encoder's last (1x1) convolution: the decoder applies it
    /// while it adds the result to the image tokens ([`MaskProjection::image_tokens`]).
    Masks(MaskProjection),
}

/// Mask prompts' features before the mask encoder's last convolution, and that convolution.
pub(crate) struct MaskProjection {
    /// [B, c, g, g] f32 on the CPU.
    features: Tensor,
    weights: std::sync::Arc<ProjectionWeights>,
}

/// A 1x1 convolution's weight transposed, [c, C], and its bias [C].
#[derive(Debug)]
struct ProjectionWeights {
    weight_t: Vec<f32>,
    bias: Vec<f32>,
}

impl ProjectionWeights {
    /// `None` unless `conv` is a plain 1x1 convolution with f32 weights.
    fn of(conv: &Conv) -> Result<Option<Self>> {
        let p = conv.f32_parameters()?;
        let (out, c, kh, kw) = p.dims;
        if (kh, kw) != (1, 1) || conv.geometry() != (1, 0, 1) {
            return Ok(None);
        }
        let mut weight_t = vec![0f32; c * out];
        for o in 0..out {
            for i in 0..c {
                weight_t[i * out + o] = p.weight[o * c + i];
            }
        }
        Ok(Some(Self {
            weight_t,
            bias: p.bias,
        }))
    }
}

impl MaskProjection {
    /// The image tokens entering the decoder, one map per prompt: `embedding` [1, C, g, g] +
    /// this dense embedding, channels last [B, g·g, C]. One product per block of tokens reads
    /// the features in place and adds onto the image tokens, where the map form computed the
    /// [B, C, g, g] embedding, added it and transposed the sum.
    pub(crate) fn image_tokens(&self, embedding: &Tensor) -> Result<Tensor> {
        let (b, c, g, _) = self.features.dims4()?;
        let (weight_t, bias) = (&self.weights.weight_t, &self.weights.bias);
        let out_c = bias.len();
        if weight_t.len() != c * out_c {
            candle_core::bail!("mask prompts: {c} feature channels for a {out_c}-wide projection");
        }
        let n = g * g;
        if embedding.dims4()? != (1, out_c, g, g) {
            candle_core::bail!(
                "mask prompts: embedding {:?} for {b} prompts of {out_c} channels on {g}x{g}",
                embedding.dims()
            );
        }
        // Image tokens plus the convolution's bias, channels last, shared by the prompts.
        let base = channels_last(&embedding.reshape((1, out_c, n))?)?
            .broadcast_add(&Tensor::from_slice(
                bias,
                (1, 1, out_c),
                embedding.device(),
            )?)?
            .contiguous()?;
        let (bs, bl) = base.storage_and_layout();
        let base = match &*bs {
            candle_core::Storage::Cpu(cpu) => contiguous_f32(cpu, bl)?,
            _ => candle_core::bail!("mask prompts: expected a CPU tensor"),
        };
        let (fs, fl) = self.features.storage_and_layout();
        let features = match &*fs {
            candle_core::Storage::Cpu(cpu) => contiguous_f32(cpu, fl)?,
            _ => candle_core::bail!("mask prompts: expected a CPU tensor"),
        };
        // Each value is written once (the copy of the image tokens) before it is added to:
        // the buffer is not zeroed first.
        let mut out: Vec<f32> = Vec::with_capacity(b * n * out_c);
        const ROWS: usize = 256;
        out.spare_capacity_mut()[..b * n * out_c]
            .par_chunks_mut(n * out_c)
            .enumerate()
            .flat_map(|(p, map)| {
                map.par_chunks_mut(ROWS * out_c)
                    .enumerate()
                    .map(move |(i, d)| (p, i * ROWS, d))
            })
            .for_each(|(p, r0, dst)| {
                let rows = dst.len() / out_c;
                let from = &base[r0 * out_c..(r0 + rows) * out_c];
                for (d, &v) in dst.iter_mut().zip(from) {
                    d.write(v);
                }
                // SAFETY: every value of `dst` was just written (`from` has its length).
                let dst = unsafe { crate::encoders::kernels::assume_written(dst) };
                // dst[rows x C] += features[p] viewed as [rows x c] (NCHW, so a token's
                // channels are a plane apart) · Wᵀ [c x C].
                gemm_f32(
                    (rows, out_c, c),
                    dst,
                    (out_c, 1),
                    true,
                    &features[p * c * n + r0..],
                    (1, n),
                    weight_t,
                    (out_c, 1),
                    gemm::Parallelism::None,
                );
            });
        // SAFETY: the blocks cover every prompt's rows, each written in full above.
        unsafe { out.set_len(b * n * out_c) };
        Tensor::from_vec(out, (b, n, out_c), embedding.device())
    }
}
