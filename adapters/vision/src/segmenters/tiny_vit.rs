//! TinyViT image encoder as used by MobileSAM and SAM-HQ tiny (`sam_hq_vit_tiny.pth`): a
//! convolutional stage, three stages of windowed attention blocks with learned attention biases
//! and depthwise "local" convolutions, and SAM's neck. Besides the 64x64 image embedding it
//! returns the output of stage 1 (after its patch merging), which the HQ decoder consumes.
//!
//! Weight names follow `segment_anything_hq.modeling.tiny_vit_sam` (prefix `image_encoder.`).
//! BatchNorm layers are folded into their convolutions when the weights are loaded.

use std::mem::MaybeUninit;

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::inverted_residual::RowwiseInvertedResidual;
use super::neck::Bf16Neck;
use super::ops::{Conv, LayerNorm2d, layer_norm, softmax};
use crate::encoders::dense::Dense;
use crate::encoders::profiling::time;

/// Hyper-parameters of a TinyViT encoder (the released SAM models use [`TinyVitConfig::vit_5m`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TinyVitConfig {
    pub img_size: usize,
    pub embed_dims: [usize; 4],
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_sizes: [usize; 4],
    pub mlp_ratio: f64,
    pub mbconv_expand_ratio: f64,
    /// Channels of the neck's output (SAM's prompt embedding dimension, 256).
    pub out_chans: usize,
}

impl TinyVitConfig {
    /// TinyViT-5M at 1024 px, as in MobileSAM and SAM-HQ tiny.
    pub fn vit_5m() -> Self {
        Self {
            img_size: 1024,
            embed_dims: [64, 128, 160, 320],
            depths: [2, 2, 6, 2],
            num_heads: [2, 4, 5, 10],
            window_sizes: [7, 7, 14, 7],
            mlp_ratio: 4.0,
            mbconv_expand_ratio: 4.0,
            out_chans: 256,
        }
    }

    /// Side of the output grid (64 at 1024 px).
    pub fn grid(&self) -> usize {
        self.img_size / 16
    }
}

/// TinyViT's convolutional blocks: a 1x1 convolution + GELU, a depthwise 3x3 + GELU and a 1x1
/// convolution. As the inverted-residual block (`MBConv`) it keeps the width, adds the input
/// and applies GELU at the end; as patch merging it changes the width, may stride by 2, and
/// ends with the last convolution. Input and output channels-last, [B, H, W, C].
#[derive(Debug, Clone)]
struct ConvBlock {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    /// Inverted residual (input added, GELU at the end) or patch merging.
    residual: bool,
    /// The three layers as one row-by-row pass (f32 models on the CPU).
    rowwise: Option<RowwiseInvertedResidual>,
    /// The profile stage this block's row pass counts under.
    stage: &'static str,
}

impl ConvBlock {
    /// `MBConv`: `dim` → `dim · expand` → `dim`, plus the input, then GELU.
    fn inverted_residual(vb: VarBuilder, dim: usize, expand: f64) -> Result<Self> {
        let hidden = (dim as f64 * expand) as usize;
        Self::new(
            vb,
            (dim, hidden, dim),
            1,
            true,
            "encoder: inverted residual",
        )
    }

    /// `PatchMerging`: `dim` → `out` → `out`, the depthwise layer with `stride`.
    fn patch_merging(vb: VarBuilder, dim: usize, out: usize, stride: usize) -> Result<Self> {
        Self::new(vb, (dim, out, out), stride, false, "encoder: patch merging")
    }

    fn new(
        vb: VarBuilder,
        (c_in, hidden, c_out): (usize, usize, usize),
        stride: usize,
        residual: bool,
        stage: &'static str,
    ) -> Result<Self> {
        let conv1 = Conv::conv_bn(vb.pp("conv1"), c_in, hidden, 1, 1, 0, 1)?;
        let conv2 = Conv::conv_bn(vb.pp("conv2"), hidden, hidden, 3, stride, 1, hidden)?;
        let conv3 = Conv::conv_bn(vb.pp("conv3"), hidden, c_out, 1, 1, 0, 1)?;
        let rowwise = if vb.dtype() == candle_core::DType::F32 && vb.device().is_cpu() {
            RowwiseInvertedResidual::new(&conv1, &conv2, &conv3, residual, residual)?
        } else {
            None
        };
        Ok(Self {
            conv1,
            conv2,
            conv3,
            residual,
            rowwise,
            stage,
        })
    }

