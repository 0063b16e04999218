//! DINOv3's rotary position embedding, as transformers' `DINOv3ViTRopePositionEmbedding` and
//! `apply_rotary_pos_emb` compute it (inference: no coordinate augmentation).
//!
//! Patch centres are normalised to [-1, 1] per axis (`(i + 0.5) / n · 2 - 1`); the angles are
//! `2π · coord · θ^(-k·4/d)` for `k < d/4`, laid out `[y angles, x angles]` and tiled twice to
//! span the head dimension `d`. Queries and keys of the patch tokens are rotated
//! (`x · cos + rotate_half(x) · sin`); the class and register tokens are left alone.

use candle_core::{D, DType, Device, Result, Tensor};

/// Cos/sin tables for one patch grid.
pub(crate) struct Rope {
    /// `[patches, d]`
    cos: Tensor,
    /// `[patches, d]`, the first half negated: `rotate_half(x) · sin = swap_halves(x) · sin_signed`.
    sin_signed: Tensor,
    /// The same tables as plain `f32` data, for the fused CPU path.
    cos_data: Vec<f32>,
    sin_data: Vec<f32>,
    prefix: usize,
    patches: usize,
}

impl Rope {
    /// Tables for a `grid_h × grid_w` patch grid after `prefix` tokens, for heads of `head_dim`.
    pub(crate) fn new(
        grid_h: usize,
        grid_w: usize,
        prefix: usize,
        head_dim: usize,
        theta: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let quarter = head_dim / 4;
        // transformers: 1 / base ** arange(0, 1, 4 / head_dim) in float32.
        let inv_freq: Vec<f32> = (0..quarter)
            .map(|k| {
                let e = (k as f32) * (4.0 / head_dim as f32);
                1.0 / (theta as f32).powf(e)
            })
            .collect();
        let patches = grid_h * grid_w;
        let mut cos = Vec::with_capacity(patches * head_dim);
        let mut sin = Vec::with_capacity(patches * head_dim);
        let two_pi = 2.0 * std::f32::consts::PI;
        let mut row = vec![0f32; head_dim / 2];
        for i in 0..grid_h {
            let y = 2.0 * ((i as f32 + 0.5) / grid_h as f32) - 1.0;
            for j in 0..grid_w {
                let x = 2.0 * ((j as f32 + 0.5) / grid_w as f32) - 1.0;
                for (k, f) in inv_freq.iter().enumerate() {
                    row[k] = two_pi * y * f;
                    row[quarter + k] = two_pi * x * f;
                }
                for _ in 0..2 {
                    cos.extend(row.iter().map(|a| a.cos()));
                }
                sin.extend(row.iter().map(|a| -a.sin()));
                sin.extend(row.iter().map(|a| a.sin()));
            }
        }
        let cos_t = Tensor::from_vec(cos.clone(), (patches, head_dim), device)?.to_dtype(dtype)?;
        let sin_signed =
            Tensor::from_vec(sin.clone(), (patches, head_dim), device)?.to_dtype(dtype)?;
        Ok(Rope {
            cos: cos_t,
            sin_signed,
            cos_data: cos,
            sin_data: sin,
            prefix,
            patches,
        })
    }

    /// Rotates the patch tokens of `x`: `[batch, heads, prefix + patches, d]`.
    pub(crate) fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let half = d / 2;
        let prefix = x.narrow(2, 0, self.prefix)?;
        let patches = x.narrow(2, self.prefix, self.patches)?;
        let swapped = Tensor::cat(
            &[patches.narrow(3, half, half)?, patches.narrow(3, 0, half)?],
            3,
        )?;
        let rotated =
            (patches.broadcast_mul(&self.cos)? + swapped.broadcast_mul(&self.sin_signed)?)?;
        Tensor::cat(&[prefix, rotated], 2)
    }

    /// Rotates, in place, the patch tokens' queries and keys in a fused projection `qkv`
    /// (row-major `[batch·n, 3·heads·d]`, q then k then v along the columns).
    pub(crate) fn apply_in_place(&self, qkv: &mut [f32], batch: usize, heads: usize, d: usize) {
        let c = heads * d;
        let n = self.prefix + self.patches;
        let half = d / 2;
        assert_eq!(qkv.len(), batch * n * 3 * c, "qkv of the stated shape");
        for (t, row) in qkv.chunks_exact_mut(3 * c).enumerate() {
            let token = t % n;
            if token < self.prefix {
                continue;
            }
            let p = token - self.prefix;
            let cos = &self.cos_data[p * d..(p + 1) * d];
            let sin = &self.sin_data[p * d..(p + 1) * d];
            // q and k of every head: columns [0, 2·C) in blocks of d.
            for block in row[..2 * c].chunks_exact_mut(d) {
                let (x1, x2) = block.split_at_mut(half);
                for i in 0..half {
                    let (a, b) = (x1[i], x2[i]);
                    x1[i] = a * cos[i] + b * sin[i];
                    x2[i] = b * cos[half + i] + a * sin[half + i];
                }
            }
        }
    }
}
