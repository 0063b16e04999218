//! DINOv3 embeddings (HF `DINOv3ViTModel`): patch projection, then `[class, registers...,
//! patches...]` with no additive position embedding; positions enter through the rotary
//! embedding ([`super::rope`]) in every attention layer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::config::EncoderConfig;
use super::patchify::PatchEmbed;
use super::rope::Rope;

pub(crate) struct Dinov3Embeddings {
    patch: PatchEmbed,
    /// `[1 + R, C]`: the class token then the registers.
    prefix: Tensor,
    hidden: usize,
    head_dim: usize,
    theta: f64,
    ropes: Mutex<HashMap<(usize, usize), Arc<Rope>>>,
}

impl Dinov3Embeddings {
    pub(crate) fn load(cfg: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.hidden_size;
        let patch = PatchEmbed::load(vb.pp("patch_embeddings"), c, cfg.patch_size)?;
        let cls = vb.get((1, 1, c), "cls_token")?.reshape((1, c))?;
        let prefix = if cfg.num_register_tokens > 0 {
            let reg = vb
                .get((1, cfg.num_register_tokens, c), "register_tokens")?
                .squeeze(0)?;
            Tensor::cat(&[cls, reg], 0)?
        } else {
            cls
        };
        Ok(Dinov3Embeddings {
            patch,
            prefix,
            hidden: c,
            head_dim: cfg.head_dim(),
            theta: cfg.rope_theta,
            ropes: Mutex::new(HashMap::new()),
        })
    }

    /// `pixel_values` `[B, 3, H, W]` → tokens `[B · (1 + R + gh·gw), C]`, the grid and its
    /// rotary tables.
    pub(crate) fn forward(
        &self,
        pixel_values: &Tensor,
    ) -> Result<(Tensor, (usize, usize), Arc<Rope>)> {
        let b = pixel_values.dim(0)?;
        let (patches, (gh, gw)) = self.patch.forward(pixel_values)?;
        let c = self.hidden;
        let np = self.prefix.dim(0)?;
        let prefix = self.prefix.unsqueeze(0)?.broadcast_as((b, np, c))?;
        let tokens = Tensor::cat(&[prefix, patches], 1)?;
        let n = tokens.dim(1)?;
        let rope = self.rope(gh, gw, np)?;
        Ok((tokens.reshape((b * n, c))?, (gh, gw), rope))
    }

    fn rope(&self, gh: usize, gw: usize, prefix: usize) -> Result<Arc<Rope>> {
        let mut cache = self.ropes.lock().expect("rope cache lock");
        if let Some(r) = cache.get(&(gh, gw)) {
            return Ok(r.clone());
        }
        let r = Arc::new(Rope::new(
            gh,
            gw,
            prefix,
            self.head_dim,
            self.theta,
            self.prefix.dtype(),
            self.prefix.device(),
        )?);
        cache.insert((gh, gw), r.clone());
        Ok(r)
    }
}