    /// x [B, H, W, C] → [B, H', W', C'].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(block) = &self.rowwise
            && x.dtype() == candle_core::DType::F32
            && x.device().is_cpu()
        {
            return time(self.stage, || block.forward(x));
        }
        let x = x.permute((0, 3, 1, 2))?.contiguous()?;
        let y = self.conv1.forward_fused(&x, None, true)?;
        let y = self.conv2.forward_fused(&y, None, true)?;
        let y = self
            .conv3
            .forward_fused(&y, self.residual.then_some(&x), self.residual)?;
        y.permute((0, 2, 3, 1))?.contiguous()
    }

    /// Switches the row pass's 1x1 convolutions to bf16 weights (the reduced-precision mode).
    fn pack_bf16(&mut self) -> Result<()> {
        match &mut self.rowwise {
            Some(block) => block.pack_bf16(),
            None => Ok(()),
        }
    }
}

/// Window attention with TinyViT's learned per-offset attention biases.
#[derive(Debug, Clone)]
struct Attention {
    norm: LayerNorm,
    qkv: Dense,
    proj: Dense,
    /// [heads, N, N], gathered once from `attention_biases` at load time.
    bias: Tensor,
    /// The same, as f32 values for the CPU kernel.
    bias_f32: Vec<f32>,
    heads: usize,
    key_dim: usize,
    scale: f64,
}

impl Attention {
    fn new(vb: VarBuilder, dim: usize, heads: usize, window: usize) -> Result<Self> {
        let key_dim = dim / heads;
        let norm = candle_nn::layer_norm(dim, 1e-5, vb.pp("norm"))?;
        let mut qkv = Dense::load(&vb.pp("qkv"), heads * key_dim * 3, dim, true)?;
        let mut proj = Dense::load(&vb.pp("proj"), dim, heads * key_dim, true)?;
        qkv.pack_for_cpu()?;
        proj.pack_for_cpu()?;
        // Offsets numbered in first-seen order over all (p1, p2) pairs, as the reference does.
        let points: Vec<(usize, usize)> = (0..window)
            .flat_map(|i| (0..window).map(move |j| (i, j)))
            .collect();
        let mut offsets: Vec<(usize, usize)> = Vec::new();
        let mut idxs = Vec::with_capacity(points.len() * points.len());
        for p1 in &points {
            for p2 in &points {
                let off = (p1.0.abs_diff(p2.0), p1.1.abs_diff(p2.1));
                let id = match offsets.iter().position(|o| *o == off) {
                    Some(id) => id,
                    None => {
                        offsets.push(off);
                        offsets.len() - 1
                    }
                };
                idxs.push(id as u32);
            }
        }
        let biases = vb.get((heads, offsets.len()), "attention_biases")?;
        let n = points.len();
        let idx = Tensor::from_vec(idxs, n * n, biases.device())?;
        let bias = biases.index_select(&idx, 1)?.reshape((1, heads, n, n))?;
        Ok(Self {
            norm,
            qkv,
            proj,
            bias_f32: bias
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()?,
            bias,
            heads,
            key_dim,
            scale: (key_dim as f64).powf(-0.5),
        })
    }

    /// x: [B, N, C] windows.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let normed = time("encoder: attention norm", || layer_norm(&self.norm, x))?;
        let qkv = time("encoder: attention qkv", || {
            self.qkv.forward_with(&normed, None, None)
        })?;
        if qkv.device().is_cpu() && qkv.dtype() == candle_core::DType::F32 {
            let qkv = qkv.contiguous()?;
            let shape = (b, n, self.heads, self.key_dim);
            let y = time("encoder: attention", || {
                crate::encoders::kernels::with_f32(&qkv, |qkv| {
                    biased_attention(qkv, shape, self.scale as f32, &self.bias_f32)
                })
            });
            if let Some(y) = y {
                let y = Tensor::from_vec(y, (b, n, self.heads * self.key_dim), qkv.device())?;
                return time("encoder: attention proj", || {
                    self.proj.forward_with(&y, None, None)
                });
            }
        }
        let qkv = qkv.reshape((b, n, self.heads, 3 * self.key_dim))?;
        let kd = self.key_dim;
        let q = qkv.narrow(3, 0, kd)?.transpose(1, 2)?.contiguous()?;
        let k = qkv.narrow(3, kd, kd)?.transpose(1, 2)?.contiguous()?;
        let v = qkv.narrow(3, 2 * kd, kd)?.transpose(1, 2)?.contiguous()?;
        let attn = (q.matmul(&k.t()?)? * self.scale)?.broadcast_add(&self.bias)?;
        let attn = softmax(&attn)?;
        let y = attn
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, n, self.heads * kd))?;
        self.proj.forward_with(&y, None, None)
    }
}

