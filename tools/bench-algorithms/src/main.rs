//! `just bench-algorithms`: one frame of Matcher (5 fg / 3 bg), SoftMatcher (40 / 2) and PerDINO
//! (80 / 2) at 640×480, with the product's default parameters and models (DINOv3 ViT-S/16 at
//! 512 px, SAM-HQ tiny) at their real sizes with seeded random weights: milliseconds per frame
//! (median after warm-up), per stage, peak memory, in f32 and in the reduced-precision mode (the
//! DINO encoder's matrix products, TinyViT's linear layers and 1x1 convolutions, and the mask
//! decoder's per-prompt products in bf16 where the CPU has AVX-512 BF16, as the model store
//! loads them for a bf16 project); and click-to-segment with a warm embedding.
//!
//! Each configuration runs in a child process of its own, so that its peak resident memory
//! (`VmHWM`) is its own. The reference library's figures are printed twice: as the issue that
//! asked for this benchmark states them (measured on the machine kind of then, torch 2.10, 2
//! threads, random weights, the same configurations), and as `tools/parity/bench_reference.py`
//! measured them again on the machine kind the project moved to; the ratios are ours / theirs,
//! and the target is checked against the faster reference.
//!
//! With `BENCH_PROFILE=1`, the click configuration also prints to stderr where one click's time
//! goes (the decoder's transformer, upscaling and HQ convolutions, the logits' upscaling) and
//! where the frame's embedding (the segmenter's image encoder) spends its time; the algorithm
//! configurations print where one more frame's time goes.
//!
//! Random weights make the number of prompts an algorithm decodes depend on chance: the report
//! states how many each frame decoded. PerDINO is also run with its point threshold lowered so
//! that all 80 points are used whatever the features (`perdino_80`), the reference's worst case.
//!
//! Usage: `bench-algorithms [RUNS]` (default 7; the median of RUNS after 2 warm-up frames).

use std::process::Command;

// The allocator the server uses, set up as it does.
#[path = "../../../apps/server/src/allocator.rs"]
mod allocator;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use visprompt_media::SyntheticScene;
use visprompt_vision::detect::decode::{self, DecodeOptions};
use visprompt_vision::detect::features::{FeatureEncoder, MaskView};
use visprompt_vision::detect::interactive::{self, Click};
use visprompt_vision::detect::prompts::{GridPrompting, MatcherPrompting, SoftPrompting};
use visprompt_vision::detect::{AlgorithmSettings, ReferenceImage, StageTimes, VisualPrompter};
use visprompt_vision::encoders::{EncoderConfig, ImageEncoder, RgbImage};
use visprompt_vision::segmenters::{Sam, SamConfig};
use visprompt_vision::store::ENCODER_INPUT_SIZE;

/// The reference library as the issue states it (an AMD EPYC machine, torch 2.10): (f32 ms,
/// bf16 ms, peak GB).
const REFERENCE: &[(&str, f64, f64, f64)] = &[
    ("matcher", 1_876.0, 1_288.0, 1.8),
    ("soft_matcher", 15_149.0, 9_286.0, 4.6),
    ("perdino", 17_210.0, 10_410.0, 7.4),
];
/// The reference library measured again on the machine kind the project moved to (an Intel Xeon
/// with AMX, where PyTorch's bf16 runs on AMX: torch 2.15, 2 threads, median of 3, 2026-12-02)
/// by `tools/parity/bench_reference.py`, on the same frames, models and parameters, SoftMatcher
/// and PerDINO decoding all 40 and 80 points as ours do (its `soft_matcher_40`, `perdino_80`):
/// (f32 ms, bf16 ms, peak GB). The target column holds ours against the faster of the two.
const REFERENCE_AMX: &[(&str, f64, f64, f64)] = &[
    ("matcher", 1_772.0, 1_163.0, 1.8),
    ("soft_matcher", 15_098.0, 7_893.0, 4.5),
    ("perdino", 16_499.0, 7_966.0, 7.4),
];
/// The targets the issue set: ours / reference best.
const TARGET_RATIO: &[(&str, f64)] = &[("matcher", 0.5), ("soft_matcher", 0.2), ("perdino", 0.2)];

