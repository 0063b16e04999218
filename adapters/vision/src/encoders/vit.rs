//! The transformer layer DINOv2 and DINOv3 share: pre-norm attention and feed-forward blocks
//! with LayerScale, written for speed on the CPU.
//!
//! Layouts: activations stay 2-D, `[batch · tokens, hidden]`, between blocks, so every linear
//! layer is one plain GEMM. At load time, q/k/v become one `[3·C, C]` projection (a missing key
//! or query bias becomes zeros), the attention scale `1/√d` is folded into the query weights and
//! the LayerScale factors into the output projections; the maths is the same as transformers',
//! the rounding differs only in the last bits.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Products, attention};
use super::config::{Activation, EncoderConfig, Family, MlpKind};
use super::dense::Dense;
use super::kernels;
use super::rope::Rope;

/// LayerNorm over the last dimension.
pub(crate) struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    pub(crate) fn load(vb: &VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Norm {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == candle_core::DType::F64 {
            // candle's fused LayerNorm has no f64 kernel.
            return candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps);
        }
        if let Some(y) = kernels::layer_norm(x, &self.weight, &self.bias, self.eps) {
            return y;
        }
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Gelu => x.gelu_erf(),
        Activation::Silu => x.silu(),
    }
}

enum Mlp {
    Plain {
        fc1: Dense,
        fc2: Dense,
    },
    /// `gate_up` computes gate (first half of the outputs) and up (second half) in one GEMM.
    Gated {
        gate_up: Dense,
        down: Dense,
        hidden: usize,
    },
}

/// One transformer layer.
pub(crate) struct Block {
    norm1: Norm,
    qkv: Dense,
    out: Dense,
    norm2: Norm,
    mlp: Mlp,
    activation: Activation,
    heads: usize,
    head_dim: usize,
}

