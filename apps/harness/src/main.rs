//! `visprompt-harness`: generate a synthetic dataset, or evaluate a detector configuration on a
//! dataset and write its report.
//!
//! ```text
//! visprompt-harness generate OUT [--per-class N] [--size WxH] [--seed S]
//! visprompt-harness eval DATASET [--model classical|matcher|soft_matcher|perdino] [--shots K]
//!                               [--seed S] [--out DIR] [--models-dir DIR]
//! visprompt-harness compare A/report.json B/report.json
//! ```
//!
//! `eval` shows a progress bar, prints a summary and writes `report.json` (configuration,
//! versions, per-class and overall figures, latencies, peak memory), `summary.md` and two PNG
//! plots (`iou_per_class.png`, `latency.png`) to `--out`
//! (default `eval-report`). Neural models take their weights from `--models-dir`, else the hub
//! cache under `.data/models`; `OFFLINE=1` never downloads.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use visprompt_classical::ClassicalDetectorFactory;
use visprompt_domain::{
    Algorithm, Device, DisplayName, ModelConfig, ModelConfigId, ProjectId, Timestamp,
};
use visprompt_harness::datasets::Dataset;
use visprompt_harness::eval::{Outcome, Protocol, evaluate, percentile};
use visprompt_harness::plots;
use visprompt_harness::synthetic::write_synthetic;
use visprompt_runtime::DetectorFactory;
use visprompt_vision::detector::VisionDetectorFactory;
use visprompt_vision::store::{ModelStore, ModelStoreSettings};

fn usage() -> ! {
    eprintln!(
        "usage:\n  visprompt-harness generate OUT [--per-class N] [--size WxH] [--seed S]\n  \
         visprompt-harness eval DATASET [--model classical|matcher|soft_matcher|perdino] \
         [--shots K] [--seed S] [--out DIR] [--models-dir DIR]\n  \
         visprompt-harness compare A/report.json B/report.json"
    );
    std::process::exit(2)
}

/// `--name value` options after the positional argument.
fn options(args: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else {
            eprintln!("unexpected argument {k:?}");
            usage()
        };
        let Some(v) = it.next() else {
            eprintln!("--{name} needs a value");
            usage()
        };
        out.push((name.to_string(), v.clone()));
    }
    out
}

