//! The WebRTC live view through the HTTP API, with real viewer peers: signalling, the annotated
//! video and the predictions channel, viewers across a source switch, ICE server configuration
//! (static and TURN REST), advertised addresses, and refusals of bad offers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use visprompt_media::SyntheticScene;
use visprompt_media::synthetic::ObjectKind;
use visprompt_webrtc::viewer::{ConnectionState, ReceivedFrame, Viewer, ViewerConfig};

use crate::helpers::{Options, TestApp, png_of, spawn_app, spawn_app_with};

/// The label colour of these tests: pure green, which the synthetic scene does not contain.
const GREEN: [u8; 3] = [0, 255, 0];

/// A running project with the synthetic source; with `prompted`, a green label prompted on the
/// striped disc.
async fn project_with_stream(app: &TestApp, prompted: bool) -> String {
    let name = format!("Live {}", uuid::Uuid::new_v4().simple());
    let pid = app.post_project(&name).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    if prompted {
        let label = app
            .post_json(
                &format!("/api/v1/projects/{pid}/labels"),
                &json!({ "name": "disc", "color": "#00FF00" }),
            )
            .await;
        assert_eq!(label.status(), StatusCode::CREATED);
        let label: Value = label.json().await.unwrap();
        let scene = SyntheticScene::default();
        let frame: Value = app
            .upload_frame(&pid, png_of(&scene.render(0)), "image/png")
            .await
            .json()
            .await
            .unwrap();
        let mask = scene
            .ground_truth(0)
            .into_iter()
            .find(|(k, _)| *k == ObjectKind::StripedDisc)
            .unwrap()
            .1
            .to_rle();
        let prompt = json!({ "type": "visual", "frame_id": frame["id"], "annotations": [{
            "label_id": label["id"],
            "shape": { "type": "mask", "width": 640, "height": 480, "counts": mask.counts }
        }]});
        let resp = app
            .post_json(&format!("/api/v1/projects/{pid}/prompts"), &prompt)
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/sources"),
            &json!({ "active": true, "config": { "source_type": "synthetic" } }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    pid
}

async fn watch(address: &str, pid: &str, session: &str) -> Viewer {
    let url = format!("{address}/api/v1/projects/{pid}/offer");
    let session = session.to_owned();
    let mut viewer = Viewer::connect(
        ViewerConfig {
            loopback_only: true,
            ..ViewerConfig::default()
        },
        |sdp| async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&json!({ "webrtc_id": session, "sdp": sdp, "type": "offer" }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status() != StatusCode::OK {
                return Err(format!(
                    "{}: {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                ));
            }
            let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
            assert_eq!(answer["type"], "answer");
            Ok(answer["sdp"].as_str().unwrap().to_owned())
        },
    )
    .await
    .expect("the viewer connects through the API");
    assert!(
        viewer
            .wait_for(ConnectionState::Connected, Duration::from_secs(15))
            .await,
        "ICE and DTLS complete"
    );
    viewer
}

/// Pixels close to `colour`, and their centre.
fn coloured_pixels(frame: &ReceivedFrame, colour: [u8; 3]) -> (usize, (f64, f64)) {
    let (mut n, mut sx, mut sy) = (0usize, 0f64, 0f64);
    for y in 0..frame.image.height() {
        for x in 0..frame.image.width() {
            let p = frame.image.pixel(x, y);
            let d: i32 = p
                .iter()
                .zip(colour)
                .map(|(a, b)| (i32::from(*a) - i32::from(b)).abs())
                .sum();
            if d < 90 {
                n += 1;
                sx += f64::from(x);
                sy += f64::from(y);
            }
        }
    }
    let centre = if n == 0 {
        (0.0, 0.0)
    } else {
        (sx / n as f64, sy / n as f64)
    };
    (n, centre)
}

async fn next_frame(viewer: &mut Viewer) -> ReceivedFrame {
    viewer
        .next_frame(Duration::from_secs(15))
        .await
        .expect("a decoded frame within 15 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_the_detections_drawn_in_the_label_colour_and_gets_the_predictions() {
    let app = spawn_app().await;
    let pid = project_with_stream(&app, true).await;
    let mut viewer = watch(&app.address, &pid, "viewer-1").await;

    // Predictions: the sinks' JSON, for this project, naming the label.
    let deadline = Instant::now() + Duration::from_secs(30);
    let prediction = loop {
        let p = viewer
            .next_prediction(Duration::from_secs(5))
            .await
            .expect("predictions flow on the data channel");
        let json: Value = serde_json::from_str(&p.json).unwrap();
        if json["detections"].as_array().is_some_and(|d| !d.is_empty()) {
            break json;
        }
        assert!(Instant::now() < deadline, "no detection within 30 s");
    };
    assert_eq!(prediction["project_id"], pid.as_str());
    assert_eq!(prediction["detections"][0]["label_name"], "disc");
    assert!(prediction["frame"]["sequence"].as_u64().is_some());

    // Video: frames show green overlays where the detector found the disc shortly before (the
    // overlay is the newest result when the frame was encoded; in a debug build the detector
    // runs at a few frames per second while the disc moves, and may miss it in some frames).
    let mut recent: Vec<(Instant, (f64, f64))> = Vec::new();
    let mut matched = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while matched.is_none() && Instant::now() < deadline {
        while viewer.frames.try_recv().is_ok() {}
        let frame = next_frame(&mut viewer).await;
        assert_eq!((frame.image.width(), frame.image.height()), (640, 480));
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(p) = viewer.predictions.try_recv() {
            let json: Value = serde_json::from_str(&p.json).unwrap();
            for d in json["detections"].as_array().unwrap() {
                let b: Vec<f64> = d["box"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                recent.push((p.received_at, ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)));
            }
        }
        let (green, (gx, gy)) = coloured_pixels(&frame, GREEN);
        if green < 300 {
            continue;
        }
        // The caption sits above the box, so the green centre is a little higher than the box's.
        let window = frame
            .received_at
            .checked_sub(Duration::from_millis(1500))
            .unwrap()..frame.received_at + Duration::from_millis(300);
        matched = recent
            .iter()
            .filter(|(at, _)| window.contains(at))
            .find(|(_, (bx, by))| (gx - bx).abs() < 40.0 && (gy - by).abs() < 60.0)
            .map(|_| (gx, gy));
    }
    assert!(
        matched.is_some(),
        "no frame with green overlays at a detected position; detections {recent:?}"
    );

    // /metrics counts the viewer and the frames encoded for it.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("visprompt_webrtc_viewers 1\n"),
        "{metrics}"
    );
    let encoded: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("visprompt_webrtc_frames_encoded_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(encoded > 0.0, "{metrics}");

    // The stream goes on across a source switch: the sample dataset's 320x240 frames arrive on
    // the same connection.
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/sources"),
            &json!({ "active": true, "config": { "source_type": "sample_dataset" } }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let frame = next_frame(&mut viewer).await;
        if (frame.image.width(), frame.image.height()) == (320, 240) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 320x240 frame after the switch"
        );
    }
    assert_eq!(viewer.state(), ConnectionState::Connected);

    // And across a change of the active project: another project with its own source takes
    // over, and its 640x480 frames reach the same viewer.
    let other = project_with_stream(&app, false).await;
    assert_ne!(other, pid);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let frame = next_frame(&mut viewer).await;
        if (frame.image.width(), frame.image.height()) == (640, 480) {
            break;
        }
        assert!(Instant::now() < deadline, "no frame of the other project");
    }
    assert_eq!(viewer.state(), ConnectionState::Connected);

    // Hang-up through the API; then the session is gone.
    let resp = app
        .delete(&format!("/api/v1/projects/{pid}/offer/viewer-1"))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app
        .delete(&format!("/api/v1/projects/{pid}/offer/viewer-1"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    viewer.close().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_detections_the_video_carries_no_overlay() {
    let app = spawn_app().await;
    let pid = project_with_stream(&app, false).await;
    let mut viewer = watch(&app.address, &pid, "plain").await;
    for _ in 0..3 {
        let frame = next_frame(&mut viewer).await;
        let (green, _) = coloured_pixels(&frame, GREEN);
        assert!(green < 20, "{green} green pixels with no detector");
    }
    viewer.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn bad_offers_are_refused_with_a_reason_and_leave_no_session() {
    let app = spawn_app().await;
    let active = app.post_project("Active").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inactive = app
        .post_json(
            "/api/v1/projects",
            &json!({ "name": "Idle", "active": false }),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let offer = |sdp: &str| json!({ "webrtc_id": "x", "sdp": sdp, "type": "offer" });
    let good_looking = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";
    let cases: Vec<(String, Value, StatusCode, &str)> = vec![
        (
            active.clone(),
            offer("garbage"),
            StatusCode::BAD_REQUEST,
            "v=0",
        ),
        (
            active.clone(),
            offer("v=0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"),
            StatusCode::BAD_REQUEST,
            "H.264",
        ),
        (
            active.clone(),
            offer(good_looking),
            StatusCode::BAD_REQUEST,
            "not valid",
        ),
        (
            active.clone(),
            json!({ "webrtc_id": "x", "sdp": good_looking, "type": "answer" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "type",
        ),
        (
            active.clone(),
            json!({ "webrtc_id": "../etc", "sdp": good_looking }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "webrtc_id",
        ),
        (
            active.clone(),
            offer(&format!("v=0\r\n{}", "a".repeat(70_000))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sdp",
        ),
        (
            inactive.clone(),
            offer(good_looking),
            StatusCode::CONFLICT,
            "not active",
        ),
        (
            uuid::Uuid::new_v4().to_string(),
            offer(good_looking),
            StatusCode::NOT_FOUND,
            "not found",
        ),
    ];
    for (pid, body, status, expected) in cases {
        let resp = app
            .post_json(&format!("/api/v1/projects/{pid}/offer"), &body)
            .await;
        assert_eq!(resp.status(), status, "{body}");
        let error: Value = resp.json().await.unwrap();
        let message = error["message"].as_str().unwrap().to_lowercase();
        assert!(
            message.contains(&expected.to_lowercase()),
            "{expected}: {error}"
        );
    }
    let resp = app
        .delete(&format!("/api/v1/projects/{active}/offer/nobody"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn the_webrtc_config_gives_static_servers_and_fresh_turn_rest_credentials() {
    let app = spawn_app_with(Options {
        adjust: Some(Box::new(|s| {
            s.webrtc.ice_servers = Some(r#"[{"urls":"stun:stun.example.org:3478"}]"#.into());
            s.webrtc.turn_shared_secret = Some("s3cret".into());
            s.webrtc.turn_urls = Some("turn:turn.example.org:443?transport=tcp".into());
            s.webrtc.turn_credential_ttl = Some("600".into());
        })),
        ..Options::default()
    })
    .await;
    let config: Value = app
        .get("/api/v1/system/webrtc/config")
        .await
        .json()
        .await
        .unwrap();
    let servers = config["iceServers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{config}");
    assert_eq!(servers[0]["urls"], "stun:stun.example.org:3478");
    assert!(servers[0]["username"].is_null());
    let turn = &servers[1];
    assert_eq!(turn["urls"], "turn:turn.example.org:443?transport=tcp");
    let username = turn["username"].as_str().unwrap();
    let (expiry, client) = username.split_once(':').unwrap();
    let expiry: u64 = expiry.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "expiry {expiry}, now {now}"
    );
    assert!(!client.is_empty());
    assert_eq!(
        turn["credential"].as_str().unwrap(),
        visprompt_webrtc::settings::turn_rest_password("s3cret", username)
    );
    // Each request gets its own credentials.
    let again: Value = app
        .get("/api/v1/system/webrtc/config")
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(again["iceServers"][1]["username"], turn["username"]);
    app.shutdown().await;
}

#[tokio::test]
async fn an_advertised_address_replaces_the_host_candidates_in_the_answer() {
    let app = spawn_app_with(Options {
        adjust: Some(Box::new(|s| {
            s.webrtc.advertise_ip = Some("203.0.113.10".into());
        })),
        ..Options::default()
    })
    .await;
    let pid = app.post_project("Nat").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let address = app.address.clone();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    // The viewer cannot reach 203.0.113.10 (nothing is there): only the answer matters here.
    let connecting = Viewer::connect(
        ViewerConfig {
            loopback_only: true,
            ..ViewerConfig::default()
        },
        |sdp| async move {
            let resp = reqwest::Client::new()
                .post(format!("{address}/api/v1/projects/{pid}/offer"))
                .json(&json!({ "webrtc_id": "nat", "sdp": sdp }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let answer: Value = resp.json().await.unwrap();
            let sdp = answer["sdp"].as_str().unwrap().to_owned();
            let _ = answer_tx.send(sdp.clone());
            Ok(sdp)
        },
    )
    .await
    .unwrap();
    let answer = answer_rx.await.unwrap();
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "{answer}");
    for c in &candidates {
        assert!(
            c.contains(" 203.0.113.10 ") && c.contains("typ host"),
            "{c}"
        );
    }
    connecting.close().await;
    app.shutdown().await;
}

/// A server process of its own (the binary `just run` starts), killed on drop.
struct ServerProcess {
    child: std::process::Child,
    address: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server_process(env: &[(&str, &str)]) -> ServerProcess {
    // The test's own HTTP client needs rustls' provider chosen, as the server does for itself.
    visprompt_webrtc::install_crypto_provider();
    let port = visprompt_testkit::free_port();
    let media = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_visprompt-server"));
    command
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("DB_URL", "mem://")
        .env("MEDIA_ROOTS", media.path())
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().expect("the server binary starts");
    let server = ServerProcess {
        child,
        address: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(resp) = reqwest::get(format!("{}/health", server.address)).await
            && resp.status() == StatusCode::OK
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "the server answers /health within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Local UDP ports of the sockets process `pid` holds, from /proc.
fn udp_ports_of(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && inodes.contains(cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_binary_streams_the_annotated_demo_and_keeps_media_ports_in_range() {
    let server = start_server_process(&[
        ("DEMO_PROJECT", "true"),
        ("WEBRTC_PORT_RANGE", "51200-51219"),
        ("WEBRTC_LOOPBACK_ONLY", "true"),
        // TURN is handed to browsers; the server's own peer must not open relay sockets.
        ("TURN_SHARED_SECRET", "secret"),
        ("TURN_URLS", "turn:127.0.0.1:3478"),
    ])
    .await;
    let projects: Value = reqwest::get(format!("{}/api/v1/projects", server.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let demo = &projects["projects"][0];
    assert_eq!(demo["name"], "Demo");
    let pid = demo["id"].as_str().unwrap();

    // Offers that get past the first checks and fail in the SDP parser leave no socket open.
    let broken = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";
    for i in 0..10 {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/projects/{pid}/offer", server.address))
            .json(&json!({ "webrtc_id": format!("broken-{i}"), "sdp": broken }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(udp_ports_of(server.child.id()), Vec::<u16>::new());

    let mut first = watch(&server.address, pid, "first").await;
    let mut second = watch(&server.address, pid, "second").await;
    // The demo's label is red (#E63946): its overlays show on the video within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut best = 0;
    while best < 300 {
        assert!(
            Instant::now() < deadline,
            "no demo overlay on the video ({best} label pixels)"
        );
        let frame = next_frame(&mut first).await;
        best = best.max(coloured_pixels(&frame, [0xE6, 0x39, 0x46]).0);
    }
    assert!(next_frame(&mut second).await.image.width() == 640);

    let ports = udp_ports_of(server.child.id());
    assert!(!ports.is_empty(), "the server holds media sockets");
    for port in &ports {
        assert!(
            (51200..=51219).contains(port),
            "UDP port {port} outside 51200-51219: {ports:?}"
        );
    }
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn a_malformed_webrtc_setting_stops_start_up_with_a_message() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_visprompt-server"))
        .env("DB_URL", "mem://")
        .env("PORT", visprompt_testkit::free_port().to_string())
        .env("ICE_SERVERS", r#"[{"urls":"http://stun.example.org"}]"#)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown scheme `http`") && stderr.contains("webrtc"),
        "{stderr}"
    );
}

/// A real coturn on loopback for the test, with TURN REST (shared secret) authentication.
struct Coturn {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which listeners the test's coturn opens.
#[derive(Clone, Copy, PartialEq)]
enum TurnTransport {
    /// UDP and TCP: the Rust viewer peer reaches TURN over UDP only.
    UdpAndTcp,
    /// TCP only, as `just run-coturn` runs it for browsers.
    TcpOnly,
}

impl Coturn {
    fn start(secret: &str, transport: TurnTransport) -> Self {
        let binary = ["/usr/bin/turnserver", "/usr/local/bin/turnserver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or_else(|| panic!("coturn is not installed: run tools/ci/install-coturn.sh"));
        let dir = tempfile::tempdir().unwrap();
        let port = visprompt_testkit::free_port();
        let mut command = std::process::Command::new(binary);
        if transport == TurnTransport::TcpOnly {
            command.arg("--no-udp");
        }
        let child = command
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--min-port=52000",
                "--max-port=53999",
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=visprompt",
                "--allow-loopback-peers",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--fingerprint",
                "--no-stdout-log",
                &format!("--log-file={}", dir.path().join("turn.log").display()),
                &format!("--pidfile={}", dir.path().join("turn.pid").display()),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Ready once it answers on its TCP listener (it opens UDP and TCP on the same port).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "coturn listens within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

async fn watch_relayed(
    address: &str,
    pid: &str,
    session: &str,
    ice_servers: Vec<visprompt_webrtc::IceServer>,
) -> Viewer {
    let url = format!("{address}/api/v1/projects/{pid}/offer");
    let session = session.to_owned();
    Viewer::connect(
        ViewerConfig {
            ice_servers,
            relay_only: true,
            loopback_only: true,
        },
        |sdp| async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&json!({ "webrtc_id": session, "sdp": sdp }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
            Ok(answer["sdp"].as_str().unwrap_or_default().to_owned())
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_viewer_gets_video_through_turn_with_rest_credentials_and_bad_ones_fail() {
    let secret = "relay-test-secret";
    let turn = Coturn::start(secret, TurnTransport::UdpAndTcp);
    let turn_url = format!("turn:127.0.0.1:{}", turn.port);
    let turn_urls = turn_url.clone();
    let app = spawn_app_with(Options {
        adjust: Some(Box::new(move |s| {
            s.webrtc.turn_shared_secret = Some(secret.into());
            s.webrtc.turn_urls = Some(turn_urls);
        })),
        ..Options::default()
    })
    .await;
    let pid = project_with_stream(&app, false).await;

    // Credentials from the API: the relayed viewer connects and decodes video.
    let config: Value = app
        .get("/api/v1/system/webrtc/config")
        .await
        .json()
        .await
        .unwrap();
    let server = &config["iceServers"][0];
    assert_eq!(server["urls"], turn_url.as_str());
    let good = visprompt_webrtc::IceServer {
        urls: vec![turn_url.clone()],
        username: server["username"].as_str().map(Into::into),
        credential: server["credential"].as_str().map(Into::into),
    };
    let mut viewer = watch_relayed(&app.address, &pid, "relayed", vec![good.clone()]).await;
    assert!(
        viewer
            .wait_for(ConnectionState::Connected, Duration::from_secs(20))
            .await,
        "the relayed connection comes up"
    );
    assert_eq!(next_frame(&mut viewer).await.image.width(), 640);
    viewer.close().await;

    // A wrong password, and an expired username with its correct password, get no relay.
    let wrong = visprompt_webrtc::IceServer {
        credential: Some("d3Jvbmc=".into()),
        ..good.clone()
    };
    let expired_user = "1000:old".to_owned();
    let expired = visprompt_webrtc::IceServer {
        credential: Some(visprompt_webrtc::settings::turn_rest_password(
            secret,
            &expired_user,
        )),
        username: Some(expired_user),
        ..good
    };
    for (name, server) in [("wrong", wrong), ("expired", expired)] {
        let mut viewer = watch_relayed(&app.address, &pid, name, vec![server]).await;
        assert!(
            !viewer
                .wait_for(ConnectionState::Connected, Duration::from_secs(8))
                .await,
            "{name} credentials must not connect"
        );
        viewer.close().await;
    }
    app.shutdown().await;
}

/// Serves the relay viewer page on a loopback port and collects what the page reports.
async fn serve_page(page: &'static str) -> (u16, tokio::sync::mpsc::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = if path.starts_with("/page.html") {
                    ("200 OK", page)
                } else if let Some(report) = path.strip_prefix("/report?") {
                    let _ = tx.send(report.to_owned()).await;
                    ("204 No Content", "")
                } else {
                    ("404 Not Found", "")
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, rx)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A real browser, relay-only, through a coturn that listens on TCP only (as `just run-coturn`
/// runs it), with TURN REST credentials from the API: the live view's video reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_browser_gets_video_through_turn_over_tcp() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or_else(|| panic!("Chromium is not installed: run tools/ci/install-chromium.sh"));
    let secret = "browser-relay-secret";
    let turn = Coturn::start(secret, TurnTransport::TcpOnly);
    let turn_port = turn.port;
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_process(&[
        ("DEMO_PROJECT", "true"),
        ("CORS_ORIGINS", "*"),
        ("WEBRTC_LOOPBACK_ONLY", "true"),
        ("WEBRTC_PORT_RANGE", "51300-51319"),
        ("TURN_SHARED_SECRET", secret),
        (
            "TURN_URLS",
            &format!("turn:127.0.0.1:{turn_port}?transport=tcp"),
        ),
    ])
    .await;
    let (page_port, mut reports) = serve_page(include_str!("assets/relay_viewer.html")).await;
    let mut browser = std::process::Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", dir.path().join("profile").display()),
            &format!("http://127.0.0.1:{page_port}/page.html#{}", server.address),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), reports.recv()).await;
    let _ = browser.kill();
    let _ = browser.wait();
    drop(turn);
    let report = percent_decode(&report.expect("the page reports within 60 s").unwrap());
    assert!(report.starts_with("RESULT "), "{report}");
    assert!(report.contains("state=connected"), "{report}");
    assert!(report.contains("size=640x480"), "{report}");
    assert!(
        report.contains("local=relay/tcp"),
        "relayed over TCP: {report}"
    );
}