impl Block {
    /// Loads layer weights under `vb` (`encoder.layer.N` for DINOv2, `layer.N` for DINOv3).
    pub(crate) fn load(cfg: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.hidden_size;
        let dev = vb.device().clone();
        let dtype = vb.dtype();
        let (q, k, v, o) = match cfg.family {
            Family::Dinov2 | Family::Dinov2WithRegisters => {
                let a = vb.pp("attention");
                (
                    Dense::load(&a.pp("attention.query"), c, c, cfg.query_bias)?,
                    Dense::load(&a.pp("attention.key"), c, c, cfg.key_bias)?,
                    Dense::load(&a.pp("attention.value"), c, c, cfg.value_bias)?,
                    Dense::load(&a.pp("output.dense"), c, c, cfg.proj_bias)?,
                )
            }
            Family::Dinov3 => {
                let a = vb.pp("attention");
                (
                    Dense::load(&a.pp("q_proj"), c, c, cfg.query_bias)?,
                    Dense::load(&a.pp("k_proj"), c, c, cfg.key_bias)?,
                    Dense::load(&a.pp("v_proj"), c, c, cfg.value_bias)?,
                    Dense::load(&a.pp("o_proj"), c, c, cfg.proj_bias)?,
                )
            }
        };
        let scale = (cfg.head_dim() as f64).powf(-0.5);
        let zeros = Tensor::zeros(c, dtype, &dev)?;
        let bias_or_zero = |b: Option<Tensor>| b.unwrap_or_else(|| zeros.clone());
        let ((qw, qb), (kw, kb), (vw, vb_)) = (q.into_plain()?, k.into_plain()?, v.into_plain()?);
        let any_bias = qb.is_some() || kb.is_some() || vb_.is_some();
        let qkv_w = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
        let qkv_b = if any_bias {
            let qb = bias_or_zero(qb).affine(scale, 0.0)?;
            Some(Tensor::cat(&[qb, bias_or_zero(kb), bias_or_zero(vb_)], 0)?)
        } else {
            None
        };
        let qkv = Dense::new(qkv_w.contiguous()?, qkv_b);
        let ls1 = vb.pp("layer_scale1").get(c, "lambda1")?;
        let ls2 = vb.pp("layer_scale2").get(c, "lambda1")?;
        let out = o.scaled_rows(&ls1)?;
        let h = cfg.intermediate_size;
        let mlp = match (cfg.family, cfg.mlp) {
            (Family::Dinov3, MlpKind::Plain) => Mlp::Plain {
                fc1: Dense::load(&vb.pp("mlp.up_proj"), h, c, cfg.mlp_bias)?,
                fc2: Dense::load(&vb.pp("mlp.down_proj"), c, h, cfg.mlp_bias)?.scaled_rows(&ls2)?,
            },
            (Family::Dinov3, MlpKind::Gated) => {
                let (gate_w, gate_b) =
                    Dense::load(&vb.pp("mlp.gate_proj"), h, c, cfg.mlp_bias)?.into_plain()?;
                let (up_w, up_b) =
                    Dense::load(&vb.pp("mlp.up_proj"), h, c, cfg.mlp_bias)?.into_plain()?;
                let w = Tensor::cat(&[gate_w, up_w], 0)?;
                let b = match (gate_b, up_b) {
                    (Some(g), Some(u)) => Some(Tensor::cat(&[g, u], 0)?),
                    _ => None,
                };
                Mlp::Gated {
                    gate_up: Dense::new(w, b),
                    down: Dense::load(&vb.pp("mlp.down_proj"), c, h, cfg.mlp_bias)?
                        .scaled_rows(&ls2)?,
                    hidden: h,
                }
            }
            (_, MlpKind::Plain) => Mlp::Plain {
                fc1: Dense::load(&vb.pp("mlp.fc1"), h, c, true)?,
                fc2: Dense::load(&vb.pp("mlp.fc2"), c, h, true)?.scaled_rows(&ls2)?,
            },
            (_, MlpKind::Gated) => Mlp::Gated {
                // DINOv2's SwiGLU stores gate and up stacked, gate first: the fused layout.
                gate_up: Dense::load(&vb.pp("mlp.weights_in"), 2 * h, c, true)?,
                down: Dense::load(&vb.pp("mlp.weights_out"), c, h, true)?.scaled_rows(&ls2)?,
                hidden: h,
            },
        };
        let mut block = Block {
            norm1: Norm::load(&vb.pp("norm1"), c, cfg.layer_norm_eps)?,
            qkv,
            out,
            norm2: Norm::load(&vb.pp("norm2"), c, cfg.layer_norm_eps)?,
            mlp,
            activation: cfg.activation,
            heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
        };
        block.for_each_dense(Dense::pack_for_cpu)?;
        Ok(block)
    }

    /// Applies `f` to every linear layer.
    fn for_each_dense(&mut self, f: impl Fn(&mut Dense) -> Result<()>) -> Result<()> {
        f(&mut self.qkv)?;
        f(&mut self.out)?;
        match &mut self.mlp {
            Mlp::Plain { fc1, fc2 } => {
                f(fc1)?;
                f(fc2)
            }
            Mlp::Gated { gate_up, down, .. } => {
                f(gate_up)?;
                f(down)
            }
        }
    }

    /// `x`: `[batch · tokens, hidden]`, contiguous. Returns the same shape.
    pub(crate) fn forward(&self, x: &Tensor, batch: usize, rope: Option<&Rope>) -> Result<Tensor> {
        if x.dtype() == candle_core::DType::F32 && x.device().is_cpu() {
            // Packed layers run only here, so an f32 CPU input always takes this path.
            return self.forward_fused(&x.contiguous()?, batch, rope);
        }
        let h = self.norm1.forward(x)?;
        let h = self.attention(&h, batch, rope)?;
        let x = (x + h)?;
        let h = self.norm2.forward(&x)?;
        let h = match &self.mlp {
            Mlp::Plain { fc1, fc2 } => {
                fc2.forward(&activate(&fc1.forward(&h)?, self.activation)?)?
            }
            Mlp::Gated {
                gate_up,
                down,
                hidden,
            } => {
                let gu = gate_up.forward(&h)?;
                let gate = activate(&gu.narrow(D::Minus1, 0, *hidden)?, self.activation)?;
                let up = gu.narrow(D::Minus1, *hidden, *hidden)?;
                down.forward(&(gate * up)?)?
            }
        };
        x + h
    }