/// Attention within each of `windows` windows of `n` tokens with a learned additive bias, on
/// the fused projection `qkv` ([windows, n, heads, (q | k | v) × kd], as TinyViT's `qkv` layer
/// lays it out): `softmax(scale · q·kᵀ + bias) · v` per window and head, written as
/// [windows, n, heads × kd]. One parallel task per window and head runs the two products on
/// its q, k and v where they lie (through strides) and the softmax between them, while they
/// are in cache (candle's path made six passes over the whole tensor, with three transposing
/// copies).
fn biased_attention(
    qkv: &[f32],
    (windows, n, heads, kd): (usize, usize, usize, usize),
    scale: f32,
    bias: &[f32],
) -> Vec<f32> {
    use crate::encoders::kernels::{gemm_f32, softmax_row};
    use rayon::prelude::*;
    let c = heads * kd;
    // Every (window, head) item writes its head's columns of its window's rows, which cover
    // the output: not zeroed first.
    let mut out: Vec<f32> = Vec::with_capacity(windows * n * c);
    let dst = super::ops::SendPtr(out.as_mut_ptr());
    (0..windows * heads).into_par_iter().for_each_init(
        || (vec![0f32; n * kd], vec![0f32; n * n]),
        |(ctx, scores), item| {
            let (window, h) = (item / heads, item % heads);
            // The window's q, k and v of this head are read in place, through strides: row i
            // of q at `base + i·3c`, of k and v kd and 2·kd further.
            let base = window * n * 3 * c + h * 3 * kd;
            let serial = gemm::Parallelism::None;
            // scores = q · kᵀ (k read transposed through its strides).
            gemm_f32(
                (n, n, kd),
                scores,
                (n, 1),
                false,
                &qkv[base..],
                (3 * c, 1),
                &qkv[base + kd..],
                (1, 3 * c),
                serial,
            );
            scale_and_bias(scores, &bias[h * n * n..(h + 1) * n * n], scale);
            for row in scores.chunks_exact_mut(n) {
                softmax_row(row);
            }
            gemm_f32(
                (n, kd, n),
                ctx,
                (kd, 1),
                false,
                scores,
                (n, 1),
                &qkv[base + 2 * kd..],
                (3 * c, 1),
                serial,
            );
            for i in 0..n {
                let at = (window * n + i) * c + h * kd;
                // SAFETY: each (window, head) task writes only its own head's columns of its
                // window's rows.
                unsafe {
                    std::ptr::copy_nonoverlapping(ctx[i * kd..].as_ptr(), dst.get().add(at), kd)
                };
            }
        },
    );
    // SAFETY: the items cover every window's rows and every head's columns.
    unsafe { out.set_len(windows * n * c) };
    out
}

crate::encoders::kernels::widest_simd! {
    /// `scores = scores · scale + bias`, element by element.
    fn scale_and_bias(scores: &mut [f32], bias: &[f32], scale: f32) => scale_and_bias_generic
}

#[inline(always)]
fn scale_and_bias_generic(scores: &mut [f32], bias: &[f32], scale: f32) {
    for (s, b) in scores.iter_mut().zip(bias) {
        *s = *s * scale + b;
    }
}

