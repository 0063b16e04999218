//! `just bench-models`: our candle models against PyTorch on the same configuration and the same
//! random weights, measured in the same run, as ratios ours / PyTorch.
//!
//! Encoders: DINOv3 ViT-S/16 at 512 px and DINOv2 ViT-S/14 (with registers) at 224 px, batch 1,
//! in f32 and in a reduced precision (ours: the linear layers in bf16 with AVX-512 BF16, the
//! rest in f32, see `ImageEncoder::with_bf16_matmuls`; PyTorch: the model cast to bf16). For each model a Python script in the parity virtualenv
//! (`bench_encoders.py`) builds the full-size `transformers` model with seeded random weights,
//! saves it in Hugging Face layout with one input and its outputs, and times PyTorch (2 threads,
//! f32 and bf16). We load the saved folder, check that our output matches PyTorch's, and time
//! ours (2 threads). PyTorch is timed once before and once after ours and the better of the two
//! is kept, since the machine's load can change between the runs.
//!
//! The segmenter rows come from [`segmenters::run`]. `bench-models encoders` or
//! `bench-models segmenters` runs one half only.
//!
//! Each row reports the forward pass's FLOPs (2 per multiply-add, counted from the shapes) and the
//! fraction of the machine's f32 GEMM peak that our time reaches (`PEAK_GFLOPS`, 2 threads).
//!
//! The Python interpreter is `$PARITY_PYTHON`, else `$PARITY_VENV/bin/python`, else the default
//! virtualenv of `tools/parity/setup.sh` (`~/.cache/visprompt/parity-venv`).

mod profile;
mod segmenters;

// The allocator the server uses, set up as it does.
#[path = "../../../apps/server/src/allocator.rs"]
mod allocator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use visprompt_vision::encoders::{EncoderConfig, ImageEncoder, MlpKind};
use visprompt_vision::weights::load_encoder_dir;

/// The machine's f32 GEMM peak on 2 threads, GFLOP/s (AVX-512, 2 FMA ports, 2 cores).
pub(crate) const PEAK_GFLOPS: f64 = 176.0;

/// One line of the report.
pub(crate) struct Row {
    pub name: String,
    pub precision: String,
    pub ours_ms: Option<f64>,
    pub torch_ms: Option<f64>,
    pub gflop: f64,
    /// Max abs difference of our output to PyTorch's f32 output, when measured.
    pub max_abs_err: Option<f64>,
    pub note: String,
}

/// What the segmenter benchmarks need from the harness.
pub(crate) struct Context {
    pub python: PathBuf,
    pub work_dir: PathBuf,
    pub repo_root: PathBuf,
}

fn main() {
    allocator::keep_freed_memory();
    // Both sides get two threads: candle (rayon) through this variable, PyTorch through
    // torch.set_num_threads(2) in the script.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // std::env::set_var is unsafe in edition 2024; re-exec instead of mutating our own env.
        let status = Command::new(std::env::current_exe().expect("own path"))
            .args(std::env::args_os().skip(1))
            .env("RAYON_NUM_THREADS", "2")
            .status()
            .expect("re-run with RAYON_NUM_THREADS=2");
        std::process::exit(status.code().unwrap_or(1));
    }
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root");
    let python = python_path();
    let work = tempfile::tempdir().expect("temporary folder");
    let ctx = Context {
        python,
        work_dir: work.path().to_path_buf(),
        repo_root,
    };
    println!(
        "bench-models: ours = candle 0.11 CPU, {} threads; PyTorch via {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        ctx.python.display()
    );
    // `bench-models encoders` or `bench-models segmenters` runs one half; no argument, both.
    let only = std::env::args().nth(1).unwrap_or_default();
    let encoders = only.is_empty() || only == "encoders";
    let mut rows = Vec::new();
    if encoders {
        rows.extend(bench_encoder(
            &ctx,
            "dinov3_s16",
            "DINOv3 ViT-S/16 @512",
            512,
            5,
        ));
        rows.extend(bench_encoder(
            &ctx,
            "dinov2_s14",
            "DINOv2-reg ViT-S/14 @224",
            224,
            20,
        ));
    }
    if only.is_empty() || only == "segmenters" {
        rows.extend(segmenters::run(&ctx));
    }
    print_rows(&rows);
    if !encoders {
        return;
    }
    for (model, name, runs) in [
        ("dinov3_s16", "DINOv3 ViT-S/16 @512", 3),
        ("dinov2_s14", "DINOv2-reg ViT-S/14 @224", 10),
    ] {
        let dir = ctx.work_dir.join(model);
        let (Ok(enc), Ok(io)) = (
            load_encoder_dir(&dir, DType::F32, &Device::Cpu),
            candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu),
        ) else {
            continue;
        };
        profile::print_profile(&format!("{name} f32"), &enc, &io["pixel_values"], runs);
        if let Ok(enc) = enc.with_bf16_matmuls() {
            profile::print_profile(&format!("{name} bf16"), &enc, &io["pixel_values"], runs);
        }
    }
}

