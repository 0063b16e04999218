//! The RTSP source against a real RTSP server: GStreamer's, started by the test through
//! `tools/rtsp/serve.py` on a loopback port, streaming H.264 colour bars. Covers frames arriving,
//! the server dying (the source reports `Unavailable`) and a new source after a restart.
//! The server's packages come from `tools/ci/install-rtsp.sh`; without them these tests fail and
//! say so.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use visprompt_domain::{MediaRoots, SourceConfig};
use visprompt_media::{MediaSourceFactory, RtspSource};
use visprompt_runtime::{FrameSource, RgbImage, SourceError, SourceFactory};

const INSTALL_HINT: &str = "run tools/ci/install-rtsp.sh to install GStreamer's RTSP server";

/// A running `tools/rtsp/serve.py`, killed when dropped.
struct RtspServer {
    child: Child,
    port: u16,
}

impl RtspServer {
    fn start(port: u16) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/rtsp/serve.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start /usr/bin/python3 {}: {e}; {INSTALL_HINT}",
                    script.display()
                )
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.trim() == "READY" => Self { child, port },
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!(
                    "the RTSP test server did not start ({outcome:?}): {stderr}\n{INSTALL_HINT}"
                );
            }
        }
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/bars", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn near(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(&g, w)| (i16::from(g) - i16::from(w)).abs() <= 24)
}

/// The 75 % SMPTE bars the server streams: grey, yellow, cyan, green, magenta, red, blue.
fn assert_colour_bars(frame: &RgbImage) {
    assert_eq!((frame.width(), frame.height()), (320, 240));
    let bars = [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
    ];
    for (k, bar) in bars.into_iter().enumerate() {
        let x = (2 * k as u32 + 1) * 320 / 14;
        assert!(
            near(frame.pixel(x, 120), bar),
            "bar {k}: {:?}",
            frame.pixel(x, 120)
        );
    }
}

async fn next(source: &mut dyn FrameSource) -> Result<Option<RgbImage>, SourceError> {
    tokio::time::timeout(Duration::from_secs(20), source.next_frame())
        .await
        .expect("the source neither returned a frame nor an error within 20 s")
}

#[tokio::test]
async fn frames_arrive_a_dead_server_is_reported_and_a_restarted_one_reopens() {
    let mut server = RtspServer::start(free_port());
    let factory = MediaSourceFactory::new(MediaRoots::default());
    let mut source = factory
        .open(&SourceConfig::Rtsp { url: server.url() })
        .await
        .unwrap();
    for _ in 0..10 {
        let frame = next(source.as_mut())
            .await
            .unwrap()
            .expect("a live stream never ends");
        assert_colour_bars(&frame);
    }
    assert!(
        source.navigation().is_none(),
        "a live stream has no positions"
    );

    server.kill();
    // Frames already received may still come out; then the drop must be reported.
    let mut reported = None;
    for _ in 0..100 {
        match next(source.as_mut()).await {
            Ok(Some(_)) => continue,
            other => {
                reported = Some(other);
                break;
            }
        }
    }
    match reported {
        Some(Err(SourceError::Unavailable(msg))) => {
            assert!(msg.contains(&server.url()), "{msg}")
        }
        other => panic!("expected Unavailable after the server died, got {other:?}"),
    }

    let restarted = RtspServer::start(server.port);
    let mut source = factory
        .open(&SourceConfig::Rtsp {
            url: restarted.url(),
        })
        .await
        .unwrap();
    assert_colour_bars(&next(source.as_mut()).await.unwrap().unwrap());
}

#[tokio::test]
async fn nothing_listening_is_unavailable_and_credentials_are_not_shown() {
    let port = free_port();
    let url = format!("rtsp://admin:hunter2@127.0.0.1:{port}/bars");
    match RtspSource::open(&url).await {
        Err(SourceError::Unavailable(msg)) => {
            assert!(msg.contains(&format!("127.0.0.1:{port}/bars")), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_path_on_a_real_server_is_unavailable() {
    let server = RtspServer::start(free_port());
    let url = format!("rtsp://127.0.0.1:{}/nothing-here", server.port);
    match RtspSource::open(&url).await {
        Err(SourceError::Unavailable(msg)) => assert!(msg.contains("/nothing-here"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn urls_this_client_cannot_open_are_unsupported_without_their_credentials() {
    for (url, says) in [
        // Port out of range: the URL does not parse.
        ("rtsp://admin:secret@cam:99999/x", "not valid"),
        ("rtsps://admin:secret@127.0.0.1:1/x", "rtsps"),
        ("http://admin:secret@127.0.0.1:1/x", "http"),
    ] {
        match RtspSource::open(url).await {
            Err(SourceError::Unsupported(msg)) => {
                assert!(msg.contains(says), "{url}: {msg}");
                assert!(!msg.contains("secret"), "{url}: {msg}");
            }
            other => panic!("{url}: expected Unsupported, got {other:?}"),
        }
    }
}
