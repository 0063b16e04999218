//! A linear layer (`y = x·Wᵀ + b`) that holds its weight in the form its path multiplies
//! with: as loaded (the plain candle path, for f64 models and other devices), packed for the
//! f32 AVX-512 kernel (f32 models on such CPUs, done at load time), or packed in bf16 (the
//! reduced-precision mode). The fused path folds the bias, a residual and the activation into
//! the GEMM ([`kernels::linear_vec`] and its packed siblings).
//!
//! Shared by the DINO encoders' transformer layers and TinyViT's.

use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::bf16::PackedBf16;
use super::config::Activation;
use super::kernels;
use super::packed_f32::{self, PackedF32};

/// A linear layer. Cloning shares the weight, as cloning a candle tensor does.
#[derive(Clone)]
pub(crate) struct Dense {
    weight: Weight,
    bias: Option<Tensor>,
}

/// A linear layer's weight, in the form its path multiplies with.
#[derive(Clone)]
enum Weight {
    /// `[out, in]` as in the checkpoints: at load time, and for the plain candle path (f64
    /// models, other devices).
    Plain(Tensor),
    /// Packed for the f32 AVX-512 kernel (f32 models on such CPUs).
    F32(Arc<PackedF32>),
    /// Packed in bf16, the reduced-precision mode.
    Bf16(Arc<PackedBf16>),
}

impl std::fmt::Debug for Dense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let form = match &self.weight {
            Weight::Plain(_) => "plain",
            Weight::F32(_) => "packed f32",
            Weight::Bf16(_) => "packed bf16",
        };
        f.debug_struct("Dense")
            .field("out_features", &self.out_features().ok())
            .field("weight", &form)
            .field("bias", &self.bias.is_some())
            .finish()
    }
}