/// Seeded normal-ish random weights for any tensor a model asks for, scaled by fan-in so that
/// activations stay in a sane range; norms' weights near 1.
struct RandomWeights {
    state: Mutex<u64>,
}

impl RandomWeights {
    fn next(&self) -> f32 {
        let mut s = self.state.lock().unwrap();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        // Sum of uniforms: roughly normal, mean 0, variance 1.
        let u = |v: u64| ((v >> 11) as f32 / (1u64 << 53) as f32) - 0.5;
        (u(*s) + u(s.rotate_left(21)) + u(s.rotate_left(42))) * 2.0
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let n = s.elem_count();
        let fan_in = if s.rank() >= 2 { n / s.dims()[0] } else { 1 };
        let scale = 1.0 / (fan_in as f32).sqrt();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let r = self.next();
                if name.ends_with("running_var") {
                    1.0 + 0.2 * r.abs()
                } else if s.rank() == 1 && (name.ends_with("weight") || name.ends_with("lambda1")) {
                    1.0 + 0.1 * r
                } else {
                    scale * r
                }
            })
            .collect();
        Tensor::from_vec(v, s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no shape for {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

fn random_vb(seed: u64) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(RandomWeights {
            state: Mutex::new(seed),
        }),
        DType::F32,
        Device::Cpu,
    )
}

fn models(bf16: bool) -> (Arc<FeatureEncoder>, Arc<Sam>) {
    let mut encoder = ImageEncoder::load(
        &EncoderConfig::dinov3_small(),
        random_vb(0x1234_5678_9abc_def1),
    )
    .expect("DINOv3 ViT-S/16");
    if bf16 {
        encoder = encoder.with_bf16_matmuls().expect("bf16 matrix products");
    }
    let mut sam =
        Sam::new(&SamConfig::sam_hq_tiny(), random_vb(0x0fed_cba9_8765_4321)).expect("SAM-HQ tiny");
    if bf16 {
        sam = sam
            .with_bf16_encoder()
            .expect("a bf16 image encoder")
            .with_bf16_decoder()
            .expect("a bf16 mask decoder");
    }
    (
        Arc::new(FeatureEncoder::new(encoder, ENCODER_INPUT_SIZE)),
        Arc::new(sam),
    )
}

fn settings(algorithm: &str) -> (AlgorithmSettings, DecodeOptions) {
    match algorithm {
        "matcher" => (
            AlgorithmSettings::Matcher(MatcherPrompting {
                num_foreground: 5,
                num_background: 3,
                similarity_threshold: None,
                num_grid_cells: 8,
            }),
            DecodeOptions {
                confidence_threshold: 0.75,
                mask_refinement: false,
            },
        ),
        "soft_matcher" => (
            AlgorithmSettings::SoftMatcher(SoftPrompting {
                num_foreground: 40,
                num_background: 2,
                score_threshold: 0.4,
                bidirectional: false,
                spatial_sampling: false,
                sampling_seed: None,
                rff_seed: None,
            }),
            DecodeOptions {
                confidence_threshold: 0.42,
                mask_refinement: true,
            },
        ),
        "perdino" | "perdino_80" => (
            AlgorithmSettings::PerDino(GridPrompting {
                num_foreground: 80,
                num_background: 2,
                num_grid_cells: 16,
                point_selection_threshold: if algorithm == "perdino" { 0.65 } else { -1.0 },
            }),
            DecodeOptions {
                confidence_threshold: 0.01,
                mask_refinement: false,
            },
        ),
        other => panic!("unknown algorithm {other}"),
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn view(img: &visprompt_runtime::RgbImage) -> RgbImage<'_> {
    RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.as_raw(),
    }
}

