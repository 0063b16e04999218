//! Parity of the image encoders and their pre-processing with Hugging Face `transformers`: the
//! fixtures under `tests/fixtures/encoders/` were made by `tools/parity/encoders.py` from small
//! random-weight models; our models load the same weights and must give the same
//! `last_hidden_state` within 1e-4, and the same pre-processed pixels within 1/255.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use visprompt_vision::encoders::{EncoderConfig, Family, ImageEncoder, Preprocess, RgbImage};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoders")
}

fn load_case(case: &str) -> (ImageEncoder, HashMap<String, Tensor>) {
    load_case_as(case, DType::F32)
}

fn load_case_as(case: &str, dtype: DType) -> (ImageEncoder, HashMap<String, Tensor>) {
    let dir = fixtures().join(case);
    let config = EncoderConfig::from_json_str(
        &std::fs::read_to_string(dir.join("config.json")).expect("config.json"),
    )
    .expect("config parses");
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .expect("weights");
    let vb = VarBuilder::from_tensors(weights, dtype, &Device::Cpu);
    let encoder = ImageEncoder::load(&config, vb).expect("model loads");
    let io = candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu).expect("io");
    (encoder, io)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Runs every input of a case; returns the worst error, and checks the patch-feature view too.
fn check_case(case: &str, family: Family, expected_inputs: usize) -> f32 {
    let (encoder, io) = load_case(case);
    assert_eq!(encoder.config().family, family);
    let mut keys: Vec<&String> = io
        .keys()
        .filter(|k| k.starts_with("pixel_values."))
        .collect();
    keys.sort();
    assert_eq!(keys.len(), expected_inputs, "{case}: inputs in the fixture");
    let mut worst = 0f32;
    for key in keys {
        let name = key.trim_start_matches("pixel_values.");
        let x = &io[key];
        let want = &io[&format!("last_hidden_state.{name}")];
        let (got, (gh, gw)) = encoder.forward_tokens(x).expect("forward");
        let err = max_abs_diff(&got, want);
        eprintln!("{case}.{name}: max abs error {err:.3e}");
        assert!(err <= 1e-4, "{case}.{name}: max abs error {err} > 1e-4");
        worst = worst.max(err);

        let (_, _, h, w) = x.dims4().unwrap();
        let p = encoder.config().patch_size;
        assert_eq!((gh, gw), (h / p, w / p));
        let feats = encoder.patch_features(x).expect("patch features");
        let b = x.dim(0).unwrap();
        let c = encoder.config().hidden_size;
        assert_eq!(feats.dims(), &[b, gh, gw, c]);
        let prefix = encoder.config().num_prefix_tokens();
        let want_patches = want
            .narrow(1, prefix, gh * gw)
            .unwrap()
            .reshape((b, gh, gw, c))
            .unwrap();
        assert!(
            max_abs_diff(&feats, &want_patches) <= 1e-4,
            "{case}.{name}: patch view"
        );
    }
    worst
}

#[test]
fn dinov2_matches_transformers() {
    check_case("dinov2", Family::Dinov2, 3);
}

#[test]
fn dinov2_swiglu_matches_transformers() {
    check_case("dinov2_swiglu", Family::Dinov2, 1);
}

#[test]
fn dinov2_with_registers_matches_transformers() {
    check_case("dinov2_registers", Family::Dinov2WithRegisters, 4);
}

#[test]
fn dinov3_matches_transformers() {
    check_case("dinov3", Family::Dinov3, 3);
}

#[test]
fn dinov3_gated_silu_matches_transformers() {
    check_case("dinov3_gated", Family::Dinov3, 1);
}