/// Tokens `[b, h·w, c]` (row-major over an h x w map) → windows of `ws x ws` tokens, the map
/// padded with zero tokens at the bottom and right to whole windows: `[count, ws·ws, c]` in
/// (image, window row, window column) order, and the window count.
fn partition_windows(
    x: &[f32],
    (b, h, w, c): (usize, usize, usize, usize),
    ws: usize,
) -> (Vec<f32>, usize) {
    use rayon::prelude::*;
    let (nh, nw) = (h.div_ceil(ws), w.div_ceil(ws));
    let count = b * nh * nw;
    let mut out = vec![0f32; count * ws * ws * c];
    out.par_chunks_exact_mut(ws * ws * c)
        .enumerate()
        .for_each(|(win, dst)| {
            let (img, wy, wx) = (win / (nh * nw), win / nw % nh, win % nw);
            let (x0, cols) = (wx * ws, ws.min(w - wx * ws));
            for r in 0..ws.min(h - wy * ws) {
                let from = ((img * h + wy * ws + r) * w + x0) * c;
                dst[r * ws * c..(r * ws + cols) * c].copy_from_slice(&x[from..from + cols * c]);
            }
        });
    (out, count)
}

/// The inverse of [`partition_windows`]: windows `[count, ws·ws, c]` → tokens `[b, h·w, c]`,
/// the padding tokens dropped.
fn merge_windows(y: &[f32], (b, h, w, c): (usize, usize, usize, usize), ws: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let (nh, nw) = (h.div_ceil(ws), w.div_ceil(ws));
    let len = b * h * w * c;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    // Row by output row: each row gathers its pieces from the windows across it, which
    // cover it (so it is not zeroed first).
    out.spare_capacity_mut()[..len]
        .par_chunks_exact_mut(w * c)
        .enumerate()
        .for_each(|(row, dst)| {
            let (img, yy) = (row / h, row % h);
            let (wy, r) = (yy / ws, yy % ws);
            for wx in 0..nw {
                let (x0, cols) = (wx * ws, ws.min(w - wx * ws));
                let win = (img * nh + wy) * nw + wx;
                let from = &y[(win * ws * ws + r * ws) * c..][..cols * c];
                for (d, v) in dst[x0 * c..(x0 + cols) * c].iter_mut().zip(from) {
                    d.write(*v);
                }
            }
        });
    // SAFETY: the windows across each row cover its w pixels (x0 = wx·ws, cols up to w).
    unsafe { out.set_len(len) };
    out
}

#[derive(Debug, Clone)]
struct TinyVitBlock {
    attn: Attention,
    local_conv: Conv,
    mlp: Mlp,
    window: usize,
    res: usize,
}