/// Child: one configuration; prints one tab-separated line.
fn child(algorithm: &str, precision: &str, runs: usize) {
    let scene = SyntheticScene::default();
    let (encoder, sam) = models(precision == "bf16");
    let reference = scene.render(0);
    let (w, h) = (reference.width() as usize, reference.height() as usize);
    let truth = scene.ground_truth(0);
    let target = scene.render(25);
    if algorithm == "click" {
        let profile = std::env::var_os("BENCH_PROFILE").is_some();
        if profile {
            // Where the frame's embedding (the segmenter's image encoder) spends its time,
            // averaged over `runs` embeddings after one warm-up.
            decode::prepare(&sam, view(&target)).expect("embedding");
            visprompt_vision::encoders::profiling::set_enabled(true);
            let t = Instant::now();
            for _ in 0..runs {
                decode::prepare(&sam, view(&target)).expect("embedding");
            }
            let total = ms(t.elapsed()) / runs as f64;
            for (stage, d) in visprompt_vision::encoders::profiling::take() {
                eprintln!("  {stage:<32} {:>7.1} ms", ms(d) / runs as f64);
            }
            eprintln!("  {:<32} {total:>7.1} ms", "embedding (total)");
            visprompt_vision::encoders::profiling::set_enabled(false);
        }
        let prepared = decode::prepare(&sam, view(&target)).expect("embedding");
        let clicks = [Click {
            x: 200.0,
            y: 150.0,
            positive: true,
        }];
        let mut times = Vec::new();
        for i in 0..runs + 2 {
            let t = Instant::now();
            interactive::segment(&sam, &prepared, &clicks, None).expect("segments");
            if i >= 2 {
                times.push(ms(t.elapsed()));
            }
        }
        if profile {
            // Where one click's time goes, averaged over `runs` more clicks.
            visprompt_vision::encoders::profiling::set_enabled(true);
            let t = Instant::now();
            for _ in 0..runs {
                interactive::segment(&sam, &prepared, &clicks, None).expect("segments");
            }
            let total = ms(t.elapsed()) / runs as f64;
            for (stage, d) in visprompt_vision::encoders::profiling::take() {
                eprintln!("  {stage:<32} {:>7.1} ms", ms(d) / runs as f64);
            }
            eprintln!("  {:<32} {total:>7.1} ms", "click (total)");
        }
        println!(
            "click\t{precision}\t{:.1}\t0\t0\t0\t0\t1\t{:.0}",
            median(times),
            peak_rss_mb()
        );
        return;
    }
    let mask = &truth[0].1;
    let shot = ReferenceImage {
        image: view(&reference),
        masks: vec![(
            0,
            MaskView {
                width: w,
                height: h,
                data: mask.as_bytes(),
            },
        )],
    };
    let (algo, decode) = settings(algorithm);
    let mut prompter = VisualPrompter::new(encoder, sam, algo, decode);
    prompter.fit(&[shot]).expect("fits");
    let mut total = Vec::new();
    let mut stages: Vec<StageTimes> = Vec::new();
    let mut prompts = 0;
    for i in 0..runs + 2 {
        let t = Instant::now();
        let trace = prompter.predict_traced(view(&target)).expect("predicts");
        if i >= 2 {
            total.push(ms(t.elapsed()));
            stages.push(trace.timings);
        }
        prompts = trace.prompts.iter().map(|p| p.foreground.len()).sum();
    }
    if std::env::var_os("BENCH_PROFILE").is_some() {
        // Where one more frame's time goes.
        visprompt_vision::encoders::profiling::set_enabled(true);
        let t = Instant::now();
        prompter.predict_traced(view(&target)).expect("predicts");
        let frame = ms(t.elapsed());
        for (stage, d) in visprompt_vision::encoders::profiling::take() {
            eprintln!("  {stage:<32} {:>7.1} ms", ms(d));
        }
        eprintln!("  {:<32} {frame:>7.1} ms", "frame (total)");
        visprompt_vision::encoders::profiling::set_enabled(false);
    }
    let stage = |f: fn(&StageTimes) -> Duration| median(stages.iter().map(|s| ms(f(s))).collect());
    println!(
        "{algorithm}\t{precision}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{prompts}\t{:.0}",
        median(total),
        stage(|s| s.encoder),
        stage(|s| s.prompts),
        stage(|s| s.segmenter),
        stage(|s| s.postprocess),
        peak_rss_mb()
    );
}

