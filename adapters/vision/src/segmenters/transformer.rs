//! SAM's two-way transformer: prompt tokens and image tokens attend to each other in turn
//! (token self-attention, token-to-image, MLP, image-to-token), then a final token-to-image
//! attention. Weight names: `mask_decoder.transformer.*`.
//!
//! For a batch of prompts on one image, the image tokens entering the first layer are the same for
//! every prompt whenever the dense prompt embedding is (no mask prompt): their key/value/query
//! projections in the first layer are then computed once and broadcast over the batch. They are
//! also the same for every later batch on that image, so [`TwoWayTransformer::prepare`] computes
//! them apart ([`ImageTokens`]) and the caller keeps them with the frame's embedding: successive
//! clicks on one frame skip that work. With mask prompts every prompt has its own image tokens,
//! and the first layer takes them as the later layers do.
//!
//! The cross attentions between the tokens and the image tokens fold their image-side
//! projections into the tokens where the weights are f32 on the CPU
//! ([`super::token_attention`]). In the reduced-precision mode each image-to-token attention
//! also hands the attentions after it its output's bf16 forms ([`Bf16Tokens`]), so that the
//! next layer and the final attention do not round the same image tokens again.

use candle_core::{DType, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::ops::{channels_last, layer_norm, linear, softmax};
use super::token_attention::{Bf16Tokens, FoldedAttention, ImageQueries};
use crate::encoders::dense::Dense;
use crate::encoders::profiling::time;

#[derive(Debug, Clone)]
pub(crate) struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    /// The cross attentions' weights for the folded forms (f32 on the CPU only).
    folded: Option<FoldedAttention>,
}