/// In `f64` the encoder takes the plain candle path instead of the fused `f32` CPU kernels:
/// it must agree with transformers as well.
#[test]
fn the_plain_candle_path_matches_too() {
    for case in [
        "dinov2_registers",
        "dinov2_swiglu",
        "dinov3",
        "dinov3_gated",
    ] {
        let (encoder, io) = load_case_as(case, DType::F64);
        assert_eq!(encoder.dtype(), DType::F64);
        let mut checked = 0;
        for (key, x) in io.iter().filter(|(k, _)| k.starts_with("pixel_values.")) {
            let name = key.trim_start_matches("pixel_values.");
            let want = &io[&format!("last_hidden_state.{name}")];
            let (got, _) = encoder.forward_tokens(x).expect("forward");
            assert_eq!(got.dtype(), DType::F64);
            let err = max_abs_diff(&got.to_dtype(DType::F32).unwrap(), want);
            eprintln!("{case}.{name} (f64, plain ops): max abs error {err:.3e}");
            assert!(err <= 1e-4, "{case}.{name}: {err}");
            checked += 1;
        }
        assert!(checked > 0, "{case}: no inputs");
    }
}

/// The reduced-precision mode (bf16 operands with f32 sums in the linear layers and in
/// attention's two products, f32 elsewhere) stays within bf16's rounding of the f32 reference
/// (about 4e-3 here; computing everything in bf16 is off by 2–5e-2 on these fixtures).
#[test]
fn bf16_matmuls_stay_within_bf16_rounding() {
    for case in ["dinov2_registers", "dinov3"] {
        let (encoder, io) = load_case(case);
        let encoder = encoder
            .with_bf16_matmuls()
            .expect("this CPU has AVX-512 BF16");
        assert!(encoder.bf16_matmuls());
        for (key, x) in io.iter().filter(|(k, _)| k.starts_with("pixel_values.")) {
            let name = key.trim_start_matches("pixel_values.");
            let want = &io[&format!("last_hidden_state.{name}")];
            let (got, _) = encoder.forward_tokens(x).expect("forward");
            let err = max_abs_diff(&got, want);
            eprintln!("{case}.{name} (bf16 matmuls): max abs error {err:.3e}");
            assert!(err <= 2e-2, "{case}.{name}: {err}");
            assert!(
                err > 1e-5,
                "{case}.{name}: bf16 rounding left no trace ({err})"
            );
        }
    }
}

#[test]
fn preprocessing_of_a_real_frame_matches_the_hf_processors() {
    let io =
        candle_core::safetensors::load(fixtures().join("preprocess/io.safetensors"), &Device::Cpu)
            .expect("fixture");
    let mut checked = 0;
    for (src, key) in [("image", "down"), ("crop", "up")] {
        let img = &io[src];
        let (h, w, _) = img.dims3().unwrap();
        let data: Vec<u8> = img.flatten_all().unwrap().to_vec1().unwrap();
        let image = RgbImage {
            width: w,
            height: h,
            data: &data,
        };
        for (family, make) in [
            (
                "dinov3",
                Preprocess::dinov3 as fn(usize, usize) -> Preprocess,
            ),
            ("dinov2", Preprocess::dinov2),
        ] {
            let want = &io[&format!("{family}.{key}")];
            let (_, _, oh, ow) = want.dims4().unwrap();
            let pre = make(oh, ow);
            let got = pre.tensor(&[image], &Device::Cpu).unwrap();
            // Compare in [0, 1] pixel units: undo the normalisation's division by std.
            let std = Tensor::new(&pre.std, &Device::Cpu)
                .unwrap()
                .reshape((1, 3, 1, 1))
                .unwrap();
            let diff = ((&got - want).unwrap().broadcast_mul(&std).unwrap())
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            eprintln!("{family}.{key}: max abs error {:.3} / 255", diff * 255.0);
            // DINOv2's 8-bit resize is rounded to whole levels by both sides (torchvision with
            // fixed-point weights), so one level is the quantum there; the slack is f32 rounding.
            assert!(
                diff <= 1.0 / 255.0 + 1e-6,
                "{family}.{key}: {} / 255",
                diff * 255.0
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
}