impl TinyVitBlock {
    fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        window: usize,
        mlp_ratio: f64,
        res: usize,
    ) -> Result<Self> {
        let hidden = (dim as f64 * mlp_ratio) as usize;
        let mut fc1 = Dense::load(&vb.pp("mlp.fc1"), hidden, dim, true)?;
        let mut fc2 = Dense::load(&vb.pp("mlp.fc2"), dim, hidden, true)?;
        fc1.pack_for_cpu()?;
        fc2.pack_for_cpu()?;
        let mlp = Mlp::new(
            candle_nn::layer_norm(dim, 1e-5, vb.pp("mlp.norm"))?,
            fc1,
            fc2,
        )?;
        Ok(Self {
            attn: Attention::new(vb.pp("attn"), dim, heads, window)?,
            local_conv: Conv::conv_bn(vb.pp("local_conv"), dim, dim, 3, 1, 1, dim)?,
            mlp,
            window,
            res,
        })
    }

    /// Attention within windows of `window × window` tokens (the whole map when it is one
    /// window), padding the map to whole windows. x: [B, L, C] → [B, L, C].
    fn windowed_attention(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, c) = x.dims3()?;
        let (h, w, ws) = (self.res, self.res, self.window);
        if h == ws && w == ws {
            return self.attn.forward(x);
        }
        if x.dtype() == candle_core::DType::F32 && x.device().is_cpu() {
            // One gathering pass into the windows and one scattering pass back, where the
            // composed form below pads, transposes and crops in four copies of the map.
            let x = x.contiguous()?;
            let windows = crate::encoders::kernels::with_f32(&x, |xs| {
                partition_windows(xs, (b, h, w, c), ws)
            });
            if let Some((windows, count)) = windows {
                let windows = Tensor::from_vec(windows, (count, ws * ws, c), x.device())?;
                let y = self.attn.forward(&windows)?.contiguous()?;
                let out = crate::encoders::kernels::with_f32(&y, |ys| {
                    merge_windows(ys, (b, h, w, c), ws)
                });
                if let Some(out) = out {
                    return Tensor::from_vec(out, (b, l, c), x.device());
                }
            }
        }
        let pad_b = (ws - h % ws) % ws;
        let pad_r = (ws - w % ws) % ws;
        let mut xi = x.reshape((b, h, w, c))?;
        if pad_b > 0 {
            xi = xi.pad_with_zeros(1, 0, pad_b)?;
        }
        if pad_r > 0 {
            xi = xi.pad_with_zeros(2, 0, pad_r)?;
        }
        let (ph, pw) = (h + pad_b, w + pad_r);
        let (nh, nw) = (ph / ws, pw / ws);
        let win = xi
            .reshape((b, nh, ws, nw, ws, c))?
            .transpose(2, 3)?
            .reshape((b * nh * nw, ws * ws, c))?;
        let y = self.attn.forward(&win)?;
        let mut y = y
            .reshape((b, nh, nw, ws, ws, c))?
            .transpose(2, 3)?
            .reshape((b, ph, pw, c))?;
        if pad_b > 0 || pad_r > 0 {
            y = y.narrow(1, 0, h)?.narrow(2, 0, w)?;
        }
        y.reshape((b, l, c))
    }

    /// x: [B, L, C] with L = res * res.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, c) = x.dims3()?;
        let (h, w) = (self.res, self.res);
        let attn = time("encoder: attention, with windowing (total)", || {
            self.windowed_attention(x)
        })?;
        // x + attn feeds only the local convolution, whose output is the MLP's residual.
        let local = time("encoder: local conv", || {
            self.local_conv.depthwise_tokens(x, Some(&attn), (h, w))
        })?;
        let x = match local {
            Some(y) => y,
            None => {
                let x = (x + attn)?;
                let xc = x.transpose(1, 2)?.reshape((b, c, h, w))?;
                let xc = self.local_conv.forward(&xc)?;
                xc.reshape((b, c, l))?.transpose(1, 2)?.contiguous()?
            }
        };
        time("encoder: mlp", || self.mlp.forward(&x))
    }

    /// Switches the block's linear layers to bf16 weights (the reduced-precision mode).
    fn pack_bf16(&mut self) -> Result<()> {
        self.attn.qkv.pack_bf16()?;
        self.attn.proj.pack_bf16()?;
        self.mlp.fc1.pack_bf16()?;
        self.mlp.fc2.pack_bf16()
    }
}

/// The block's MLP: x + fc2(GELU(fc1(LayerNorm(x)))). On f32 CPU data it runs in blocks of
/// rows, so that each block's hidden activations (4x the width) stay in cache between the two
/// GEMMs instead of going through memory as a whole [L, 4C] map.
#[derive(Debug, Clone)]
struct Mlp {
    norm: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    /// The f32 values the row-blocked pass needs (`None` off the CPU or without biases).
    rows: Option<MlpRowParams>,
}

/// Per-channel parameters of the row-blocked pass, as f32 values.
#[derive(Debug, Clone)]
struct MlpRowParams {
    dim: usize,
    hidden: usize,
    norm_weight: Vec<f32>,
    norm_bias: Vec<f32>,
    eps: f32,
    b1: Vec<f32>,
    b2: Vec<f32>,
}

/// Rows per block of the row-blocked MLP.
const MLP_ROWS: usize = 128;

impl Mlp {
    fn new(norm: LayerNorm, fc1: Dense, fc2: Dense) -> Result<Self> {
        let f32s = |t: &Tensor| -> Result<Vec<f32>> {
            t.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()
        };
        let rows = match (norm.bias(), fc1.bias(), fc2.bias()) {
            (Some(nb), Some(b1), Some(b2)) if norm.remove_mean() && b1.device().is_cpu() => {
                Some(MlpRowParams {
                    dim: fc2.out_features()?,
                    hidden: fc1.out_features()?,
                    norm_weight: f32s(norm.weight())?,
                    norm_bias: f32s(nb)?,
                    eps: norm.eps() as f32,
                    b1: f32s(b1)?,
                    b2: f32s(b2)?,
                })
            }
            _ => None,
        };
        Ok(Self {
            norm,
            fc1,
            fc2,
            rows,
        })
    }

