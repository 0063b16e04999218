//! `just bench-webrtc`: what the live view costs and how late its video is.
//!
//! 1. Encoding: overlays drawn and H.264 encoded (one thread) on synthetic-scene frames with a
//!    detection, per frame and as frames/s, at 640x480 and 1280x720.
//! 2. Latency: frames are published into pipeline outputs at 30 frames/s with their sequence
//!    number written into the picture as a row of black and white blocks; a WebRTC viewer peer in
//!    the same process (real ICE, DTLS, SRTP over loopback) decodes the video, reads the number
//!    back and looks up when that frame was captured. Capture-to-decoded p50/p95, per size.
//!
//! Usage: `bench-webrtc [SECONDS]` (per latency run, default 10).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use visprompt_domain::{Color, LabelId, ProjectId};
use visprompt_media::SyntheticScene;
use visprompt_media::synthetic::ObjectKind;
use visprompt_runtime::{
    Detection, FrameResult, LabelTable, PipelineOutputs, RgbImage, VideoFrame,
};
use visprompt_webrtc::h264::H264Encoder;
use visprompt_webrtc::overlay::{self, OverlayStyle};
use visprompt_webrtc::viewer::{ConnectionState, Viewer, ViewerConfig};
use visprompt_webrtc::{LiveView, PeerLimits, WebRtcSettings};

const SEQ_BITS: u32 = 20;
const BLOCK: u32 = 16;

/// Pre-rendered frames of the scene at one size, each with the disc's detection.
struct Clip {
    frames: Vec<(Arc<RgbImage>, Detection)>,
    labels: Arc<LabelTable>,
}

fn clip(width: u32, height: u32, count: u64) -> Clip {
    let scene = SyntheticScene::new(width, height, 7);
    let label = LabelId::new();
    let frames = (0..count)
        .map(|t| {
            let mask = scene
                .ground_truth(t)
                .into_iter()
                .find(|(k, _)| *k == ObjectKind::StripedDisc)
                .expect("the scene has a disc")
                .1;
            (
                Arc::new(scene.render(t)),
                Detection::from_mask(label, 0.93, mask).expect("a non-empty disc"),
            )
        })
        .collect();
    Clip {
        frames,
        labels: Arc::new(LabelTable::from_entries([(
            label,
            "disc",
            Color::rgb(0xE6, 0x39, 0x46),
        )])),
    }
}

fn video_frame(image: Arc<RgbImage>, seq: u64) -> VideoFrame {
    VideoFrame {
        seq,
        captured_at: Instant::now(),
        timestamp: chrono::Utc::now(),
        image,
        index: None,
    }
}