fn python_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PARITY_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(v) = std::env::var_os("PARITY_VENV") {
        return PathBuf::from(v).join("bin/python");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/visprompt/parity-venv/bin/python")
}

/// Runs a Python script and parses the JSON object on the last line of its output.
pub(crate) fn python_json(python: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(python).args(args).output().map_err(|e| {
        format!(
            "cannot run {}: {e} (run tools/parity/setup.sh)",
            python.display()
        )
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} {:?} failed: {}",
            python.display(),
            args,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let line = line.ok_or_else(|| format!("no JSON in the output of {args:?}: {stdout}"))?;
    serde_json::from_str(line).map_err(|e| format!("bad JSON from {args:?}: {e}"))
}

/// Median time of `runs` calls after two warm-up calls, in ms.
pub(crate) fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// FLOPs of one forward pass of a ViT encoder on an `size × size` image, batch 1.
fn encoder_gflop(cfg: &EncoderConfig, size: usize) -> f64 {
    let g = size / cfg.patch_size;
    let patches = (g * g) as f64;
    let n = patches + cfg.num_prefix_tokens() as f64;
    let c = cfg.hidden_size as f64;
    let h = cfg.intermediate_size as f64;
    let p = cfg.patch_size as f64;
    let mlp_mats = if cfg.mlp == MlpKind::Gated { 3.0 } else { 2.0 };
    let per_layer = 2.0 * n * c * 3.0 * c // qkv
        + 2.0 * n * n * c * 2.0           // scores and context
        + 2.0 * n * c * c                 // output projection
        + 2.0 * n * c * h * mlp_mats; // MLP
    let embed = 2.0 * patches * 3.0 * p * p * c;
    (per_layer * cfg.num_layers as f64 + embed) / 1e9
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F32).unwrap() - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .map(f64::from)
        .unwrap_or(f64::NAN)
}

