//! Full-size encoders (DINOv3 ViT-S/16 and ViT-L/16, DINOv2 ViT-S/14 with and without
//! registers, ViT-B/14) built with random weights under their Hugging Face names and run: the
//! output has the expected shape and is finite.
//!
//! The product default (DINOv3 ViT-S/16) goes the whole way a user's download goes: saved into a
//! hub-layout cache folder (in f16, 44 MB), found there offline by the weights layer and loaded as
//! f32. The larger ones are built from the same tensors in memory: writing a 1.2 GB checkpoint
//! per test fills the disk of a small CI machine and proves nothing the small one does not.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use visprompt_vision::encoders::{EncoderConfig, Family, ImageEncoder, MlpKind};
use visprompt_vision::weights::{HubCache, HubClient, NoProgress, load_encoder_dir};

/// Every tensor of an HF checkpoint of `cfg`, with its shape.
fn hf_tensors(cfg: &EncoderConfig) -> Vec<(String, Vec<usize>)> {
    let c = cfg.hidden_size;
    let h = cfg.intermediate_size;
    let p = cfg.patch_size;
    let mut t: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |name: String, shape: &[usize]| t.push((name, shape.to_vec()));
    let v3 = cfg.family == Family::Dinov3;
    if v3 {
        add("embeddings.patch_embeddings.weight".into(), &[c, 3, p, p]);
        add("embeddings.patch_embeddings.bias".into(), &[c]);
        add("embeddings.mask_token".into(), &[1, 1, c]);
    } else {
        let g = cfg.image_size / p;
        add(
            "embeddings.patch_embeddings.projection.weight".into(),
            &[c, 3, p, p],
        );
        add("embeddings.patch_embeddings.projection.bias".into(), &[c]);
        add("embeddings.position_embeddings".into(), &[1, g * g + 1, c]);
        add("embeddings.mask_token".into(), &[1, c]);
    }
    add("embeddings.cls_token".into(), &[1, 1, c]);
    if cfg.num_register_tokens > 0 {
        add(
            "embeddings.register_tokens".into(),
            &[1, cfg.num_register_tokens, c],
        );
    }
    for i in 0..cfg.num_layers {
        let l = if v3 {
            format!("layer.{i}")
        } else {
            format!("encoder.layer.{i}")
        };
        for n in ["norm1", "norm2"] {
            add(format!("{l}.{n}.weight"), &[c]);
            add(format!("{l}.{n}.bias"), &[c]);
        }
        add(format!("{l}.layer_scale1.lambda1"), &[c]);
        add(format!("{l}.layer_scale2.lambda1"), &[c]);
        let proj: [(&str, bool); 4] = if v3 {
            [
                ("attention.q_proj", cfg.query_bias),
                ("attention.k_proj", cfg.key_bias),
                ("attention.v_proj", cfg.value_bias),
                ("attention.o_proj", cfg.proj_bias),
            ]
        } else {
            [
                ("attention.attention.query", true),
                ("attention.attention.key", true),
                ("attention.attention.value", true),
                ("attention.output.dense", true),
            ]
        };
        for (n, bias) in proj {
            add(format!("{l}.{n}.weight"), &[c, c]);
            if bias {
                add(format!("{l}.{n}.bias"), &[c]);
            }
        }
        assert_eq!(
            cfg.mlp,
            MlpKind::Plain,
            "these tests build plain-MLP models"
        );
        let (up, down) = if v3 {
            ("mlp.up_proj", "mlp.down_proj")
        } else {
            ("mlp.fc1", "mlp.fc2")
        };
        add(format!("{l}.{up}.weight"), &[h, c]);
        add(format!("{l}.{up}.bias"), &[h]);
        add(format!("{l}.{down}.weight"), &[c, h]);
        add(format!("{l}.{down}.bias"), &[c]);
    }
    let norm = if v3 { "norm" } else { "layernorm" };
    add(format!("{norm}.weight"), &[c]);
    add(format!("{norm}.bias"), &[c]);
    t
}

