//! The command line end to end: `generate` writes a dataset, `eval` reads it and writes a report
//! whose figures agree with the summary; bad arguments are refused with a message.

use std::process::Command;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_visprompt-harness"))
}

#[test]
fn generate_then_eval_writes_a_consistent_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("report");
    let status = harness()
        .args([
            "generate",
            data.to_str().unwrap(),
            "--per-class",
            "3",
            "--size",
            "96x72",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let output = harness()
        .args([
            "eval",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["model"], "classical");
    assert_eq!(report["protocol"]["seed"], 3);
    assert_eq!(
        report["speed"]["targets"], 6,
        "3 classes x (3 images - 1 reference)"
    );
    assert_eq!(report["classes"].as_array().unwrap().len(), 3);
    let miou = report["overall"]["miou_cumulative"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&miou));
    assert!(
        report["speed"]["latency_p95_ms"].as_f64().unwrap()
            >= report["speed"]["latency_p50_ms"].as_f64().unwrap()
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains(&format!("| mIoU (cumulative) | {:.1} % |", miou * 100.0)),
        "{summary}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("mIoU"));
    // The plots: PNGs with one bar per class and the latency histogram.
    for (name, min_width) in [("iou_per_class.png", 480), ("latency.png", 720)] {
        let png = image::open(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(png.width() >= min_width && png.height() == 420, "{name}");
        assert!(
            summary.contains(&format!("]({name})")),
            "{name} in {summary}"
        );
    }
    // A report compared with itself: no difference anywhere.
    let report_path = out.join("report.json");
    let output = harness()
        .args([
            "compare",
            report_path.to_str().unwrap(),
            report_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("| mIoU (cumulative) |") && table.contains("+0.0 pt"),
        "{table}"
    );
}

#[test]
fn bad_arguments_and_datasets_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = harness()
        .args(["eval", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a dataset"));
    let output = harness()
        .args(["eval", dir.path().to_str().unwrap(), "--model", "magic"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let output = harness()
        .args(["eval", "x", "--frobnicate", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown option --frobnicate"));
}