impl Attention {
    /// `cross`: an attention between the tokens and the image tokens, which gets the folded
    /// forms of [`super::token_attention`].
    fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        downsample: usize,
        cross: bool,
    ) -> Result<Self> {
        let internal = dim / downsample;
        let q_proj = candle_nn::linear(dim, internal, vb.pp("q_proj"))?;
        let k_proj = candle_nn::linear(dim, internal, vb.pp("k_proj"))?;
        let v_proj = candle_nn::linear(dim, internal, vb.pp("v_proj"))?;
        let out_proj = candle_nn::linear(internal, dim, vb.pp("out_proj"))?;
        let folded = if cross {
            FoldedAttention::new(&q_proj, &k_proj, &v_proj, &out_proj, heads)?
        } else {
            None
        };
        Ok(Self {
            q_proj,
            k_proj,
            v_proj,
            out_proj,
            heads,
            folded,
        })
    }

    /// The folded weights, when `x` (an image-side map) can take them.
    fn folded_for(&self, x: &Tensor) -> Option<&FoldedAttention> {
        self.folded
            .as_ref()
            .filter(|_| x.dtype() == DType::F32 && x.device().is_cpu())
    }

    /// Tokens [B, m, C] attend to image tokens `image` [Bk, N, C] (Bk = B or 1), keyed by
    /// image + `pe` [1, N, C], with the image tokens' bf16 forms where there are. Returns
    /// [B, m, C].
    fn tokens_to_image(
        &self,
        tokens: &Tensor,
        image: &Tensor,
        pe: &Tensor,
        rounded: Option<&Bf16Tokens>,
    ) -> Result<Tensor> {
        let q = linear(&self.q_proj, tokens)?;
        match self.folded_for(image) {
            Some(f) => linear(&self.out_proj, &f.tokens_to_image(&q, image, pe, rounded)?),
            None => self.attend(
                &q,
                &linear(&self.k_proj, &image.broadcast_add(pe)?)?,
                &linear(&self.v_proj, image)?,
            ),
        }
    }

    /// Image tokens attend to the tokens (`keys_in` with positional encoding, `values`,
    /// [B, m, C]); returns `norm`(`residual` [Bk, N, C] + the attention output), [B, N, C],
    /// and in the bf16 mode its bf16 forms for the attentions after it (`pe`: the image
    /// tokens' positional encoding).
    fn image_to_tokens(
        &self,
        queries: ImageQueries<'_>,
        (keys_in, values): (&Tensor, &Tensor),
        residual: &Tensor,
        norm: &LayerNorm,
        pe: &Tensor,
    ) -> Result<(Tensor, Option<Bf16Tokens>)> {
        let k = linear(&self.k_proj, keys_in)?;
        let v = linear(&self.v_proj, values)?;
        if let (Some(f), Some(bias)) = (self.folded_for(residual), norm.bias())
            && norm.remove_mean()
            && norm.weight().dtype() == DType::F32
        {
            let (w, b) = (norm.weight().to_vec1::<f32>()?, bias.to_vec1::<f32>()?);
            let eps = norm.eps() as f32;
            return f.image_to_tokens(queries, &k, &v, residual, (&w, &b, eps), Some(pe));
        }
        let q = match queries {
            ImageQueries::PlusPe(pe) => linear(&self.q_proj, &residual.broadcast_add(pe)?)?,
            ImageQueries::Projected(t) => t.clone(),
            ImageQueries::Rounded(_) => {
                candle_core::bail!("image-to-token: bf16 image tokens without the folded form")
            }
        };
        let b = k.dim(0)?;
        let q = if q.dim(0)? == b {
            q
        } else {
            q.broadcast_as((b, q.dim(1)?, q.dim(2)?))?.contiguous()?
        };
        let out = layer_norm(norm, &self.attend(&q, &k, &v)?.broadcast_add(residual)?)?;
        Ok((out, None))
    }

    /// [B, N, I] → [B, heads, N, I/heads]; a 4-d `x` is already separated.
    fn separate(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() == 4 {
            return Ok(x.clone());
        }
        let (b, n, c) = x.dims3()?;
        x.reshape((b, n, self.heads, c / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Attention over already projected q [Bq, Nq, I], k and v [Bk, Nk, I] (Bk = Bq or 1; k and
    /// v may come separated by heads, [Bk, heads, Nk, I/heads]).
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, nq, c) = q.dims3()?;
        if b > 1 && k.dim(0)? == 1 && v.dim(0)? == 1 {
            // Keys and values shared by the batch (the first layer's cached projections): the
            // prompts' queries become rows of one product per head, instead of a batch of
            // small products against broadcast keys (115 → 44-48 ms for 40 prompts).
            let out = self.attend(&q.contiguous()?.reshape((1, b * nq, c))?, k, v)?;
            let width = out.dim(2)?;
            return out.reshape((b, nq, width));
        }
        let q = self.separate(q)?;
        let k = self.separate(k)?;
        let v = self.separate(v)?;
        let hd = c / self.heads;
        let attn = if k.dim(0)? == b {
            q.matmul(&k.t()?)?
        } else {
            q.broadcast_matmul(&k.t()?)?
        };
        let attn = softmax(&(attn / (hd as f64).sqrt())?)?;
        let out = if v.dim(0)? == b {
            attn.matmul(&v)?
        } else {
            attn.broadcast_matmul(&v)?
        };
        let out = out.transpose(1, 2)?.reshape((b, nq, c))?;
        linear(&self.out_proj, &out)
    }

    pub(crate) fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let q = linear(&self.q_proj, q)?;
        let k = linear(&self.k_proj, k)?;
        let v = linear(&self.v_proj, v)?;
        self.attend(&q, &k, &v)
    }
}

/// The image tokens entering the transformer and, when the batch shares them, the first
/// layer's projections of them, which depend on nothing else. [Bi, N, ·] with Bi = 1 when
/// shared by the whole batch.
#[derive(Debug, Clone)]
pub(crate) struct ImageTokens {
    /// Image tokens (embedding + dense prompt embedding), channels last [Bi, N, C].
    keys: Tensor,
    /// Only for shared tokens: with a mask prompt each prompt has its own tokens, which are
    /// used once, and the first layer then takes them as later layers do (for the folded
    /// attentions that is less work than projecting them).
    projections: Option<FirstLayerProjections>,
}

/// The first layer's projections of shared image tokens.
#[derive(Debug, Clone)]
pub(crate) struct FirstLayerProjections {
    /// Token-to-image attention: key and value projections, separated by heads
    /// [1, heads, N, I/heads] (so no prompt pays for that copy).
    t2i_k: Tensor,
    t2i_v: Tensor,
    /// Image-to-token attention: query projection [1, N, I].
    i2t_q: Tensor,
}

