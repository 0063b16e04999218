//! SAM's neck (1x1 convolution to the embedding width, channel LayerNorm, 3x3 convolution,
//! channel LayerNorm) in the reduced-precision mode, straight from TinyViT's channels-last
//! tokens to the NCHW image embedding.
//!
//! Channels last, both convolutions are matrix products over the pixels: the 1x1 one a single
//! GEMM, the 3x3 one nine accumulating GEMMs per output row, one per tap, each reading the
//! row of a zero-bordered bf16 copy of its input that the tap shifts to (a contiguous run of
//! pixels). Both go through [`PackedBf16`], on the AMX tiles where the CPU has them; the
//! LayerNorms and sums stay f32. The f32 path (`Conv`, `LayerNorm2d` on NCHW maps) is what the
//! test compares against.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

use super::ops::{Conv, LayerNorm2d, SendPtr, contiguous_f32};
use crate::encoders::bf16::{PackedBf16, round_to_bf16};
use crate::encoders::kernels::layer_norm_rows;

/// A channel LayerNorm's weight, bias and epsilon.
type Norm = (Vec<f32>, Vec<f32>, f32);

#[derive(Clone)]
pub(crate) struct Bf16Neck {
    /// The 1x1 convolution, [C, C_in].
    reduce: Arc<PackedBf16>,
    first_norm: Norm,
    /// The 3x3 convolution, one [C, C] matrix per tap (row-major taps).
    taps: Vec<Arc<PackedBf16>>,
    second_norm: Norm,
    channels: usize,
}

impl std::fmt::Debug for Bf16Neck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bf16Neck")
            .field("channels", &self.channels)
            .finish()
    }
}

impl Bf16Neck {
    /// From the f32 layers (`neck.0` to `neck.3`); `None` where they are not the neck's shapes
    /// (a 1x1 and a 3x3 convolution without bias, stride 1, an even channel count).
    pub(crate) fn new(
        reduce: &Conv,
        first_norm: &LayerNorm2d,
        conv: &Conv,
        second_norm: &LayerNorm2d,
    ) -> Result<Option<Self>> {
        let r = reduce.f32_parameters()?;
        let c3 = conv.f32_parameters()?;
        let (channels, c_in, ..) = r.dims;
        let fits = r.dims.2 == 1
            && r.dims.3 == 1
            && reduce.geometry() == (1, 0, 1)
            && c3.dims == (channels, channels, 3, 3)
            && conv.geometry() == (1, 1, 1)
            && r.bias.iter().chain(&c3.bias).all(|&b| b == 0.0)
            && channels.is_multiple_of(2);
        if !fits {
            return Ok(None);
        }
        let taps = (0..9)
            .map(|t| {
                let w: Vec<f32> = (0..channels * channels)
                    .map(|oc| c3.weight[oc * 9 + t])
                    .collect();
                Arc::new(PackedBf16::pack(&w, channels, channels))
            })
            .collect();
        Ok(Some(Self {
            reduce: Arc::new(PackedBf16::pack(&r.weight, channels, c_in)),
            first_norm: first_norm.f32_parameters()?,
            taps,
            second_norm: second_norm.f32_parameters()?,
            channels,
        }))
    }