fn option<T: std::str::FromStr>(opts: &[(String, String)], name: &str, default: T) -> T {
    match opts.iter().find(|(k, _)| k == name) {
        None => default,
        Some((_, v)) => v.parse().unwrap_or_else(|_| {
            eprintln!("--{name}: cannot read {v:?}");
            usage()
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(command), Some(target)) = (args.first(), args.get(1)) else {
        usage()
    };
    if command == "compare" {
        let Some(b) = args.get(2) else { usage() };
        if let Err(e) = compare(target, b) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = options(&args[2..]);
    let known = [
        "per-class",
        "size",
        "seed",
        "model",
        "shots",
        "out",
        "models-dir",
    ];
    if let Some((k, _)) = opts.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        eprintln!("unknown option --{k}");
        usage()
    }
    let result = match command.as_str() {
        "generate" => generate(PathBuf::from(target), &opts),
        "eval" => eval(PathBuf::from(target), &opts),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn compare(a: &str, b: &str) -> Result<(), String> {
    let read = |p: &str| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{p}: not a report: {e}"))
    };
    print!(
        "{}",
        visprompt_harness::compare::compare(&read(a)?, &read(b)?)
    );
    Ok(())
}

fn generate(out: PathBuf, opts: &[(String, String)]) -> Result<(), String> {
    let per_class: usize = option(opts, "per-class", 8);
    let size: String = option(opts, "size", "320x240".to_string());
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .filter(|&(w, h): &(u32, u32)| w >= 48 && h >= 48 && w <= 4096 && h <= 4096)
        .ok_or_else(|| format!("--size {size:?}: expected WxH, each 48 to 4096"))?;
    let seed: u64 = option(opts, "seed", 1);
    write_synthetic(&out, per_class, (w, h), seed).map_err(|e| e.to_string())?;
    println!(
        "wrote a synthetic dataset: {} ({per_class} images per class, {w}x{h})",
        out.display()
    );
    Ok(())
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn eval(dataset_dir: PathBuf, opts: &[(String, String)]) -> Result<(), String> {
    let dataset = Dataset::open(&dataset_dir).map_err(|e| e.to_string())?;
    let model_name: String = option(opts, "model", "classical".to_string());
    let algorithm = Algorithm::ALL
        .into_iter()
        .find(|a| a.as_str() == model_name)
        .ok_or_else(|| {
            format!(
                "--model {model_name:?}: one of {}",
                Algorithm::ALL.map(|a| a.as_str()).join(", ")
            )
        })?;
    let protocol = Protocol {
        shots: option(opts, "shots", 1),
        seed: option(opts, "seed", 0),
    };
    let out: PathBuf = PathBuf::from(option(opts, "out", "eval-report".to_string()));
    let model = ModelConfig {
        id: ModelConfigId::new(),
        project_id: ProjectId::new(),
        name: DisplayName::parse(algorithm.as_str()).expect("a valid name"),
        active: true,
        device: Device::Cpu,
        params: algorithm.default_params(),
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    };
    let factory: Box<dyn DetectorFactory> = if algorithm == Algorithm::Classical {
        Box::new(ClassicalDetectorFactory)
    } else {
        let models_dir: String = option(opts, "models-dir", String::new());
        let offline = matches!(
            std::env::var("OFFLINE")
                .unwrap_or_default()
                .to_ascii_lowercase()
                .as_str(),
            "1" | "true" | "yes" | "on"
        );
        Box::new(VisionDetectorFactory::new(Arc::new(ModelStore::new(
            ModelStoreSettings {
                models_dir: (!models_dir.is_empty()).then(|| PathBuf::from(models_dir)),
                cache_dir: PathBuf::from(".data/models"),
                offline,
                hub_endpoint: std::env::var("HF_ENDPOINT").ok(),
                hub_token: std::env::var("HF_TOKEN").ok(),
            },
        ))))
    };
    let started = Instant::now();
    let outcome = evaluate(&dataset, &*factory, &model, protocol, |done, total| {
        let width = 30;
        let filled = done * width / total.max(1);
        eprint!(
            "\r[{}{}] {done}/{total}",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        let _ = std::io::stderr().flush();
    })
    .map_err(|e| e.to_string())?;
    eprintln!();
    let wall = started.elapsed().as_secs_f64();
    write_reports(&out, &dataset_dir, &model, protocol, &outcome, wall)
}

fn write_reports(
    out: &std::path::Path,
    dataset_dir: &std::path::Path,
    model: &ModelConfig,
    protocol: Protocol,
    outcome: &Outcome,
    wall_s: f64,
) -> Result<(), String> {
    let r = &outcome.report;
    let p50 = percentile(&outcome.latencies_ms, 50.0);
    let p95 = percentile(&outcome.latencies_ms, 95.0);
    let detect_s: f64 = outcome.latencies_ms.iter().sum::<f64>() / 1e3;
    let fps = (detect_s > 0.0).then(|| outcome.latencies_ms.len() as f64 / detect_s);
    let peak = peak_rss_mb();
    let classes: Vec<serde_json::Value> = r
        .classes
        .iter()
        .map(|c| {
            json!({
                "class": outcome.class_names[c.class as usize],
                "images": c.images,
                "iou_cumulative": c.iou_cumulative,
                "iou_per_image": c.iou_per_image,
                "precision": c.precision,
                "recall": c.recall,
            })
        })
        .collect();
    let report = json!({
        "harness_version": env!("CARGO_PKG_VERSION"),
        "dataset": dataset_dir.display().to_string(),
        "model": model.params.algorithm().as_str(),
        "parameters": format!("{:?}", model.params),
        "protocol": { "shots": protocol.shots, "seed": protocol.seed },
        "overall": {
            "miou_cumulative": r.miou_cumulative,
            "miou_per_image": r.miou_per_image,
            "fb_iou": r.fb_iou,
            "precision_at_iou_0_5": r.precision,
            "recall_at_iou_0_5": r.recall,
        },
        "classes": classes,
        "speed": {
            "targets": outcome.latencies_ms.len(),
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "throughput_fps": fps,
            "fit_ms": outcome.fit_ms,
            "wall_s": wall_s,
            "peak_rss_mb": peak,
        },
        "latencies_ms": outcome.latencies_ms,
    });
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let json_path = out.join("report.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).expect("JSON"),
    )
    .map_err(|e| format!("{}: {e}", json_path.display()))?;
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}", v * 100.0));
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let mut md = format!(
        "# {} on {}\n\n{}-shot, seed {}\n\n| | value |\n|---|---|\n\
         | mIoU (cumulative) | {} % |\n| mIoU (per image) | {} % |\n| FB-IoU | {} % |\n\
         | precision @ IoU 0.5 | {} % |\n| recall @ IoU 0.5 | {} % |\n\
         | latency p50 / p95 | {} / {} ms |\n| throughput | {} frames/s |\n| peak memory | {} MB |\n\n\
         | class | images | IoU (cumulative) | IoU (per image) |\n|---|---|---|---|\n",
        model.params.algorithm().display_name(),
        dataset_dir.display(),
        protocol.shots,
        protocol.seed,
        pct(r.miou_cumulative),
        pct(r.miou_per_image),
        pct(r.fb_iou),
        pct(r.precision),
        pct(r.recall),
        ms(p50),
        ms(p95),
        fps.map_or("-".to_string(), |f| format!("{f:.1}")),
        peak.map_or("-".to_string(), |m| format!("{m:.0}")),
    );
    for c in &r.classes {
        md.push_str(&format!(
            "| {} | {} | {:.1} % | {:.1} % |\n",
            outcome.class_names[c.class as usize],
            c.images,
            c.iou_cumulative * 100.0,
            c.iou_per_image * 100.0
        ));
    }
    let title = format!(
        "{} on {}",
        model.params.algorithm().display_name(),
        dataset_dir.file_name().map_or_else(
            || dataset_dir.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    );
    let bars: Vec<(String, f64)> = r
        .classes
        .iter()
        .map(|c| {
            (
                outcome.class_names[c.class as usize].clone(),
                c.iou_cumulative,
            )
        })
        .collect();
    let iou_png = out.join("iou_per_class.png");
    plots::iou_bars(&format!("IoU per class: {title}"), &bars)
        .and_then(|p| p.save_png(&iou_png))
        .map_err(|e| e.to_string())?;
    let latency_png = out.join("latency.png");
    plots::latency_histogram(
        &format!("Latency: {title}"),
        &outcome.latencies_ms,
        p50,
        p95,
    )
    .and_then(|p| p.save_png(&latency_png))
    .map_err(|e| e.to_string())?;
    md.push_str("\n![IoU per class](iou_per_class.png)\n\n![Latency](latency.png)\n");
    let md_path = out.join("summary.md");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    println!("{md}");
    println!(
        "report: {}, {}, {} and {}",
        json_path.display(),
        md_path.display(),
        iou_png.display(),
        latency_png.display()
    );
    Ok(())
}