    /// The same layer through the fused CPU kernels (`f32`, contiguous): bias, residual and
    /// activation folded into the GEMMs, attention without permuted copies.
    fn forward_fused(&self, x: &Tensor, batch: usize, rope: Option<&Rope>) -> Result<Tensor> {
        use super::profiling::time;
        let (rows, c) = x.dims2()?;
        let n = rows / batch;
        let h = time("LayerNorm", || self.norm1.forward(x))?;
        let mut qkv = time("qkv GEMM + bias", || self.qkv.fused(&h, None, None))?;
        if let Some(rope) = rope {
            time("RoPE", || {
                rope.apply_in_place(&mut qkv, batch, self.heads, self.head_dim)
            });
        }
        // The bf16 mode multiplies in bf16 here too, as PyTorch's bf16 attention does.
        let products = if self.qkv.is_bf16() {
            Products::Bf16
        } else {
            Products::F32
        };
        let ctx = time("attention (q·kᵀ, softmax, ·v)", || {
            attention(&qkv, batch, n, self.heads, self.head_dim, products)
        });
        let ctx = Tensor::from_vec(ctx, (rows, c), x.device())?;
        let x = time("out-proj GEMM + bias + residual", || {
            self.out.fused_tensor(&ctx, Some(x), None)
        })?;
        let h = time("LayerNorm", || self.norm2.forward(&x))?;
        match &self.mlp {
            Mlp::Plain { fc1, fc2 } => {
                let a = time("MLP up GEMM + bias + activation", || {
                    fc1.fused_tensor(&h, None, Some(self.activation))
                })?;
                time("MLP down GEMM + bias + residual", || {
                    fc2.fused_tensor(&a, Some(&x), None)
                })
            }
            Mlp::Gated {
                gate_up,
                down,
                hidden,
            } => {
                let gu = time("MLP gate/up GEMM + bias", || {
                    gate_up.fused_tensor(&h, None, None)
                })?;
                let a = time("MLP gating", || {
                    let gate = activate(&gu.narrow(D::Minus1, 0, *hidden)?, self.activation)?;
                    let up = gu.narrow(D::Minus1, *hidden, *hidden)?;
                    gate * up
                })?;
                time("MLP down GEMM + bias + residual", || {
                    down.fused_tensor(&a, Some(&x), None)
                })
            }
        }
    }

    /// Switches the linear layers to bf16 weights.
    pub(crate) fn pack_bf16(&mut self) -> Result<()> {
        self.for_each_dense(Dense::pack_bf16)
    }

    fn attention(&self, x: &Tensor, batch: usize, rope: Option<&Rope>) -> Result<Tensor> {
        let (rows, c) = x.dims2()?;
        let n = rows / batch;
        let (heads, d) = (self.heads, self.head_dim);
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((batch, n, 3, heads, d))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let mut q = qkv.get(0)?;
        let mut k = qkv.get(1)?;
        let v = qkv.get(2)?;
        if let Some(rope) = rope {
            q = rope.apply(&q)?;
            k = rope.apply(&k)?;
        }
        let q = q.reshape((batch * heads, n, d))?;
        let k = k.reshape((batch * heads, n, d))?;
        let v = v.reshape((batch * heads, n, d))?;
        let scores = q.matmul(&k.t()?)?;
        // Softmax in f32 whatever the model's dtype, as PyTorch does: candle's sums a row in the
        // input dtype, and a bf16 sum of a thousand terms stalls once it reaches a few hundred.
        let probs = if scores.dtype() == candle_core::DType::F64 {
            candle_nn::ops::softmax_last_dim(&scores)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(candle_core::DType::F32)?)?
                .to_dtype(scores.dtype())?
        };
        let ctx = probs.matmul(&v)?;
        let ctx = ctx
            .reshape((batch, heads, n, d))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((rows, c))?;
        self.out.forward(&ctx)
    }
}