fn bench_encoder(ctx: &Context, model: &str, name: &str, size: usize, runs: usize) -> Vec<Row> {
    let dir = ctx.work_dir.join(model);
    let script = ctx.repo_root.join("tools/bench-models/bench_encoders.py");
    let script = script.to_string_lossy().to_string();
    let dir_s = dir.to_string_lossy().to_string();
    let runs_s = runs.to_string();
    eprintln!("{name}: building and timing the PyTorch model…");
    let first = match python_json(
        &ctx.python,
        &[&script, model, &size.to_string(), &dir_s, &runs_s],
    ) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{name}: {e}");
            return vec![Row {
                name: name.into(),
                precision: "-".into(),
                ours_ms: None,
                torch_ms: None,
                gflop: 0.0,
                max_abs_err: None,
                note: "PyTorch side failed; see above".into(),
            }];
        }
    };
    let io = candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu).expect("io");
    let x = &io["pixel_values"];
    let want = &io["f32"];
    let mut rows = Vec::new();
    // Ours is timed on both sides of PyTorch's second run and, like PyTorch, keeps the better
    // of its two medians: this machine's speed drifts over minutes, and the two sides should
    // meet the same drift.
    let time_ours = || {
        let mut ours = Vec::new();
        for label in ["f32", "bf16"] {
            eprintln!("{name}: timing ours in {label}…");
            let result = load_encoder_dir(&dir, DType::F32, &Device::Cpu)
                .map_err(|e| e.to_string())
                .and_then(|enc| {
                    if label == "bf16" {
                        enc.with_bf16_matmuls().map_err(|e| e.to_string())
                    } else {
                        Ok(enc)
                    }
                })
                .and_then(|enc| {
                    run_ours(&enc, x, runs).map(|(ms, y)| (ms, max_abs(&y, want), enc))
                });
            match result {
                Ok((ms, err, enc)) => {
                    let gflop = encoder_gflop(enc.config(), size);
                    ours.push((label, ms, err, gflop));
                }
                Err(e) => {
                    eprintln!("{name} {label}: {e}");
                    ours.push((label, f64::NAN, f64::NAN, 0.0));
                }
            }
        }
        ours
    };
    let before = time_ours();
    eprintln!("{name}: timing the PyTorch model again…");
    let again = python_json(&ctx.python, &[&script, "--time-again", &dir_s, &runs_s]).ok();
    let after = time_ours();
    let ours: Vec<_> = before
        .into_iter()
        .zip(after)
        .map(|(a, b)| (a.0, a.1.min(b.1), a.2, a.3))
        .collect();
    let best = |key: &str| {
        let a = first[key].as_f64();
        let b = again.as_ref().and_then(|v| v[key].as_f64());
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    let torch_bf16_err = first["bf16_vs_f32_max_abs"].as_f64();
    for (label, ms, err, gflop) in ours {
        let torch_ms = if label == "f32" {
            best("f32_ms")
        } else {
            best("bf16_ms")
        };
        let note = match label {
            "f32" => String::new(),
            _ if ms.is_nan() => "not available on this CPU".into(),
            _ => format!(
                "bf16 matmuls vs PyTorch bf16{}",
                torch_bf16_err
                    .map(|e| format!(" (PyTorch bf16 err {e:.1e})"))
                    .unwrap_or_default()
            ),
        };
        rows.push(Row {
            name: name.into(),
            precision: label.into(),
            ours_ms: (!ms.is_nan()).then_some(ms),
            torch_ms,
            gflop,
            max_abs_err: (!err.is_nan()).then_some(err),
            note,
        });
    }
    rows
}

fn run_ours(enc: &ImageEncoder, x: &Tensor, runs: usize) -> Result<(f64, Tensor), String> {
    let y = enc.forward_tokens(x).map_err(|e| e.to_string())?.0;
    let ms = median_ms(runs, || {
        enc.forward_tokens(x).expect("forward");
    });
    Ok((ms, y))
}

fn print_rows(rows: &[Row]) {
    println!();
    println!(
        "{:<28} {:>5} {:>10} {:>10} {:>7} {:>7} {:>8} {:>6} {:>9}  note",
        "model", "prec", "ours ms", "torch ms", "ratio", "GFLOP", "GFLOP/s", "peak%", "max err"
    );
    for r in rows {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        let ratio = match (r.ours_ms, r.torch_ms) {
            (Some(a), Some(b)) => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let rate = r.ours_ms.map(|ms| r.gflop / (ms / 1000.0));
        println!(
            "{:<28} {:>5} {:>10} {:>10} {:>7} {:>7.1} {:>8} {:>6} {:>9}  {}",
            r.name,
            r.precision,
            f(r.ours_ms),
            f(r.torch_ms),
            ratio,
            r.gflop,
            f(rate),
            rate.map(|g| format!("{:.0}%", 100.0 * g / PEAK_GFLOPS))
                .unwrap_or_else(|| "-".into()),
            r.max_abs_err
                .map(|e| format!("{e:.1e}"))
                .unwrap_or_else(|| "-".into()),
            r.note
        );
    }
}
