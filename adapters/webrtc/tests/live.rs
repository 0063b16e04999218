//! The live view end to end inside one process: frames and results published into pipeline
//! outputs reach real WebRTC viewer peers (ICE, DTLS, SRTP, SCTP over loopback) as decodable
//! H.264 with the overlays drawn, and as prediction JSON on the data channel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use visprompt_domain::{Color, LabelId, ProjectId};
use visprompt_runtime::{
    BitMask, Detection, FrameResult, LabelTable, PipelineOutputs, RgbImage, VideoFrame,
};
use visprompt_webrtc::viewer::{Viewer, ViewerConfig};
use visprompt_webrtc::{LiveView, OverlayStyle, PeerLimits, WebRtcSettings};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

const W: u32 = 320;
const H: u32 = 240;
const LABEL_COLOUR: [u8; 3] = [230, 25, 75];

fn disc(cx: i32, cy: i32) -> BitMask {
    BitMask::from_fn(W, H, |x, y| {
        let (dx, dy) = (x as i32 - cx, y as i32 - cy);
        dx * dx + dy * dy < 40 * 40
    })
}

/// A grey scene with a white disc at (160, 120), and a result detecting it.
fn publish(outputs: &PipelineOutputs, seq: u64, label: LabelId, project: ProjectId) {
    let mask = disc(160, 120);
    let mut image = RgbImage::new(W, H);
    for y in 0..H {
        for x in 0..W {
            let v = if mask.get(x, y) { 240 } else { 90 };
            image.put_pixel(x, y, [v, v, v]);
        }
    }
    let frame = VideoFrame {
        seq,
        captured_at: Instant::now(),
        timestamp: chrono::Utc::now(),
        image: Arc::new(image),
        index: None,
    };
    let labels = LabelTable::from_entries([(
        label,
        "disc",
        Color::rgb(LABEL_COLOUR[0], LABEL_COLOUR[1], LABEL_COLOUR[2]),
    )]);
    let result = FrameResult::new(
        project,
        frame.clone(),
        vec![Detection::from_mask(label, 0.9, mask).unwrap()],
        Arc::new(labels),
        Duration::from_millis(1),
    );
    outputs.results.publish(Arc::new(result));
    outputs.frames.publish(Arc::new(frame));
}

fn start() -> (LiveView, PipelineOutputs) {
    let outputs = PipelineOutputs::default();
    let live = LiveView::start(
        WebRtcSettings::default(),
        PeerLimits {
            loopback_only: true,
            ..PeerLimits::default()
        },
        outputs.clone(),
        OverlayStyle {
            outlines: false,
            boxes: false,
            captions: false,
            ..OverlayStyle::default()
        },
    )
    .unwrap();
    (live, outputs)
}