impl Dense {
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Dense {
            weight: Weight::Plain(weight),
            bias,
        }
    }

    /// The `[out, in]` weight and the bias, as loaded (before any packing).
    pub(crate) fn into_plain(self) -> Result<(Tensor, Option<Tensor>)> {
        match self.weight {
            Weight::Plain(w) => Ok((w, self.bias)),
            _ => candle_core::bail!("a packed linear layer has no plain weight"),
        }
    }

    /// The weight as row-major f32 `[n, k]` data, whatever its form.
    fn f32_rows(&self) -> Result<(Vec<f32>, usize, usize)> {
        Ok(match &self.weight {
            Weight::Plain(w) => {
                let (n, k) = w.dims2()?;
                let data = w
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1()?;
                (data, n, k)
            }
            Weight::F32(p) => {
                let (n, k) = (p.out_features(), p.in_features());
                let data = (0..n * k).map(|i| p.at(i / k, i % k)).collect();
                (data, n, k)
            }
            Weight::Bf16(_) => candle_core::bail!("a bf16 layer's f32 weight is gone"),
        })
    }

    /// Packs the weight for the f32 kernel (dropping the `[out, in]` copy) when it is f32 on
    /// a CPU that runs the kernel; otherwise leaves it as it is.
    pub(crate) fn pack_for_cpu(&mut self) -> Result<()> {
        let Weight::Plain(w) = &self.weight else {
            return Ok(());
        };
        if w.dtype() != DType::F32 || !w.device().is_cpu() || !packed_f32::available() {
            return Ok(());
        }
        let (w, n, k) = self.f32_rows()?;
        self.weight = Weight::F32(Arc::new(PackedF32::pack(&w, n, k)));
        Ok(())
    }

    pub(crate) fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Whether the weight is in bf16 (the reduced-precision mode).
    pub(crate) fn is_bf16(&self) -> bool {
        matches!(self.weight, Weight::Bf16(_))
    }

    /// `act(x·Wᵀ + b + residual)` for `x` of any rank (the last dimension is the input): the
    /// fused kernels on contiguous f32 CPU data, else candle's ops.
    pub(crate) fn forward_with(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        act: Option<Activation>,
    ) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let n = self.out_features()?;
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("a linear layer's input needs at least one dimension");
        };
        let mut shape = dims.clone();
        *shape.last_mut().expect("a last dimension") = n;
        let rows: usize = lead.iter().product();
        if x.dtype() == DType::F32 && x.device().is_cpu() && rows > 0 {
            let x2 = x.contiguous()?.reshape((rows, k))?;
            let residual2 = match residual {
                Some(r) => Some(r.contiguous()?.reshape((rows, n))?),
                None => None,
            };
            let out = self.fused(&x2, residual2.as_ref(), act)?;
            return Tensor::from_vec(out, shape, x.device());
        }
        let y = self.forward(x)?;
        let y = match residual {
            Some(r) => (y + r)?,
            None => y,
        };
        match act {
            Some(Activation::Gelu) => y.gelu_erf(),
            Some(Activation::Silu) => candle_nn::ops::silu(&y),
            None => Ok(y),
        }
    }

    /// `out[rows×n] += a[rows×k] · Wᵀ` (no bias) on the calling thread, for callers that
    /// parallelise over row blocks themselves. `scratch` holds the bf16 activations in that
    /// mode. Needs an f32 weight on the CPU, plain or packed.
    pub(crate) fn matmul_acc_serial(
        &self,
        a: &[f32],
        rows: usize,
        out: &mut [f32],
        scratch: &mut Vec<u16>,
    ) -> Result<()> {
        match &self.weight {
            Weight::Plain(w) => {
                let (n, k) = w.dims2()?;
                let done = kernels::with_f32(w, |w| {
                    kernels::gemm_f32(
                        (rows, n, k),
                        out,
                        (n, 1),
                        true,
                        a,
                        (k, 1),
                        w,
                        (1, k),
                        gemm::Parallelism::None,
                    )
                });
                if done.is_none() {
                    candle_core::bail!("a serial matmul needs a contiguous f32 CPU weight");
                }
            }
            Weight::F32(p) => p.matmul_acc_serial(a, rows, out),
            Weight::Bf16(p) => p.matmul_acc_serial(a, rows, out, scratch),
        }
        Ok(())
    }

    /// Switches to bf16 weights (the reduced-precision mode).
    pub(crate) fn pack_bf16(&mut self) -> Result<()> {
        if matches!(self.weight, Weight::Bf16(_)) {
            return Ok(());
        }
        let (w, n, k) = self.f32_rows()?;
        self.weight = Weight::Bf16(Arc::new(PackedBf16::pack(&w, n, k)));
        Ok(())
    }

    pub(crate) fn out_features(&self) -> Result<usize> {
        Ok(match &self.weight {
            Weight::Plain(w) => w.dim(0)?,
            Weight::F32(p) => p.out_features(),
            Weight::Bf16(p) => p.out_features(),
        })
    }

    /// The fused CPU path: `act(x·Wᵀ + b + residual)` as row-major data.
    pub(crate) fn fused(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        act: Option<Activation>,
    ) -> Result<Vec<f32>> {
        let b = self.bias.as_ref();
        let out = match &self.weight {
            Weight::Plain(w) => kernels::linear_vec(x, w, b, residual, act),
            Weight::F32(p) => {
                kernels::linear_packed(x, p.out_features(), b, residual, act, |x, m, o| {
                    p.matmul_acc(x, m, o)
                })
            }
            Weight::Bf16(p) => {
                kernels::linear_packed(x, p.out_features(), b, residual, act, |x, m, o| {
                    p.matmul_acc(x, m, o)
                })
            }
        };
        out.ok_or_else(|| candle_core::Error::Msg("fused kernels need contiguous f32".into()))
    }

    pub(crate) fn fused_tensor(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        act: Option<Activation>,
    ) -> Result<Tensor> {
        let rows = x.dim(0)?;
        let n = self.out_features()?;
        Tensor::from_vec(self.fused(x, residual, act)?, (rows, n), x.device())
    }

    pub(crate) fn load(vb: &VarBuilder, out: usize, inp: usize, bias: bool) -> Result<Self> {
        let weight = vb.get((out, inp), "weight")?;
        let bias = if bias {
            Some(vb.get(out, "bias")?)
        } else {
            None
        };
        Ok(Dense::new(weight, bias))
    }

    /// Multiplies the output channels by `scale` (per channel), weight and bias alike.
    pub(crate) fn scaled_rows(self, scale: &Tensor) -> Result<Self> {
        let (weight, bias) = self.into_plain()?;
        let weight = weight.broadcast_mul(&scale.unsqueeze(1)?)?;
        let bias = bias.map(|b| b.mul(scale)).transpose()?;
        Ok(Dense::new(weight, bias))
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Weight::Plain(w) = &self.weight else {
            candle_core::bail!("a packed linear layer runs through the fused path only")
        };
        let y = x.matmul(&w.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}
