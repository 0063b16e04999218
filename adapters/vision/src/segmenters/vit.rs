//! SAM's ViT image encoder (ViT-B/L/H): 16x16 patches, absolute position embedding, blocks with
//! windowed or global attention and decomposed relative position biases, and the neck. It also
//! returns the output of every global-attention block; SAM-HQ uses the first of them.
//!
//! Weight names follow the original SAM / SAM-HQ checkpoints (`image_encoder.blocks.N.attn.qkv`,
//! `image_encoder.pos_embed`, ...).

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::ops::{Conv, LayerNorm2d, gelu, softmax};

/// Hyper-parameters of a SAM ViT image encoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VitConfig {
    pub img_size: usize,
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub window_size: usize,
    pub global_attn_indexes: Vec<usize>,
    pub out_chans: usize,
}

impl VitConfig {
    /// SAM ViT-B at 1024 px.
    pub fn vit_b() -> Self {
        Self {
            img_size: 1024,
            patch_size: 16,
            embed_dim: 768,
            depth: 12,
            num_heads: 12,
            mlp_ratio: 4.0,
            window_size: 14,
            global_attn_indexes: vec![2, 5, 8, 11],
            out_chans: 256,
        }
    }

    /// SAM ViT-L at 1024 px.
    pub fn vit_l() -> Self {
        Self {
            embed_dim: 1024,
            depth: 24,
            num_heads: 16,
            global_attn_indexes: vec![5, 11, 17, 23],
            ..Self::vit_b()
        }
    }

    /// SAM ViT-H at 1024 px.
    pub fn vit_h() -> Self {
        Self {
            embed_dim: 1280,
            depth: 32,
            num_heads: 16,
            global_attn_indexes: vec![7, 15, 23, 31],
            ..Self::vit_b()
        }
    }

    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }
}

#[derive(Debug, Clone)]
struct Attention {
    qkv: Linear,
    proj: Linear,
    /// Relative position tables gathered for this block's (square) input: [s, s, head_dim].
    rel_h: Tensor,
    rel_w: Tensor,
    heads: usize,
    scale: f64,
}

fn gather_rel_pos(table: &Tensor, size: usize) -> Result<Tensor> {
    let (len, hd) = table.dims2()?;
    if len != 2 * size - 1 {
        candle_core::bail!(
            "relative position table has {len} rows, expected {}",
            2 * size - 1
        );
    }
    let idx: Vec<u32> = (0..size)
        .flat_map(|q| (0..size).map(move |k| (q + size - 1 - k) as u32))
        .collect();
    let idx = Tensor::from_vec(idx, size * size, table.device())?;
    table.index_select(&idx, 0)?.reshape((size, size, hd))
}

impl Attention {
    fn new(vb: VarBuilder, dim: usize, heads: usize, size: usize) -> Result<Self> {
        let hd = dim / heads;
        let rel_h = gather_rel_pos(&vb.get((2 * size - 1, hd), "rel_pos_h")?, size)?;
        let rel_w = gather_rel_pos(&vb.get((2 * size - 1, hd), "rel_pos_w")?, size)?;
        Ok(Self {
            qkv: candle_nn::linear(dim, dim * 3, vb.pp("qkv"))?,
            proj: candle_nn::linear(dim, dim, vb.pp("proj"))?,
            rel_h,
            rel_w,
            heads,
            scale: (hd as f64).powf(-0.5),
        })
    }