impl ImageTokens {
    /// Each prompt's own image tokens, channels last [B, N, C] (mask prompts).
    pub(crate) fn per_prompt(keys: Tensor) -> Self {
        Self {
            keys,
            projections: None,
        }
    }

    /// The tokens for prompts `start..start + n` of the batch (all of them when shared).
    pub(crate) fn prompts(&self, start: usize, n: usize) -> Result<Self> {
        if self.keys.dim(0)? == 1 {
            return Ok(self.clone());
        }
        Ok(Self {
            keys: self.keys.narrow(0, start, n)?,
            projections: None,
        })
    }
}

#[derive(Debug, Clone)]
struct TwoWayBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_t2i: Attention,
    norm2: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    /// The MLP's layers in bf16, in the reduced-precision mode.
    mlp_bf16: Option<(Dense, Dense)>,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_i2t: Attention,
    skip_first_layer_pe: bool,
}

impl TwoWayBlock {
    fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        mlp_dim: usize,
        skip_pe: bool,
    ) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::new(vb.pp("self_attn"), dim, heads, 1, false)?,
            norm1: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            cross_t2i: Attention::new(vb.pp("cross_attn_token_to_image"), dim, heads, 2, true)?,
            norm2: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            lin1: candle_nn::linear(dim, mlp_dim, vb.pp("mlp.lin1"))?,
            lin2: candle_nn::linear(mlp_dim, dim, vb.pp("mlp.lin2"))?,
            mlp_bf16: None,
            norm3: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            norm4: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm4"))?,
            cross_i2t: Attention::new(vb.pp("cross_attn_image_to_token"), dim, heads, 2, true)?,
            skip_first_layer_pe: skip_pe,
        })
    }

    /// queries [B, Nq, C]; keys [Bk, Nk, C] with Bk = B, or 1 when the image tokens are shared by
    /// the whole batch (they become per-prompt in the last step). `first`: this layer's
    /// projections of the image tokens, already computed (the first layer only); `rounded`:
    /// the keys' bf16 forms, where the layer before made them. Returns the new queries and
    /// keys, and the new keys' bf16 forms in the bf16 mode.
    fn forward(
        &self,
        (queries, keys): (&Tensor, &Tensor),
        (query_pe, key_pe): (&Tensor, &Tensor),
        first: Option<&FirstLayerProjections>,
        rounded: Option<&Bf16Tokens>,
    ) -> Result<(Tensor, Tensor, Option<Bf16Tokens>)> {
        let queries = time("transformer: token self-attention", || {
            let queries = if self.skip_first_layer_pe {
                self.self_attn.forward(queries, queries, queries)?
            } else {
                let q = (queries + query_pe)?;
                (queries + self.self_attn.forward(&q, &q, queries)?)?
            };
            layer_norm(&self.norm1, &queries)
        })?;

        // The first layer's projections of the image tokens come from `prepare`; later layers
        // work from the tokens they receive.
        let (t, a) = (&self.cross_t2i, &self.cross_i2t);
        let queries = time("transformer: token-to-image", || {
            let q = (&queries + query_pe)?;
            let attn = match first {
                Some(p) => time("transformer: token-to-image, first layer", || {
                    t.attend(&linear(&t.q_proj, &q)?, &p.t2i_k, &p.t2i_v)
                })?,
                None => t.tokens_to_image(&q, keys, key_pe, rounded)?,
            };
            layer_norm(&self.norm2, &(queries + attn)?)
        })?;

        let queries = time("transformer: token MLP", || {
            let with_residual = match &self.mlp_bf16 {
                Some((lin1, lin2)) => {
                    let hidden = lin1.forward_with(&queries, None, None)?.relu()?;
                    lin2.forward_with(&hidden, Some(&queries), None)?
                }
                None => (&queries + linear(&self.lin2, &linear(&self.lin1, &queries)?.relu()?)?)?,
            };
            layer_norm(&self.norm3, &with_residual)
        })?;

        // Image tokens attend to the prompt tokens.
        let q = (&queries + query_pe)?;
        let image_queries = match (first, rounded) {
            (Some(p), _) => ImageQueries::Projected(&p.i2t_q),
            (None, Some(f)) => ImageQueries::Rounded(f),
            (None, None) => ImageQueries::PlusPe(key_pe),
        };
        let (keys, rounded) = time("transformer: image-to-token", || {
            a.image_to_tokens(image_queries, (&q, &queries), keys, &self.norm4, key_pe)
        })?;
        Ok((queries, keys, rounded))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TwoWayTransformer {
    layers: Vec<TwoWayBlock>,
    final_attn: Attention,
    norm_final: LayerNorm,
}

impl TwoWayTransformer {
    pub(crate) fn new(
        vb: VarBuilder,
        depth: usize,
        dim: usize,
        heads: usize,
        mlp_dim: usize,
    ) -> Result<Self> {
        let layers = (0..depth)
            .map(|i| TwoWayBlock::new(vb.pp(format!("layers.{i}")), dim, heads, mlp_dim, i == 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            final_attn: Attention::new(vb.pp("final_attn_token_to_image"), dim, heads, 2, true)?,
            norm_final: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm_final_attn"))?,
        })
    }

    /// Puts the cross attentions' products against the folded token rows (see
    /// [`super::token_attention`]) and the token MLPs in bf16: the reduced-precision mode of
    /// the mask decoder.
    pub(crate) fn pack_bf16(&mut self) -> Result<()> {
        // As the folded attentions: only where the CPU has the bf16 kernels (elsewhere their
        // portable form is far slower than the f32 products).
        if crate::encoders::bf16::available() {
            let dense = |l: &Linear| -> Result<Dense> {
                let mut d = Dense::new(l.weight().clone(), l.bias().cloned());
                d.pack_bf16()?;
                Ok(d)
            };
            for layer in &mut self.layers {
                layer.mlp_bf16 = Some((dense(&layer.lin1)?, dense(&layer.lin2)?));
            }
        }
        let cross = self
            .layers
            .iter_mut()
            .flat_map(|l| [&mut l.cross_t2i, &mut l.cross_i2t])
            .chain([&mut self.final_attn]);
        for attention in cross {
            if let Some(folded) = &mut attention.folded {
                folded.pack_bf16();
            }
        }
        Ok(())
    }

    /// The image tokens: `image` [Bi, C, h, w] (embedding + dense prompt embedding), `key_pe`
    /// [1, h*w, C] (the positional encoding, channels last). With Bi = 1 (no mask prompt) the
    /// first layer's projections of them are computed here too.
    pub(crate) fn prepare(&self, image: &Tensor, key_pe: &Tensor) -> Result<ImageTokens> {
        let (bi, c, h, w) = image.dims4()?;
        let keys = channels_last(&image.reshape((bi, c, h * w))?)?;
        if bi > 1 {
            return Ok(ImageTokens {
                keys,
                projections: None,
            });
        }
        let keys_pe = keys.broadcast_add(key_pe)?;
        let first = &self.layers[0];
        Ok(ImageTokens {
            projections: Some(FirstLayerProjections {
                t2i_k: first
                    .cross_t2i
                    .separate(&linear(&first.cross_t2i.k_proj, &keys_pe)?)?,
                t2i_v: first
                    .cross_t2i
                    .separate(&linear(&first.cross_t2i.v_proj, &keys)?)?,
                i2t_q: linear(&first.cross_i2t.q_proj, &keys_pe)?,
            }),
            keys,
        })
    }

    /// `image` from [`Self::prepare`], `key_pe` [1, h*w, C], tokens [B, N, C].
    /// Returns (tokens [B, N, C], image tokens [B, h*w, C]).
    pub(crate) fn forward(
        &self,
        image: &ImageTokens,
        key_pe: &Tensor,
        tokens: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let mut keys = image.keys.clone();
        let mut queries = tokens.clone();
        let mut rounded = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let first = image.projections.as_ref().filter(|_| i == 0);
            let (q, k, r) =
                layer.forward((&queries, &keys), (tokens, key_pe), first, rounded.as_ref())?;
            (queries, keys, rounded) = (q, k, r);
        }
        let queries = time("transformer: final token-to-image", || {
            let q = (&queries + tokens)?;
            let attn = self
                .final_attn
                .tokens_to_image(&q, &keys, key_pe, rounded.as_ref())?;
            layer_norm(&self.norm_final, &(queries + attn)?)
        })?;
        Ok((queries, keys))
    }
}