fn result_for(clip: &Clip, frame: &VideoFrame, detection: &Detection) -> FrameResult {
    FrameResult::new(
        ProjectId::new(),
        frame.clone(),
        vec![detection.clone()],
        clip.labels.clone(),
        Duration::ZERO,
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Overlay + encode, one thread, for `seconds`.
fn bench_encode(width: u32, height: u32, seconds: f64) {
    let clip = clip(width, height, 60);
    let style = OverlayStyle::default();
    let mut encoder = H264Encoder::new(30.0);
    let (mut draw_ms, mut encode_ms, mut bytes) = (Vec::new(), Vec::new(), 0usize);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed().as_secs_f64() < seconds || i < 30 {
        let (image, detection) = &clip.frames[i % clip.frames.len()];
        let frame = video_frame(image.clone(), i as u64);
        let result = result_for(&clip, &frame, detection);
        let t0 = Instant::now();
        let mut picture = (**image).clone();
        overlay::draw(&mut picture, &result, &style);
        let t1 = Instant::now();
        let encoded = encoder.encode(&picture).expect("encodes");
        let t2 = Instant::now();
        bytes += encoded.data.len();
        draw_ms.push((t1 - t0).as_secs_f64() * 1e3);
        encode_ms.push((t2 - t1).as_secs_f64() * 1e3);
        i += 1;
    }
    let n = i as f64;
    let total: f64 = draw_ms.iter().sum::<f64>() + encode_ms.iter().sum::<f64>();
    encode_ms.sort_by(f64::total_cmp);
    draw_ms.sort_by(f64::total_cmp);
    println!(
        "encode {width}x{height}: {:.1} frames/s (overlay + encode, one thread); H.264 encode p50 {:.2} ms p95 {:.2} ms = {:.0} frames/s; overlay p50 {:.2} ms; {:.0} kbit/s at 30 fps",
        n / (total / 1e3),
        percentile(&encode_ms, 0.5),
        percentile(&encode_ms, 0.95),
        1e3 / percentile(&encode_ms, 0.5),
        percentile(&draw_ms, 0.5),
        bytes as f64 * 8.0 / n * 30.0 / 1e3,
    );
}

/// Writes `seq` into the top-left corner as blocks: white = 1, black = 0.
fn stamp(image: &mut RgbImage, seq: u64) {
    for bit in 0..SEQ_BITS {
        let on = (seq >> bit) & 1 == 1;
        let v = if on { 255 } else { 0 };
        for y in 0..BLOCK {
            for x in 0..BLOCK {
                image.put_pixel(bit * BLOCK + x, y, [v, v, v]);
            }
        }
    }
}

fn read_stamp(image: &RgbImage) -> u64 {
    (0..SEQ_BITS)
        .map(|bit| {
            let p = image.pixel(bit * BLOCK + BLOCK / 2, BLOCK / 2);
            let luma = (u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3;
            u64::from(luma > 128) << bit
        })
        .sum()
}

async fn bench_latency(width: u32, height: u32, seconds: f64) {
    let clip = Arc::new(clip(width, height, 60));
    let outputs = PipelineOutputs::default();
    let live = LiveView::start(
        WebRtcSettings::default(),
        PeerLimits {
            loopback_only: true,
            ..PeerLimits::default()
        },
        outputs.clone(),
        OverlayStyle::default(),
    )
    .expect("the live view starts");
    let project = ProjectId::new();
    let mut viewer = Viewer::connect(
        ViewerConfig {
            loopback_only: true,
            ..ViewerConfig::default()
        },
        |offer| {
            let live = &live;
            async move {
                live.offer(project, "bench", offer)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await
    .expect("the viewer connects");
    assert!(
        viewer
            .wait_for(ConnectionState::Connected, Duration::from_secs(10))
            .await,
        "the viewer connects"
    );

    // The source: 30 frames/s, each stamped, with its detection published as the result.
    let captured: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let source = {
        let (outputs, clip, captured) = (outputs.clone(), clip.clone(), captured.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(33_333));
            for seq in 1u64.. {
                tick.tick().await;
                let (image, detection) = &clip.frames[seq as usize % clip.frames.len()];
                let mut image = (**image).clone();
                stamp(&mut image, seq);
                let frame = video_frame(Arc::new(image), seq);
                captured
                    .lock()
                    .expect("capture table")
                    .insert(seq, frame.captured_at);
                let result = result_for(&clip, &frame, detection);
                outputs.frames.publish(Arc::new(frame));
                outputs.results.publish(Arc::new(result));
            }
        })
    };

    // Warm up for a second, then measure.
    let warm = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm {
        let _ = viewer.next_frame(Duration::from_millis(100)).await;
    }
    let mut latencies = Vec::new();
    let (mut unreadable, mut received) = (0, 0u64);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        let Some(frame) = viewer.next_frame(Duration::from_secs(2)).await else {
            break;
        };
        received += 1;
        let seq = read_stamp(&frame.image);
        match captured.lock().expect("capture table").get(&seq) {
            Some(at) => latencies.push(frame.received_at.duration_since(*at).as_secs_f64() * 1e3),
            None => unreadable += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    source.abort();
    latencies.sort_by(f64::total_cmp);
    let stats = live.stats();
    println!(
        "latency {width}x{height}@30: capture-to-decoded p50 {:.1} ms p95 {:.1} ms over {} frames ({:.1} frames/s received, {unreadable} unreadable); server encode mean {:.2} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies.len(),
        received as f64 / elapsed,
        stats.mean_encode_ms,
    );
    viewer.close().await;
    live.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    println!("bench-webrtc: {seconds} s per latency run, 2 worker threads");
    for (w, h) in [(640, 480), (1280, 720)] {
        bench_encode(w, h, seconds.min(5.0));
    }
    for (w, h) in [(640, 480), (1280, 720)] {
        bench_latency(w, h, seconds).await;
    }
}
