//! DINOv2 embeddings (HF `Dinov2Model` and `Dinov2WithRegistersModel`): patch projection, class
//! token, learned position embeddings resized to the input's patch grid, register tokens.
//!
//! The position embeddings are resized exactly as transformers does it: left as they are when
//! the grid has as many patches as the trained one and the image is square; otherwise bicubic
//! (`align_corners=False`), antialiased for the with-registers model and plain for the original
//! one, computed in `f32`. Resized tables are cached per grid size.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{EncoderConfig, Family};
use super::patchify::PatchEmbed;
use super::resize::{Filter, resize_aa, resize_bicubic};

pub(crate) struct Dinov2Embeddings {
    patch: PatchEmbed,
    cls: Tensor,
    registers: Option<Tensor>,
    /// `[1 + side², C]` as trained, in `f32`.
    positions: Tensor,
    side: usize,
    antialias: bool,
    hidden: usize,
    dtype: DType,
    cache: Mutex<HashMap<(usize, usize, bool), Tensor>>,
}

impl Dinov2Embeddings {
    pub(crate) fn load(cfg: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.hidden_size;
        let patch = PatchEmbed::load(vb.pp("patch_embeddings.projection"), c, cfg.patch_size)?;
        let grid = cfg.image_size / cfg.patch_size;
        let positions = vb
            .get((1, grid * grid + 1, c), "position_embeddings")?
            .squeeze(0)?
            .to_dtype(DType::F32)?;
        let registers = if cfg.family == Family::Dinov2WithRegisters {
            Some(
                vb.get((1, cfg.num_register_tokens, c), "register_tokens")?
                    .squeeze(0)?,
            )
        } else {
            None
        };
        Ok(Dinov2Embeddings {
            patch,
            cls: vb.get((1, 1, c), "cls_token")?.reshape((1, c))?,
            registers,
            positions,
            side: grid,
            antialias: cfg.family == Family::Dinov2WithRegisters,
            hidden: c,
            dtype: vb.dtype(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Position embeddings for a `gh × gw` grid of an image that is `square` or not:
    /// `[1 + gh·gw, C]` in the model's dtype.
    fn positions_for(&self, gh: usize, gw: usize, square: bool) -> Result<Tensor> {
        if gh * gw == self.side * self.side && square {
            return self.positions.to_dtype(self.dtype);
        }
        let key = (gh, gw, square);
        if let Some(t) = self.cache.lock().expect("cache lock").get(&key) {
            return Ok(t.clone());
        }
        let c = self.hidden;
        let s = self.side;
        // [side², C] → planar [C, side, side]
        let planar: Vec<f32> = self
            .positions
            .narrow(0, 1, s * s)?
            .t()?
            .contiguous()?
            .flatten_all()?
            .to_vec1()?;
        let resized = if self.antialias {
            resize_aa(&planar, c, (s, s), (gh, gw), Filter::Bicubic)
        } else {
            resize_bicubic(&planar, c, (s, s), (gh, gw))
        };
        let grid = Tensor::from_vec(resized, (c, gh * gw), self.positions.device())?
            .t()?
            .contiguous()?;
        let table =
            Tensor::cat(&[self.positions.narrow(0, 0, 1)?, grid], 0)?.to_dtype(self.dtype)?;
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key, table.clone());
        Ok(table)
    }

    /// `pixel_values` `[B, 3, H, W]` → tokens `[B · (1 + R + gh·gw), C]` and the grid.
    pub(crate) fn forward(&self, pixel_values: &Tensor) -> Result<(Tensor, (usize, usize))> {
        let (b, _, height, width) = pixel_values.dims4()?;
        let (patches, (gh, gw)) = self.patch.forward(pixel_values)?; // [B, gh·gw, C]
        let c = self.hidden;
        let cls = self.cls.unsqueeze(0)?.broadcast_as((b, 1, c))?;
        let tokens = Tensor::cat(&[cls, patches], 1)?;
        let pos = self.positions_for(gh, gw, height == width)?;
        let tokens = tokens.broadcast_add(&pos)?;
        let tokens = match &self.registers {
            Some(reg) => {
                let r = reg.dim(0)?;
                let reg = reg.unsqueeze(0)?.broadcast_as((b, r, c))?;
                let n = tokens.dim(1)?;
                Tensor::cat(
                    &[tokens.narrow(1, 0, 1)?, reg, tokens.narrow(1, 1, n - 1)?],
                    1,
                )?
            }
            None => tokens,
        };
        let n = tokens.dim(1)?;
        Ok((tokens.reshape((b * n, c))?, (gh, gw)))
    }
}