    /// x [B, L, dim] → x + fc2(GELU(fc1(norm(x)))).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        use crate::encoders::kernels::with_f32;
        let gelu = Some(crate::encoders::config::Activation::Gelu);
        let row_blocked = x.dtype() == candle_core::DType::F32 && x.device().is_cpu();
        let Some(p) = self.rows.as_ref().filter(|_| row_blocked) else {
            let y = layer_norm(&self.norm, x)?;
            let y = self.fc1.forward_with(&y, None, gelu)?;
            return self.fc2.forward_with(&y, Some(x), None);
        };
        if x.dim(candle_core::D::Minus1)? != p.dim {
            candle_core::bail!("TinyViT MLP: expected width {}, got {:?}", p.dim, x.dims());
        }
        let x = x.contiguous()?;
        // Written block by block, each value once before it is added to: not zeroed first.
        let len = x.elem_count();
        let mut out: Vec<f32> = Vec::with_capacity(len);
        match with_f32(&x, |xs| {
            self.blocks(p, xs, &mut out.spare_capacity_mut()[..len])
        }) {
            Some(r) => r?,
            None => candle_core::bail!("TinyViT MLP: expected a CPU tensor"),
        }
        // SAFETY: `blocks` wrote every block of rows, covering all `len` values.
        unsafe { out.set_len(len) };
        Tensor::from_vec(out, x.shape(), x.device())
    }

    /// The blocks of rows, in parallel.
    fn blocks(&self, p: &MlpRowParams, xs: &[f32], out: &mut [MaybeUninit<f32>]) -> Result<()> {
        use crate::encoders::kernels::{gelu_in_place, layer_norm_rows};
        use rayon::prelude::*;
        let (c, hid) = (p.dim, p.hidden);
        out.par_chunks_mut(MLP_ROWS * c)
            .zip(xs.par_chunks(MLP_ROWS * c))
            .map_init(
                || {
                    (
                        vec![0f32; MLP_ROWS * c],
                        vec![0f32; MLP_ROWS * hid],
                        Vec::new(),
                    )
                },
                |(normed, hidden, scratch), (o, xb)| {
                    let rows = xb.len() / c;
                    let normed = &mut normed[..rows * c];
                    let hidden = &mut hidden[..rows * hid];
                    layer_norm_rows(xb, normed, &p.norm_weight, &p.norm_bias, p.eps);
                    for r in hidden.chunks_exact_mut(hid) {
                        r.copy_from_slice(&p.b1);
                    }
                    self.fc1.matmul_acc_serial(normed, rows, hidden, scratch)?;
                    gelu_in_place(hidden);
                    for (r, xr) in o.chunks_exact_mut(c).zip(xb.chunks_exact(c)) {
                        for ((v, x), b) in r.iter_mut().zip(xr).zip(&p.b2) {
                            v.write(x + b);
                        }
                    }
                    // SAFETY: every value of the block was just written (its rows of c
                    // values, as many as `xb` has).
                    let o = unsafe { crate::encoders::kernels::assume_written(o) };
                    self.fc2.matmul_acc_serial(hidden, rows, o, scratch)
                },
            )
            .collect()
    }
}

/// The TinyViT SAM image encoder.
#[derive(Debug, Clone)]
pub struct TinyVit {
    patch_embed: (Conv, Conv),
    conv_blocks: Vec<ConvBlock>,
    merges: Vec<ConvBlock>,
    stages: Vec<Vec<TinyVitBlock>>,
    neck: (Conv, LayerNorm2d, Conv, LayerNorm2d),
    /// The neck in the reduced-precision mode, on the channels-last tokens.
    neck_bf16: Option<Box<Bf16Neck>>,
    cfg: TinyVitConfig,
}