fn main() {
    allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2], &args[3], args[4].parse().unwrap());
        return;
    }
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let me = std::env::current_exe().expect("own path");
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "2".into());
    println!(
        "bench-algorithms: 640x480 frame, DINOv3 ViT-S/16 @512 + SAM-HQ tiny, random weights, \
         {threads} threads, median of {runs} after 2 warm-up frames\n"
    );
    println!(
        "{:<14} {:<5} {:>9} {:>8} {:>8} {:>9} {:>8} {:>7} {:>8} {:>10} {:>7} {:>8} {:>7} {:>7}",
        "algorithm",
        "prec",
        "frame ms",
        "encoder",
        "prompts",
        "segment",
        "post",
        "points",
        "peak MB",
        "reference",
        "ratio",
        "ref AMX",
        "ratio",
        "target"
    );
    for algorithm in ["matcher", "soft_matcher", "perdino", "perdino_80", "click"] {
        for precision in ["f32", "bf16"] {
            let out = Command::new(&me)
                .args(["--child", algorithm, precision, &runs.to_string()])
                .env("RAYON_NUM_THREADS", &threads)
                .output()
                .expect("child runs");
            let line = String::from_utf8_lossy(&out.stdout);
            let f: Vec<&str> = line.trim().split('\t').collect();
            if f.len() < 9 {
                println!(
                    "{algorithm} {precision}: failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            }
            let frame: f64 = f[2].parse().unwrap_or(f64::NAN);
            let base = algorithm.trim_end_matches("_80");
            let row = |table: &[(&str, f64, f64, f64)]| {
                table.iter().find(|r| r.0 == base).map(|r| {
                    let same = if precision == "f32" { r.1 } else { r.2 };
                    (same, r.1.min(r.2))
                })
            };
            let target = TARGET_RATIO.iter().find(|t| t.0 == base).map(|t| t.1);
            let (reference, ratio, reference_amx, ratio_amx, target) =
                match (row(REFERENCE), row(REFERENCE_AMX), target) {
                    (Some((r, b)), Some((ra, ba)), Some(t)) => {
                        let best = b.min(ba);
                        (
                            format!("{r:.0}"),
                            format!("{:.3}", frame / r),
                            format!("{ra:.0}"),
                            format!("{:.3}", frame / ra),
                            format!(
                                "{}{:.2}",
                                if frame / best <= t { "met " } else { "MISS " },
                                frame / best
                            ),
                        )
                    }
                    _ if algorithm == "click" => (
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        if frame <= 50.0 {
                            "met ≤50ms".into()
                        } else {
                            "MISS ≤50ms".into()
                        },
                    ),
                    _ => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
                };
            println!(
                "{:<14} {:<5} {:>9} {:>8} {:>8} {:>9} {:>8} {:>7} {:>8} {:>10} {:>7} {:>8} {:>7} {:>7}",
                algorithm,
                precision,
                f[2],
                f[3],
                f[4],
                f[5],
                f[6],
                f[7],
                f[8],
                reference,
                ratio,
                reference_amx,
                ratio_amx,
                target
            );
        }
    }
    println!(
        "\nreference = the reference library's ms per frame in the same precision as the issue \
         states it (AMD EPYC, torch 2.10, 2 threads); ref AMX = the same measured again on the \
         Intel Xeon with AMX the project moved to (tools/parity/bench_reference.py, torch 2.15); \
         ratio = ours / that; target column: ours / the faster of the two references' best \
         precisions against the issue's target (Matcher ≤ 0.5, SoftMatcher and PerDINO ≤ 0.2), \
         peak memory target ≤ 1,500 MB. perdino_80 lowers the point threshold so \
         that all 80 points are decoded. click bf16 decodes with the bf16 mask decoder; the \
         server's click-to-segment endpoint always uses the f32 model (the click f32 row)."
    );
}