async fn connect(live: &LiveView, project: ProjectId, session: &str) -> Viewer {
    Viewer::connect(
        ViewerConfig {
            loopback_only: true,
            ..ViewerConfig::default()
        },
        |offer| async move {
            live.offer(project, session, offer)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
    .unwrap()
}

/// Publishes frames at ~30 fps until the viewer has a decoded frame.
async fn frame_while_publishing(
    viewer: &mut Viewer,
    outputs: &PipelineOutputs,
    label: LabelId,
    project: ProjectId,
    seq: &mut u64,
) -> Option<visprompt_webrtc::viewer::ReceivedFrame> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        *seq += 1;
        publish(outputs, *seq, label, project);
        if let Some(frame) = viewer.next_frame(Duration::from_millis(33)).await {
            return Some(frame);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_the_label_colour_on_the_object_and_gets_the_predictions() {
    let (live, outputs) = start();
    let (label, project) = (LabelId::new(), ProjectId::new());
    let mut viewer = connect(&live, project, "viewer-1").await;
    assert!(
        viewer
            .wait_for(RTCPeerConnectionState::Connected, Duration::from_secs(10))
            .await
    );
    assert_eq!(live.viewer_count(), 1);

    let mut seq = 0;
    let frame = frame_while_publishing(&mut viewer, &outputs, label, project, &mut seq)
        .await
        .unwrap_or_else(|| panic!("a decoded frame within 15 s; stream {:?}", live.stats()));
    assert_eq!((frame.image.width(), frame.image.height()), (W, H));
    // Inside the disc: white tinted 45 % towards the label colour; the red channel clearly
    // dominates green and blue. Outside: the grey background, untinted.
    let inside = frame.image.pixel(160, 120);
    assert!(
        inside[0] > inside[1] + 50 && inside[0] > inside[2] + 30,
        "inside {inside:?}"
    );
    let outside = frame.image.pixel(20, 20);
    assert!(
        outside.iter().all(|&c| c.abs_diff(90) < 12),
        "outside {outside:?}"
    );

    // Predictions: the same JSON as the sinks, with the frame's sequence number.
    let mut prediction = None;
    for _ in 0..60 {
        seq += 1;
        publish(&outputs, seq, label, project);
        if let Some(p) = viewer.next_prediction(Duration::from_millis(50)).await {
            prediction = Some(p);
            break;
        }
    }
    let prediction = prediction.expect("a prediction on the data channel");
    let json: serde_json::Value = serde_json::from_str(&prediction.json).unwrap();
    assert_eq!(json["project_id"], project.to_string());
    assert!(json["frame"]["sequence"].as_u64().unwrap() >= 1);
    assert_eq!(json["detections"][0]["label_name"], "disc");
    assert!(json["frame"]["captured_at"].is_string(), "{json}");

    assert!(live.stats().frames_encoded > 0);

    // A source of another size goes on in the same stream, from a fresh key frame.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut resized = None;
    while Instant::now() < deadline && resized.is_none() {
        seq += 1;
        let frame = VideoFrame {
            seq,
            captured_at: Instant::now(),
            timestamp: chrono::Utc::now(),
            image: Arc::new(RgbImage::new(160, 120)),
            index: None,
        };
        outputs.frames.publish(Arc::new(frame));
        if let Some(f) = viewer.next_frame(Duration::from_millis(33)).await
            && f.image.width() == 160
        {
            resized = Some(f);
        }
    }
    let resized = resized.unwrap_or_else(|| panic!("no 160x120 frame; stream {:?}", live.stats()));
    assert_eq!(resized.image.height(), 120);
    viewer.close().await;
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_viewers_watch_at_once_and_one_leaving_does_not_disturb_the_others() {
    let (live, outputs) = start();
    let (label, project) = (LabelId::new(), ProjectId::new());
    let mut a = connect(&live, project, "a").await;
    let mut b = connect(&live, project, "b").await;
    let mut c = connect(&live, project, "c").await;
    for v in [&mut a, &mut b, &mut c] {
        assert!(
            v.wait_for(RTCPeerConnectionState::Connected, Duration::from_secs(10))
                .await
        );
    }
    assert_eq!(live.viewer_count(), 3);
    let mut seq = 0;
    for v in [&mut a, &mut b, &mut c] {
        assert!(
            frame_while_publishing(v, &outputs, label, project, &mut seq)
                .await
                .is_some()
        );
    }
    let encoded_before = live.stats().frames_encoded;

    // One hangs up through the API, one just goes away.
    assert!(live.hang_up("a").await);
    assert!(!live.hang_up("a").await, "a second hang-up finds nothing");
    c.close().await;
    let gone = Instant::now() + Duration::from_secs(20);
    while live.viewer_count() > 1 && Instant::now() < gone {
        seq += 1;
        publish(&outputs, seq, label, project);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live.session_ids(), vec!["b".to_owned()]);

    // The remaining viewer still gets fresh frames.
    b.drain();
    assert!(
        frame_while_publishing(&mut b, &outputs, label, project, &mut seq)
            .await
            .is_some()
    );
    assert!(live.stats().frames_encoded > encoded_before);
    a.close().await;
    b.close().await;
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offering_again_with_the_same_session_id_replaces_the_old_connection() {
    let (live, _outputs) = start();
    let project = ProjectId::new();
    let first = connect(&live, project, "same").await;
    let second = connect(&live, project, "same").await;
    assert_eq!(live.viewer_count(), 1);
    first.close().await;
    second.close().await;
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_offers_are_refused_and_leave_no_session_behind() {
    let (live, _outputs) = start();
    let project = ProjectId::new();
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(20_000));
    let cases: Vec<(&str, String, &str)> = vec![
        ("s", "".into(), "does not start with `v=0`"),
        ("s", "not sdp at all".into(), "does not start with `v=0`"),
        ("s", huge, "at most"),
        ("bad id!", "v=0\r\n".into(), "session id"),
        ("s", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n".into(), "H.264"),
        (
            "s",
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n".into(),
            "not valid",
        ),
    ];
    for (session, sdp, expected) in cases {
        let err = live
            .offer(project, session, sdp)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert_eq!(live.viewer_count(), 0);
    live.shutdown().await;
}

/// A still source (an image folder between seeks) publishes one result and then nothing: a viewer
/// joining afterwards still gets that result on its data channel, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_a_still_source_gets_the_newest_result_once() {
    let (live, outputs) = start();
    let (label, project) = (LabelId::new(), ProjectId::new());
    publish(&outputs, 7, label, project);
    let mut viewer = connect(&live, project, "late-viewer").await;
    let prediction = viewer
        .next_prediction(Duration::from_secs(10))
        .await
        .expect("the newest result arrives without a new frame");
    let payload: serde_json::Value = serde_json::from_str(&prediction.json).unwrap();
    assert_eq!(payload["frame"]["sequence"], 7, "{payload}");
    // Still pictures keep being re-sent; the result is not.
    assert!(
        viewer
            .next_prediction(Duration::from_millis(1500))
            .await
            .is_none(),
        "the same result is sent once"
    );
    viewer.close().await;
    live.shutdown().await;
}
