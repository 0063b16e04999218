//! Two evaluation reports side by side: the overall figures, speed and per-class IoU of report
//! A and report B with the difference B − A, as a Markdown table.

use serde_json::Value;

/// The rows compared: label, JSON path, whether it is a fraction shown in percent.
const ROWS: &[(&str, &[&str], bool)] = &[
    ("mIoU (cumulative)", &["overall", "miou_cumulative"], true),
    ("mIoU (per image)", &["overall", "miou_per_image"], true),
    ("FB-IoU", &["overall", "fb_iou"], true),
    (
        "precision @ IoU 0.5",
        &["overall", "precision_at_iou_0_5"],
        true,
    ),
    ("recall @ IoU 0.5", &["overall", "recall_at_iou_0_5"], true),
    ("latency p50 (ms)", &["speed", "latency_p50_ms"], false),
    ("latency p95 (ms)", &["speed", "latency_p95_ms"], false),
    ("throughput (frames/s)", &["speed", "throughput_fps"], false),
    ("peak memory (MB)", &["speed", "peak_rss_mb"], false),
];

fn at(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn cell(v: Option<f64>, percent: bool) -> String {
    match v {
        None => "-".into(),
        Some(v) if percent => format!("{:.1} %", v * 100.0),
        Some(v) => format!("{v:.1}"),
    }
}

fn diff(a: Option<f64>, b: Option<f64>, percent: bool) -> String {
    match (a, b) {
        (Some(a), Some(b)) if percent => format!("{:+.1} pt", (b - a) * 100.0),
        (Some(a), Some(b)) => format!("{:+.1}", b - a),
        _ => "-".into(),
    }
}

/// The comparison of report `a` with report `b` (as `visprompt-harness eval` writes them).
pub fn compare(a: &Value, b: &Value) -> String {
    let name = |r: &Value| {
        format!(
            "{} ({}-shot)",
            r["model"].as_str().unwrap_or("?"),
            r["protocol"]["shots"]
        )
    };
    let mut out = format!(
        "| | A: {} | B: {} | B − A |\n|---|---|---|---|\n",
        name(a),
        name(b)
    );
    for (label, path, percent) in ROWS {
        let (x, y) = (at(a, path), at(b, path));
        out.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            cell(x, *percent),
            cell(y, *percent),
            diff(x, y, *percent)
        ));
    }
    // Per class, in A's order, then classes only B has.
    let classes = |r: &Value| -> Vec<(String, Option<f64>)> {
        r["classes"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|c| {
                        (
                            c["class"].as_str().unwrap_or("?").to_string(),
                            c["iou_cumulative"].as_f64(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ca, cb) = (classes(a), classes(b));
    let mut names: Vec<&String> = ca.iter().map(|(n, _)| n).collect();
    for (n, _) in &cb {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    for n in names {
        let get =
            |c: &[(String, Option<f64>)]| c.iter().find(|(m, _)| m == n).and_then(|(_, v)| *v);
        let (x, y) = (get(&ca), get(&cb));
        out.push_str(&format!(
            "| IoU {n} | {} | {} | {} |\n",
            cell(x, true),
            cell(y, true),
            diff(x, y, true)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_and_missing_values_are_shown() {
        let a = json!({"model": "classical", "protocol": {"shots": 1},
            "overall": {"miou_cumulative": 0.5, "fb_iou": 0.75},
            "speed": {"latency_p50_ms": 10.0},
            "classes": [{"class": "cat", "iou_cumulative": 0.4}]});
        let b = json!({"model": "matcher", "protocol": {"shots": 1},
            "overall": {"miou_cumulative": 0.625, "fb_iou": null},
            "speed": {"latency_p50_ms": 7.5},
            "classes": [{"class": "cat", "iou_cumulative": 0.5}, {"class": "dog", "iou_cumulative": 0.9}]});
        let t = compare(&a, &b);
        assert!(
            t.contains("| mIoU (cumulative) | 50.0 % | 62.5 % | +12.5 pt |"),
            "{t}"
        );
        assert!(t.contains("| FB-IoU | 75.0 % | - | - |"), "{t}");
        assert!(
            t.contains("| latency p50 (ms) | 10.0 | 7.5 | -2.5 |"),
            "{t}"
        );
        assert!(
            t.contains("| IoU cat | 40.0 % | 50.0 % | +10.0 pt |"),
            "{t}"
        );
        assert!(t.contains("| IoU dog | - | 90.0 % | - |"), "{t}");
    }
}