    /// `x` [B, h, w, C_in] channels-last f32 → the embedding [B, C, h, w].
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c_in) = x.dims4()?;
        let c = self.channels;
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let src = match &*storage {
            candle_core::Storage::Cpu(cpu) => contiguous_f32(cpu, layout)?,
            _ => candle_core::bail!("neck: expected a CPU tensor"),
        };
        let pw = w + 2;
        // Every value is written once, through `dst`: not zeroed first.
        let mut out: Vec<f32> = Vec::with_capacity(b * c * h * w);
        let dst = SendPtr(out.as_mut_ptr());
        for img in 0..b {
            let tokens = &src[img * h * w * c_in..][..h * w * c_in];
            let mut reduced = vec![0f32; h * w * c];
            self.reduce.matmul_acc(tokens, h * w, &mut reduced);
            // Normalised and rounded into the interior of a zero-bordered map.
            let mut padded = vec![0u16; (h + 2) * pw * c];
            let (nw, nb, ne) = &self.first_norm;
            padded
                .par_chunks_mut(pw * c)
                .skip(1)
                .take(h)
                .zip(reduced.par_chunks(w * c))
                .for_each_init(Vec::new, |normed, (row, values)| {
                    normed.resize(w * c, 0f32);
                    layer_norm_rows(values, normed, nw, nb, *ne);
                    round_to_bf16(normed, &mut row[c..(w + 1) * c]);
                });
            let (sw, sb, se) = &self.second_norm;
            (0..h).into_par_iter().for_each_init(
                || (vec![0f32; w * c], vec![0f32; w * c]),
                |(sums, normed), y| {
                    sums.fill(0.0);
                    for (t, tap) in self.taps.iter().enumerate() {
                        let (ky, kx) = (t / 3, t % 3);
                        // Output pixel (y, x) reads bordered pixel (y + ky, x + kx).
                        let from = ((y + ky) * pw + kx) * c;
                        tap.matmul_acc_bf16(&padded[from..], w, sums);
                    }
                    layer_norm_rows(sums, normed, sw, sb, *se);
                    let base = img * c * h * w + y * w;
                    for (x, pixel) in normed.chunks_exact(c).enumerate() {
                        for (o, &v) in pixel.iter().enumerate() {
                            // SAFETY: row y of every channel plane of this image is written by
                            // this item only, inside `out` (b · c · h · w values).
                            unsafe { dst.get().add(base + o * h * w + x).write(v) };
                        }
                    }
                },
            );
        }
        // SAFETY: for every image, the rows y of every channel plane were written above.
        unsafe { out.set_len(b * c * h * w) };
        Tensor::from_vec(out, (b, c, h, w), x.device())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module};
    use candle_nn::{VarBuilder, VarMap};

    use super::*;

    /// On bf16-rounded operands the neck stays within that rounding of the f32 layers: 2 % of
    /// the largest output allowed (a wrong tap, a lost border or a transposed output would be
    /// off by whole units).
    #[test]
    fn bf16_neck_stays_within_bf16_rounding_of_the_f32_layers() {
        assert!(
            crate::encoders::bf16::available(),
            "this test needs a CPU with AVX-512 BF16, as the project's machines have"
        );
        let dev = &Device::Cpu;
        let (c_in, c, h, w) = (40, 32, 9, 11);
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, dev);
        let build = |vb: &VarBuilder| {
            (
                Conv::new(vb.pp("0"), c_in, c, 1, 1, 0, false).unwrap(),
                LayerNorm2d::new(c, vb.pp("1")).unwrap(),
                Conv::new(vb.pp("2"), c, c, 3, 1, 1, false).unwrap(),
                LayerNorm2d::new(c, vb.pp("3")).unwrap(),
            )
        };
        build(&vb);
        for var in map.data().lock().unwrap().values_mut() {
            let shape = var.shape().clone();
            var.set(&Tensor::randn(0f32, 0.5, shape, dev).unwrap())
                .unwrap();
        }
        let layers = build(&vb);
        let neck = Bf16Neck::new(&layers.0, &layers.1, &layers.2, &layers.3)
            .unwrap()
            .expect("the neck's shapes");
        let x = Tensor::randn(0f32, 1.0, (2, h, w, c_in), dev).unwrap();
        let nchw = x.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
        let want = [&layers.0 as &dyn Module, &layers.1, &layers.2, &layers.3]
            .iter()
            .fold(nchw, |y, layer| layer.forward(&y).unwrap());
        let ours = neck.forward(&x).unwrap();
        assert_eq!(ours.dims(), want.dims());
        crate::segmenters::ops::assert_within_rounding(&ours, &want, 0.02, "bf16 neck");
    }
}
