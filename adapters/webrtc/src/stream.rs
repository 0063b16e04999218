//! The one video stream all viewers share: every source frame, with the newest detections drawn
//! on it, encoded once and written to the shared track; and every processed frame's prediction
//! JSON sent on each viewer's data channel.
//!
//! It follows the pipeline's long-lived outputs, not a pipeline, so a change of source, model or
//! project goes on in the same stream. With no viewer it does nothing: frames are not even
//! drawn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use visprompt_runtime::{FrameResult, PipelineOutputs, RgbImage, VideoFrame};
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::media::Sample;

use crate::h264::H264Encoder;
use crate::overlay::{self, OverlayStyle};
use crate::peers::Peers;

/// Detections older than this (relative to the frame being drawn) are not drawn: after a model
/// is switched off, its last boxes must not hang on the video.
const STALE_RESULT: Duration = Duration::from_secs(3);

/// A viewer whose data channel has this much unsent is skipped until it drains: predictions are
/// newest-wins like everything else on the live path.
const MAX_BUFFERED_PREDICTIONS: usize = 1 << 20;

/// Counters of the stream, for status and benchmarks.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub frames_encoded: AtomicU64,
    pub key_frames: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Sum of encode (draw + convert + encode) times, microseconds.
    pub encode_micros: AtomicU64,
    pub predictions_sent: AtomicU64,
}

/// A snapshot of [`StreamStats`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamFigures {
    pub frames_encoded: u64,
    pub key_frames: u64,
    pub bytes_sent: u64,
    pub mean_encode_ms: f64,
    pub predictions_sent: u64,
}

impl StreamStats {
    pub fn figures(&self) -> StreamFigures {
        let frames = self.frames_encoded.load(Ordering::Relaxed);
        StreamFigures {
            frames_encoded: frames,
            key_frames: self.key_frames.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            mean_encode_ms: if frames == 0 {
                0.0
            } else {
                self.encode_micros.load(Ordering::Relaxed) as f64 / frames as f64 / 1000.0
            },
            predictions_sent: self.predictions_sent.load(Ordering::Relaxed),
        }
    }
}

/// How long a still picture (a paused or navigable source) waits before it is sent again, so
/// that viewers joining later see it and new detections on it show up.
const REPEAT_STILL: Duration = Duration::from_millis(500);

pub(crate) async fn run(
    peers: Arc<Peers>,
    outputs: PipelineOutputs,
    style: OverlayStyle,
    key_frames: Arc<AtomicBool>,
    stats: Arc<StreamStats>,
) {
    let mut viewers = peers.viewer_count();
    let mut frames = outputs.frames.subscribe();
    let mut results = outputs.results.subscribe();
    let mut encoding = Encoding {
        encoder: Some(H264Encoder::new(30.0)),
        previous_capture: None,
        last_sent: Instant::now(),
        style,
        key_frames,
        stats,
    };
    loop {
        if *viewers.borrow_and_update() == 0 {
            if viewers.changed().await.is_err() {
                return;
            }
            encoding.key_frames.store(true, Ordering::Relaxed);
            continue;
        }
        let repeat_at = tokio::time::Instant::from_std(encoding.last_sent + REPEAT_STILL);
        tokio::select! {
            frame = frames.next() => {
                let Some(frame) = frame else { return };
                let duration = encoding.previous_capture
                    .map_or(Duration::from_millis(33), |p| frame.captured_at.saturating_duration_since(p));
                encoding.previous_capture = Some(frame.captured_at);
                encoding.send(&peers, (*frame).clone(), outputs.results.latest(), duration).await;
            }
            () = tokio::time::sleep_until(repeat_at) => {
                match outputs.frames.latest() {
                    Some(frame) => {
                        let duration = encoding.last_sent.elapsed();
                        encoding.send(&peers, (*frame).clone(), outputs.results.latest(), duration).await;
                        greet_new_viewers(&peers, outputs.results.latest(), &encoding.stats).await;
                    }
                    None => encoding.last_sent = Instant::now(),
                }
            }
            result = results.next() => {
                let Some(result) = result else { return };
                send_predictions(&peers, &result, &encoding.stats).await;
            }
            changed = viewers.changed() => {
                if changed.is_err() { return }
            }
        }
    }
}