impl TinyVit {
    /// Switches the transformer blocks' linear layers to bf16 weights (see
    /// [`super::Sam::with_bf16_encoder`]).
    pub(crate) fn pack_bf16(&mut self) -> Result<()> {
        self.stages
            .iter_mut()
            .flatten()
            .try_for_each(TinyVitBlock::pack_bf16)?;
        self.conv_blocks
            .iter_mut()
            .chain(&mut self.merges)
            .try_for_each(ConvBlock::pack_bf16)?;
        let (reduce, first_norm, conv, second_norm) = &self.neck;
        self.neck_bf16 = Bf16Neck::new(reduce, first_norm, conv, second_norm)?.map(Box::new);
        Ok(())
    }

    pub fn new(cfg: &TinyVitConfig, vb: VarBuilder) -> Result<Self> {
        let e = cfg.embed_dims;
        let pe = vb.pp("patch_embed.seq");
        let patch_embed = (
            Conv::conv_bn(pe.pp("0"), 3, e[0] / 2, 3, 2, 1, 1)?,
            Conv::conv_bn(pe.pp("2"), e[0] / 2, e[0], 3, 2, 1, 1)?,
        );
        let l0 = vb.pp("layers.0");
        let conv_blocks = (0..cfg.depths[0])
            .map(|i| {
                ConvBlock::inverted_residual(
                    l0.pp(format!("blocks.{i}")),
                    e[0],
                    cfg.mbconv_expand_ratio,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let base = cfg.img_size / 4;
        let mut merges = Vec::new();
        let mut stages = Vec::new();
        for i in 0..4 {
            let li = vb.pp(format!("layers.{i}"));
            if i > 0 {
                let res = base >> (if i == 3 { 2 } else { i });
                let blocks = (0..cfg.depths[i])
                    .map(|j| {
                        TinyVitBlock::new(
                            li.pp(format!("blocks.{j}")),
                            e[i],
                            cfg.num_heads[i],
                            cfg.window_sizes[i],
                            cfg.mlp_ratio,
                            res,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                stages.push(blocks);
            }
            if i < 3 {
                // The merge into the last stage keeps the resolution (stride 1).
                let stride = if i == 2 { 1 } else { 2 };
                merges.push(ConvBlock::patch_merging(
                    li.pp("downsample"),
                    e[i],
                    e[i + 1],
                    stride,
                )?);
            }
        }
        let nv = vb.pp("neck");
        let neck = (
            Conv::new(nv.pp("0"), e[3], cfg.out_chans, 1, 1, 0, false)?,
            LayerNorm2d::new(cfg.out_chans, nv.pp("1"))?,
            Conv::new(nv.pp("2"), cfg.out_chans, cfg.out_chans, 3, 1, 1, false)?,
            LayerNorm2d::new(cfg.out_chans, nv.pp("3"))?,
        );
        Ok(Self {
            patch_embed,
            conv_blocks,
            merges,
            stages,
            neck,
            neck_bf16: None,
            cfg: cfg.clone(),
        })
    }

    /// x: normalised, padded image [B, 3, S, S]. Returns the image embedding [B, out, g, g] and
    /// the stage-1 features [B, g, g, embed_dims\[2\]] (channels last, as the reference returns).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let b = x.dim(0)?;
        let g = self.cfg.grid();
        // Channels-last from the patch embedding's output to the neck: the convolutional
        // blocks' row pass and the transformer stages' tokens share that layout.
        let mut x = time("encoder: patch embed", || {
            let y = self.patch_embed.0.forward_fused(x, None, true)?;
            self.patch_embed.1.forward_channels_last(&y, false)
        })?;
        for blk in &self.conv_blocks {
            x = blk.forward(&x)?;
        }
        x = self.merges[0].forward(&x)?;
        let mut interm = None;
        for (i, stage) in self.stages.iter().enumerate() {
            let (_, h, w, c) = x.dims4()?;
            let mut t = x.reshape((b, h * w, c))?;
            for blk in stage {
                t = blk.forward(&t)?;
            }
            x = t.reshape((b, h, w, c))?;
            if i + 1 < self.merges.len() {
                x = self.merges[i + 1].forward(&x)?;
            }
            if i == 0 {
                interm = Some(x.clone());
            }
        }
        let interm = match interm {
            Some(t) => t,
            None => candle_core::bail!("TinyViT has no stage 1"),
        };
        let (_, h, w, c) = x.dims4()?;
        if h != g || w != g {
            candle_core::bail!("TinyViT output grid {h}x{w}, expected {g}x{g} (image size {c})");
        }
        if let Some(neck) = self.neck_bf16.as_ref().filter(|_| x.device().is_cpu()) {
            let y = time("encoder: neck", || neck.forward(&x))?;
            return Ok((y, interm));
        }
        let x = x.permute((0, 3, 1, 2))?.contiguous()?;
        let y = time("encoder: neck", || {
            let y = self.neck.0.forward(&x)?;
            let y = self.neck.1.forward(&y)?;
            let y = self.neck.2.forward(&y)?;
            self.neck.3.forward(&y)
        })?;
        Ok((y, interm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn row_blocked_mlp_equals_the_composed_layers() {
        let dev = &Device::Cpu;
        let randn = |shape: &[usize], s: f32| Tensor::randn(0f32, s, shape, dev).unwrap();
        let (dim, hidden) = (24, 96);
        let norm = LayerNorm::new(randn(&[dim], 1.0), randn(&[dim], 0.5), 1e-5);
        let (w1, b1) = (randn(&[hidden, dim], 0.2), randn(&[hidden], 0.5));
        let (w2, b2) = (randn(&[dim, hidden], 0.2), randn(&[dim], 0.5));
        let mut fc1 = Dense::new(w1.clone(), Some(b1.clone()));
        let mut fc2 = Dense::new(w2.clone(), Some(b2.clone()));
        fc1.pack_for_cpu().unwrap();
        fc2.pack_for_cpu().unwrap();
        let mut mlp = Mlp::new(norm.clone(), fc1, fc2).unwrap();
        assert!(
            mlp.rows.is_some(),
            "the row-blocked pass applies to f32 CPU layers"
        );
        // Two images of 300 tokens: whole blocks of rows and a partial one.
        let x = randn(&[2, 300, dim], 2.0);
        let ours = mlp.forward(&x).unwrap();
        // The same layers composed from candle's plain operations.
        let y = candle_nn::Module::forward(&norm, &x).unwrap();
        let y = y.broadcast_matmul(&w1.t().unwrap()).unwrap();
        let y = y.broadcast_add(&b1).unwrap().gelu_erf().unwrap();
        let y = y.broadcast_matmul(&w2.t().unwrap()).unwrap();
        let want = (y.broadcast_add(&b2).unwrap() + &x).unwrap();
        let diff = super::super::ops::max_abs_diff(&ours, &want);
        assert!(diff < 1e-4, "max difference {diff}");
        assert!(mlp.forward(&randn(&[1, 4, dim + 1], 1.0)).is_err());
        // The reduced-precision mode: the same within bf16's rounding of both products'
        // operands (values here are of order 1-10).
        mlp.fc1.pack_bf16().unwrap();
        mlp.fc2.pack_bf16().unwrap();
        let diff = super::super::ops::max_abs_diff(&mlp.forward(&x).unwrap(), &want);
        assert!(diff < 5e-2 && diff > 1e-5, "bf16 max difference {diff}");
    }

    #[test]
    fn windows_partition_and_merge_as_the_composed_tensor_ops_do() {
        // Maps that need padding on both sides, one that does not, and two images.
        for (b, h, w, c, ws) in [(2, 9, 9, 3, 4), (1, 14, 14, 5, 7), (1, 10, 10, 2, 7)] {
            let x = Tensor::randn(0f32, 1.0, (b, h * w, c), &Device::Cpu).unwrap();
            let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let (windows, count) = partition_windows(&xs, (b, h, w, c), ws);
            let (ph, pw) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
            let want = x
                .reshape((b, h, w, c))
                .unwrap()
                .pad_with_zeros(1, 0, ph - h)
                .unwrap()
                .pad_with_zeros(2, 0, pw - w)
                .unwrap()
                .reshape((b, ph / ws, ws, pw / ws, ws, c))
                .unwrap()
                .transpose(2, 3)
                .unwrap()
                .reshape((b * (ph / ws) * (pw / ws), ws * ws, c))
                .unwrap();
            assert_eq!(count, want.dim(0).unwrap());
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(
                windows, want,
                "partition {b}x{h}x{w}x{c} in windows of {ws}"
            );
            assert_eq!(merge_windows(&windows, (b, h, w, c), ws), xs, "merge");
        }
    }
}
