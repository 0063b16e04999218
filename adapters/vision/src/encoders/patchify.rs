//! The patch embedding: a `p × p` convolution with stride `p`, computed as one GEMM over
//! flattened patches. Pixels beyond the last whole patch are ignored, as the strided
//! convolution ignores them.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

pub(crate) struct PatchEmbed {
    /// `[C, 3·p·p]`
    weight: Tensor,
    bias: Tensor,
    patch: usize,
}

impl PatchEmbed {
    /// `vb` holds the convolution's `weight` `[C, 3, p, p]` and `bias` `[C]`.
    pub(crate) fn load(vb: VarBuilder, hidden: usize, patch: usize) -> Result<Self> {
        let weight = vb
            .get((hidden, 3, patch, patch), "weight")?
            .reshape((hidden, 3 * patch * patch))?;
        Ok(PatchEmbed {
            weight,
            bias: vb.get(hidden, "bias")?,
            patch,
        })
    }

    /// `[B, 3, H, W]` → `[B, gh·gw, C]` (row-major over the grid) and `(gh, gw)`.
    pub(crate) fn forward(&self, pixel_values: &Tensor) -> Result<(Tensor, (usize, usize))> {
        let (b, ch, height, width) = pixel_values.dims4()?;
        let p = self.patch;
        let (gh, gw) = (height / p, width / p);
        if gh == 0 || gw == 0 || ch != 3 {
            return Err(candle_core::Error::Msg(format!(
                "the input {b}x{ch}x{height}x{width} holds no whole {p}x{p} RGB patch"
            )));
        }
        let x = pixel_values.to_dtype(self.weight.dtype())?;
        let x = x
            .narrow(2, 0, gh * p)?
            .narrow(3, 0, gw * p)?
            .reshape((b, 3, gh, p, gw, p))?;
        let x = x
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * gh * gw, 3 * p * p))?;
        let y = x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        Ok((y.reshape((b, gh * gw, ()))?, (gh, gw)))
    }
}