/// The encoder and what the stream remembers between frames.
struct Encoding {
    encoder: Option<H264Encoder>,
    previous_capture: Option<Instant>,
    last_sent: Instant,
    style: OverlayStyle,
    key_frames: Arc<AtomicBool>,
    stats: Arc<StreamStats>,
}

impl Encoding {
    /// Draws, encodes (off the async threads) and writes one frame to the shared track.
    async fn send(
        &mut self,
        peers: &Peers,
        frame: VideoFrame,
        newest: Option<Arc<FrameResult>>,
        duration: Duration,
    ) {
        self.last_sent = Instant::now();
        let mut enc = self
            .encoder
            .take()
            .expect("the encoder is put back after each frame");
        if self.key_frames.swap(false, Ordering::Relaxed) {
            enc.request_key_frame();
        }
        let style = self.style;
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let encoded = enc_frame(&mut enc, &compose(&frame, newest.as_deref(), &style));
            (enc, encoded)
        })
        .await;
        // Cancelled only when the runtime shuts down; a fresh encoder is then as good as any.
        let (enc, encoded) = joined.unwrap_or_else(|_| (H264Encoder::new(30.0), None));
        self.encoder = Some(enc);
        // Nothing, or skipped by the rate control: its time goes to the next sample.
        let Some(encoded) = encoded.filter(|e| !e.data.is_empty()) else {
            return;
        };
        let stats = &self.stats;
        stats
            .encode_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
        stats
            .key_frames
            .fetch_add(u64::from(encoded.key_frame), Ordering::Relaxed);
        stats
            .bytes_sent
            .fetch_add(encoded.data.len() as u64, Ordering::Relaxed);
        let sample = Sample {
            data: Bytes::from(encoded.data),
            timestamp: SystemTime::now(),
            duration: duration.clamp(Duration::from_millis(1), Duration::from_secs(1)),
            ..Default::default()
        };
        if let Err(e) = peers.track().write_sample(&sample).await {
            tracing::debug!("writing a video sample: {e}");
        }
    }
}

/// The frame with the newest detections drawn on it, if they are recent enough.
fn compose(frame: &VideoFrame, newest: Option<&FrameResult>, style: &OverlayStyle) -> RgbImage {
    let mut image = (*frame.image).clone();
    if let Some(result) = newest {
        let age = frame
            .captured_at
            .saturating_duration_since(result.frame.captured_at);
        if age <= STALE_RESULT {
            overlay::draw(&mut image, result, style);
        }
    }
    image
}

fn enc_frame(encoder: &mut H264Encoder, image: &RgbImage) -> Option<crate::h264::EncodedFrame> {
    match encoder.encode(image) {
        Ok(encoded) => Some(encoded),
        Err(e) => {
            tracing::warn!("live video: {e}");
            None
        }
    }
}

async fn send_predictions(peers: &Peers, result: &FrameResult, stats: &StreamStats) {
    send_predictions_to(peers, result, stats, false).await;
}

/// The newest result to viewers whose channel opened after it was published.
async fn greet_new_viewers(peers: &Peers, latest: Option<Arc<FrameResult>>, stats: &StreamStats) {
    if let Some(result) = latest {
        send_predictions_to(peers, &result, stats, true).await;
    }
}

async fn send_predictions_to(
    peers: &Peers,
    result: &FrameResult,
    stats: &StreamStats,
    only_new: bool,
) {
    let json = result.payload_json();
    for peer in peers.snapshot() {
        if only_new && peer.greeted.load(Ordering::Relaxed) {
            continue;
        }
        let channel = peer.predictions.lock().expect("channel slot").clone();
        let Some(channel) = channel else { continue };
        if channel.ready_state() != RTCDataChannelState::Open
            || channel.buffered_amount().await > MAX_BUFFERED_PREDICTIONS
        {
            continue;
        }
        if channel.send_text(json.to_string()).await.is_ok() {
            peer.greeted.store(true, Ordering::Relaxed);
            stats.predictions_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