/// Random tensors for every name of an HF checkpoint of `cfg`.
fn random_checkpoint(cfg: &EncoderConfig, dtype: DType) -> HashMap<String, Tensor> {
    // Random values from a prime-length pool, repeated: generating hundreds of millions of
    // normal samples one by one in a debug build would dominate the test's time.
    const POOL: usize = 65_521;
    let pool = Tensor::randn(0f32, 0.02, POOL, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    hf_tensors(cfg)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let t = pool
                .repeat(n.div_ceil(POOL))
                .unwrap()
                .narrow(0, 0, n)
                .unwrap()
                .reshape(shape)
                .unwrap();
            (name, t)
        })
        .collect()
}

/// Writes a random-weight f16 checkpoint of `cfg` into a hub-layout cache under `root` as
/// `repo` at revision `main`.
fn write_hub_snapshot(root: &Path, repo: &str, cfg: &EncoderConfig) {
    let commit = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed";
    let repo_dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let snap = repo_dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
    std::fs::write(
        snap.join("config.json"),
        serde_json::to_string_pretty(&cfg.to_json()).unwrap(),
    )
    .unwrap();
    let tensors = random_checkpoint(cfg, DType::F16);
    candle_core::safetensors::save(&tensors, snap.join("model.safetensors")).unwrap();
}

/// Saves `cfg` into a hub cache, finds it offline and loads it as f32.
fn load_through_hub_cache(cfg: &EncoderConfig, repo: &str) -> ImageEncoder {
    let dir = tempfile::tempdir().unwrap();
    write_hub_snapshot(dir.path(), repo, cfg);
    let client = HubClient::new(HubCache::new(dir.path())).offline(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let snap = rt
        .block_on(client.ensure(
            repo,
            "main",
            &["config.json", "model.safetensors"],
            &NoProgress,
        ))
        .expect("found in the cache");
    let encoder = load_encoder_dir(&snap, DType::F32, &Device::Cpu).expect("loads");
    assert_eq!(encoder.dtype(), DType::F32, "f16 weights load as f32");
    encoder
}

/// Builds `cfg` from random tensors held in memory.
fn load_in_memory(cfg: &EncoderConfig) -> ImageEncoder {
    let tensors = random_checkpoint(cfg, DType::F32);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    ImageEncoder::load(cfg, vb).expect("every tensor name is found")
}

fn check(encoder: &ImageEncoder, cfg: &EncoderConfig, repo: &str, inputs: &[(usize, usize)]) {
    assert_eq!(encoder.config(), cfg, "{repo}: config round-trips");
    for &(h, w) in inputs {
        let x = Tensor::randn(0f32, 1.0, (1, 3, h, w), &Device::Cpu).unwrap();
        let feats = encoder.patch_features(&x).expect("forward");
        let (gh, gw) = (h / cfg.patch_size, w / cfg.patch_size);
        assert_eq!(
            feats.dims(),
            &[1, gh, gw, cfg.hidden_size],
            "{repo} at {h}x{w}"
        );
        let v: Vec<f32> = feats.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{repo}: non-finite features"
        );
        // After the final LayerNorm with unit weight-ish parameters, features are not all equal.
        let spread =
            v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 1e-3, "{repo}: degenerate output");
    }
}

#[test]
fn dinov3_small_full_size_from_a_hub_cache() {
    let cfg = EncoderConfig::dinov3_small();
    let repo = "facebook/dinov3-vits16-pretrain-lvd1689m";
    let encoder = load_through_hub_cache(&cfg, repo);
    check(&encoder, &cfg, repo, &[(512, 512), (224, 320)]);
}

#[test]
fn dinov3_large_full_size() {
    let cfg = EncoderConfig::dinov3_large();
    check(&load_in_memory(&cfg), &cfg, "dinov3-vitl16", &[(128, 96)]);
}

#[test]
fn dinov2_small_full_size_with_and_without_registers() {
    for (registers, input) in [
        (false, [(518, 518), (224, 224)]),
        (true, [(512, 512), (196, 280)]),
    ] {
        let cfg = EncoderConfig::dinov2_small(registers);
        check(&load_in_memory(&cfg), &cfg, "dinov2-small", &input);
    }
}

#[test]
fn dinov2_base_full_size() {
    let cfg = EncoderConfig::dinov2_base(true);
    check(
        &load_in_memory(&cfg),
        &cfg,
        "dinov2-with-registers-base",
        &[(224, 224)],
    );
}
