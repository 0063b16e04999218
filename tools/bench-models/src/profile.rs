//! Where the encoder's time goes: the operations of one transformer layer, on the shapes of a
//! given configuration, timed one by one with the same candle calls the encoder makes, then
//! scaled by the number of layers. Printed under the table of `just bench-models`.

use candle_core::{DType, Device, Tensor};
use visprompt_vision::encoders::EncoderConfig;

use crate::median_ms;

/// Prints the per-operation breakdown of one layer × `num_layers` for an `size × size` input.
pub(crate) fn print_layer_profile(name: &str, cfg: &EncoderConfig, size: usize, dtype: DType) {
    let dev = Device::Cpu;
    let g = size / cfg.patch_size;
    let n = g * g + cfg.num_prefix_tokens();
    let (c, h, heads, d) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_heads,
        cfg.head_dim(),
    );
    let r = |shape: &[usize]| {
        Tensor::randn(0f32, 0.5, shape, &dev)
            .and_then(|t| t.to_dtype(dtype))
            .expect("random tensor")
    };
    let x = r(&[n, c]);
    let w_qkv = r(&[3 * c, c]);
    let w_o = r(&[c, c]);
    let w1 = r(&[h, c]);
    let w2 = r(&[c, h]);
    let ln_w = r(&[c]);
    let ln_b = r(&[c]);
    let q = r(&[heads, n, d]);
    let k = r(&[heads, n, d]);
    let v = r(&[heads, n, d]);
    let scores = r(&[heads, n, n]);
    let hid = r(&[n, h]);
    let qkv_out = r(&[n, 3 * c]);
    let ctx = r(&[heads, n, d]);
    let cos = r(&[g * g, d]);
    let q4 = r(&[1, heads, n, d]);
    let prefix = cfg.num_prefix_tokens();
    let rope = |x: &Tensor| {
        let p = x.narrow(2, prefix, g * g).unwrap();
        let sw = Tensor::cat(
            &[
                p.narrow(3, d / 2, d / 2).unwrap(),
                p.narrow(3, 0, d / 2).unwrap(),
            ],
            3,
        )
        .unwrap();
        let rot = (p.broadcast_mul(&cos).unwrap() + sw.broadcast_mul(&cos).unwrap()).unwrap();
        Tensor::cat(&[x.narrow(2, 0, prefix).unwrap(), rot], 2).unwrap()
    };
    let runs = 5;
    let mut ops: Vec<(&str, f64)> = vec![
        (
            "qkv GEMM",
            median_ms(runs, || drop(x.matmul(&w_qkv.t().unwrap()).unwrap())),
        ),
        (
            "qkv split (permute copy)",
            median_ms(runs, || {
                drop(
                    qkv_out
                        .reshape((1, n, 3, heads, d))
                        .unwrap()
                        .permute((2, 0, 3, 1, 4))
                        .unwrap()
                        .contiguous()
                        .unwrap(),
                )
            }),
        ),
        (
            "scores q·kᵀ",
            median_ms(runs, || drop(q.matmul(&k.t().unwrap()).unwrap())),
        ),
        (
            "softmax",
            median_ms(runs, || {
                drop(candle_nn::ops::softmax_last_dim(&scores).unwrap())
            }),
        ),
        (
            "context p·v",
            median_ms(runs, || drop(scores.matmul(&v).unwrap())),
        ),
        (
            "context merge (transpose copy)",
            median_ms(runs, || {
                drop(ctx.transpose(0, 1).unwrap().contiguous().unwrap())
            }),
        ),
        (
            "out-proj GEMM",
            median_ms(runs, || drop(x.matmul(&w_o.t().unwrap()).unwrap())),
        ),
        (
            "MLP up GEMM",
            median_ms(runs, || drop(x.matmul(&w1.t().unwrap()).unwrap())),
        ),
        (
            "GELU (erf)",
            median_ms(runs, || drop(hid.gelu_erf().unwrap())),
        ),
        (
            "MLP down GEMM",
            median_ms(runs, || drop(hid.matmul(&w2.t().unwrap()).unwrap())),
        ),
        (
            "bias adds (4)",
            median_ms(runs, || {
                drop(hid.broadcast_add(&w1.get(0).unwrap()).unwrap());
                drop(qkv_out.broadcast_add(&w_qkv.get(0).unwrap()).unwrap());
                drop(x.broadcast_add(&ln_b).unwrap());
                drop(x.broadcast_add(&ln_b).unwrap());
            }),
        ),
        (
            "LayerNorm (2)",
            median_ms(runs, || {
                drop(candle_nn::ops::layer_norm(&x, &ln_w, &ln_b, 1e-5).unwrap());
                drop(candle_nn::ops::layer_norm(&x, &ln_w, &ln_b, 1e-5).unwrap());
            }),
        ),
        (
            "residual adds (2)",
            median_ms(runs, || {
                drop((&x + &x).unwrap());
                drop((&x + &x).unwrap());
            }),
        ),
    ];
    if cfg.family == visprompt_vision::encoders::Family::Dinov3 {
        ops.push((
            "RoPE (q and k)",
            median_ms(runs, || {
                drop(rope(&q4));
                drop(rope(&q4));
            }),
        ));
    }
    let layers = cfg.num_layers as f64;
    let total: f64 = ops.iter().map(|(_, ms)| ms).sum::<f64>() * layers;
    println!();
    println!(
        "{name} ({dtype:?}): one layer's operations × {} layers, {:.0} ms in all",
        cfg.num_layers, total
    );
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, ms) in ops {
        println!(
            "  {:<32} {:>8.1} ms  {:>4.0}%",
            op,
            ms * layers,
            100.0 * ms * layers / total
        );
    }
}
