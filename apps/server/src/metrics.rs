//! `/metrics`: the live pipeline's and the live view's counters in the Prometheus text format. Written by hand (a few
//! gauges and counters) rather than through a metrics crate: nothing else needs one.

use std::fmt::Write;

use visprompt_runtime::{PipelineHandle, PipelineStatus};

/// The exposition of `status`; counters restart when the pipeline does, as Prometheus expects.
pub fn render(status: &PipelineStatus) -> String {
    let mut out = String::new();
    let project = status.project_id.map(|p| p.to_string()).unwrap_or_default();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |v: f64| vec![(format!("{{project_id=\"{project}\"}}"), v)];
    metric(
        "visprompt_pipeline_state",
        "gauge",
        "1 for the pipeline's current state.",
        &["idle", "starting", "running", "error"]
            .iter()
            .map(|s| {
                (
                    format!("{{project_id=\"{project}\",state=\"{s}\"}}"),
                    f64::from(u8::from(status.state.as_str() == *s)),
                )
            })
            .collect::<Vec<_>>(),
    );
    let d = &status.detector;
    metric(
        "visprompt_source_frames_total",
        "counter",
        "Frames the source produced.",
        &plain(status.source.frames as f64),
    );
    metric(
        "visprompt_source_fps",
        "gauge",
        "Source frames per second over the last 2 s.",
        &plain(status.source.fps),
    );
    metric(
        "visprompt_detector_processed_total",
        "counter",
        "Frames the detector ran on.",
        &plain(d.processed as f64),
    );
    metric(
        "visprompt_detector_dropped_total",
        "counter",
        "Frames skipped because a newer one arrived while the detector was busy.",
        &plain(d.dropped as f64),
    );
    metric(
        "visprompt_detector_passed_through_total",
        "counter",
        "Frames that passed through without a detector.",
        &plain(d.passed_through as f64),
    );
    metric(
        "visprompt_detector_fps",
        "gauge",
        "Processed frames per second over the last 2 s.",
        &plain(d.fps),
    );
    let quantiles = |p50: Option<f64>, p95: Option<f64>| {
        [("0.5", p50), ("0.95", p95)]
            .into_iter()
            .filter_map(|(q, v)| {
                v.map(|v| {
                    (
                        format!("{{project_id=\"{project}\",quantile=\"{q}\"}}"),
                        v / 1e3,
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    metric(
        "visprompt_pipeline_latency_seconds",
        "gauge",
        "Capture to published result, over the last 256 frames.",
        &quantiles(d.latency_p50_ms, d.latency_p95_ms),
    );
    metric(
        "visprompt_inference_seconds",
        "gauge",
        "Time in the detector, over the last 256 frames.",
        &quantiles(d.inference_p50_ms, d.inference_p95_ms),
    );
    let per_sink = |f: &dyn Fn(&visprompt_runtime::SinkStatus) -> f64| {
        status
            .sinks
            .iter()
            .map(|s| {
                (
                    format!(
                        "{{project_id=\"{project}\",sink_id=\"{}\",sink_type=\"{}\"}}",
                        s.sink_id,
                        s.kind.as_str()
                    ),
                    f(s),
                )
            })
            .collect::<Vec<_>>()
    };
    metric(
        "visprompt_sink_published_total",
        "counter",
        "Results handed to the sink.",
        &per_sink(&|s| s.published as f64),
    );
    metric(
        "visprompt_sink_skipped_total",
        "counter",
        "Results replaced by newer ones before the sink took them.",
        &per_sink(&|s| s.skipped as f64),
    );
    metric(
        "visprompt_sink_errors_total",
        "counter",
        "Results the sink failed to publish.",
        &per_sink(&|s| s.errors as f64),
    );
    out
}

/// The `/metrics` endpoint over `pipeline`.
pub fn endpoint(
    pipeline: PipelineHandle,
    live: std::sync::Arc<visprompt_webrtc::LiveView>,
) -> impl poem::Endpoint<Output = poem::Response> {
    poem::endpoint::make_sync(move |_| {
        let mut text = render(&pipeline.status());
        text.push_str(&render_live(live.viewer_count(), &live.stats()));
        poem::Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text)
    })
}

/// The live view's viewers and its one shared encoder.
pub fn render_live(viewers: usize, figures: &visprompt_webrtc::StreamFigures) -> String {
    let mut out = String::new();
    let rows: [(&str, &str, &str, f64); 5] = [
        (
            "visprompt_webrtc_viewers",
            "gauge",
            "Live-view peer connections.",
            viewers as f64,
        ),
        (
            "visprompt_webrtc_frames_encoded_total",
            "counter",
            "Frames drawn and H.264-encoded once for all viewers.",
            figures.frames_encoded as f64,
        ),
        (
            "visprompt_webrtc_key_frames_total",
            "counter",
            "Key frames among them.",
            figures.key_frames as f64,
        ),
        (
            "visprompt_webrtc_encode_ms_mean",
            "gauge",
            "Mean time to draw and encode a frame, milliseconds.",
            figures.mean_encode_ms,
        ),
        (
            "visprompt_webrtc_predictions_sent_total",
            "counter",
            "Prediction messages sent on viewers' data channels.",
            figures.predictions_sent as f64,
        ),
    ];
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}