    /// x: [B, H, W, C] (H = W = the size given at construction).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let nh = self.heads;
        let hd = c / nh;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, h * w, 3, nh, hd))?
            .permute((2, 0, 3, 1, 4))?
            .reshape((3, b * nh, h * w, hd))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let attn = (&q * self.scale)?.matmul(&k.t()?)?;
        // Decomposed relative positions: rel_h[b,qh,qw,kh] = sum_c q[b,qh,qw,c] Rh[qh,kh,c].
        let bn = b * nh;
        let rq = q.reshape((bn, h, w, hd))?;
        let rel_h = rq
            .permute((1, 0, 2, 3))?
            .reshape((h, bn * w, hd))?
            .matmul(&self.rel_h.t()?)? // [h, bn*w, kh]
            .reshape((h, bn, w, h))?
            .permute((1, 0, 2, 3))?; // [bn, qh, qw, kh]
        let rel_w = rq
            .permute((2, 0, 1, 3))?
            .reshape((w, bn * h, hd))?
            .matmul(&self.rel_w.t()?)? // [w, bn*h, kw]
            .reshape((w, bn, h, w))?
            .permute((1, 2, 0, 3))?; // [bn, qh, qw, kw]
        let attn = attn
            .reshape((bn, h, w, h, w))?
            .broadcast_add(&rel_h.unsqueeze(4)?)?
            .broadcast_add(&rel_w.unsqueeze(3)?)?
            .reshape((bn, h * w, h * w))?;
        let attn = softmax(&attn)?;
        let y = attn
            .matmul(&v)?
            .reshape((b, nh, h, w, hd))?
            .permute((0, 2, 3, 1, 4))?
            .reshape((b, h, w, c))?;
        self.proj.forward(&y)
    }
}

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    window: usize,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let y = self.norm1.forward(x)?;
        let y = if self.window > 0 {
            let ws = self.window;
            let pad_h = (ws - h % ws) % ws;
            let pad_w = (ws - w % ws) % ws;
            let mut p = y;
            if pad_h > 0 {
                p = p.pad_with_zeros(1, 0, pad_h)?;
            }
            if pad_w > 0 {
                p = p.pad_with_zeros(2, 0, pad_w)?;
            }
            let (ph, pw) = (h + pad_h, w + pad_w);
            let win = p
                .reshape((b, ph / ws, ws, pw / ws, ws, c))?
                .permute((0, 1, 3, 2, 4, 5))?
                .reshape((b * (ph / ws) * (pw / ws), ws, ws, c))?;
            let o = self.attn.forward(&win)?;
            let mut o = o
                .reshape((b, ph / ws, pw / ws, ws, ws, c))?
                .permute((0, 1, 3, 2, 4, 5))?
                .reshape((b, ph, pw, c))?;
            if pad_h > 0 || pad_w > 0 {
                o = o.narrow(1, 0, h)?.narrow(2, 0, w)?;
            }
            o
        } else {
            self.attn.forward(&y)?
        };
        let x = (x + y)?;
        let m = self
            .lin2
            .forward(&gelu(&self.lin1.forward(&self.norm2.forward(&x)?)?)?)?;
        x + m
    }
}

/// The SAM ViT image encoder.
#[derive(Debug, Clone)]
pub struct SamVit {
    patch_embed: Conv,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    neck: (Conv, LayerNorm2d, Conv, LayerNorm2d),
    cfg: VitConfig,
}

impl SamVit {
    pub fn new(cfg: &VitConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.embed_dim;
        let g = cfg.grid();
        let p = cfg.patch_size;
        let patch_embed = Conv::new(vb.pp("patch_embed.proj"), 3, d, p, p, 0, true)?;
        let pos_embed = vb.get((1, g, g, d), "pos_embed")?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let bv = vb.pp(format!("blocks.{i}"));
            let window = if cfg.global_attn_indexes.contains(&i) {
                0
            } else {
                cfg.window_size
            };
            let size = if window == 0 { g } else { window };
            let hidden = (d as f64 * cfg.mlp_ratio) as usize;
            blocks.push(Block {
                norm1: candle_nn::layer_norm(d, 1e-6, bv.pp("norm1"))?,
                attn: Attention::new(bv.pp("attn"), d, cfg.num_heads, size)?,
                norm2: candle_nn::layer_norm(d, 1e-6, bv.pp("norm2"))?,
                lin1: candle_nn::linear(d, hidden, bv.pp("mlp.lin1"))?,
                lin2: candle_nn::linear(hidden, d, bv.pp("mlp.lin2"))?,
                window,
            });
        }
        let nv = vb.pp("neck");
        let neck = (
            Conv::new(nv.pp("0"), d, cfg.out_chans, 1, 1, 0, false)?,
            LayerNorm2d::new(cfg.out_chans, nv.pp("1"))?,
            Conv::new(nv.pp("2"), cfg.out_chans, cfg.out_chans, 3, 1, 1, false)?,
            LayerNorm2d::new(cfg.out_chans, nv.pp("3"))?,
        );
        Ok(Self {
            patch_embed,
            pos_embed,
            blocks,
            neck,
            cfg: cfg.clone(),
        })
    }

    /// x: normalised, padded image [B, 3, S, S]. Returns the image embedding [B, out, g, g] and
    /// the output of the first global-attention block [B, g, g, embed_dim].
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.patch_embed.forward(x)?.permute((0, 2, 3, 1))?;
        let mut x = x.broadcast_add(&self.pos_embed)?;
        let mut interm = None;
        for blk in &self.blocks {
            x = blk.forward(&x)?;
            if blk.window == 0 && interm.is_none() {
                interm = Some(x.clone());
            }
        }
        let interm = match interm {
            Some(t) => t,
            None => candle_core::bail!("the ViT has no global-attention block"),
        };
        let y = x.permute((0, 3, 1, 2))?.contiguous()?;
        let y = self.neck.0.forward(&y)?;
        let y = self.neck.1.forward(&y)?;
        let y = self.neck.2.forward(&y)?;
        let y = self.neck.3.forward(&y)?;
        let _ = &self.cfg;
        Ok((y, interm))
    }
}
