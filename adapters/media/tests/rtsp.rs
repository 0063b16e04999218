//! The RTSP source against a real RTSP server: GStreamer's, started by the test through
//! `tools/rtsp/serve.py` on a loopback port, streaming H.264 colour bars. Covers frames arriving,
//! the server dying (the source reports `Unavailable`) and a new source after a restart.
//! The server's packages come from `tools/ci/install-rtsp.sh`; without them these tests fail and
//! say so. `RTSP_TEST_PYTHON` names the interpreter to run the server with, if not `python3`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use visprompt_domain::{MediaRoots, SourceConfig};
use visprompt_media::{MediaSourceFactory, RtspSource};
use visprompt_runtime::{FrameSource, RgbImage, SourceError, SourceFactory};

use common::assert_smpte_bars;

const INSTALL_HINT: &str = "run tools/ci/install-rtsp.sh to install GStreamer's RTSP server";

/// A running `tools/rtsp/serve.py`, killed when dropped.
struct RtspServer {
    child: Child,
    port: u16,
    /// The server's stderr goes to a file, never a pipe nobody reads (a full pipe would block
    /// the server); it is shown when the server does not start.
    _log: tempfile::NamedTempFile,
}

/// The interpreters tried for the server, in order: `RTSP_TEST_PYTHON` alone when set, otherwise
/// `python3` on PATH and then the system's, which is where distribution packages put GStreamer's
/// bindings when PATH leads to a separately installed Python without them.
fn interpreters() -> Vec<String> {
    match std::env::var("RTSP_TEST_PYTHON") {
        Ok(python) => vec![python],
        Err(_) => vec!["python3".into(), "/usr/bin/python3".into()],
    }
}

impl RtspServer {
    fn start(port: u16) -> Self {
        let mut failures = Vec::new();
        for python in interpreters() {
            match Self::start_with(&python, port) {
                Ok(server) => return server,
                Err(why) => failures.push(format!("{python}: {why}")),
            }
        }
        panic!(
            "the RTSP test server did not start:\n{}\n{INSTALL_HINT}",
            failures.join("\n")
        );
    }

    fn start_with(python: &str, port: u16) -> Result<Self, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/rtsp/serve.py");
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", script.display()))?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.trim() == "READY" => Ok(Self {
                child,
                port,
                _log: log,
            }),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
                Err(format!("no READY ({outcome:?}): {}", stderr.trim()))
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

/// The 75 % SMPTE bars the server streams, within what RTP and a live encoder lose.
fn assert_colour_bars(frame: &RgbImage) {
    assert_smpte_bars(frame, 24);
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
