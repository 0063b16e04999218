//! The weights layer: the catalogue, the hub cache layout, offline lookups that never touch the
//! network, download with progress from a local stand-in for the hub, and `.pth` reading.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use visprompt_vision::weights::catalogue::{self, ModelKind};
use visprompt_vision::weights::{
    DownloadProgress, HubCache, HubClient, NoProgress, ProgressEvent, WeightsError, load_pth,
};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A stand-in for the hub: serves `HEAD`/`GET /<repo>/resolve/<rev>/<file>` for the files it
/// holds, answering large files as the hub does (a redirect to a blob URL, the real size in
/// `X-Linked-Size`), `401` for the repository `org/gated`, and counts requests.
struct FakeHub {
    url: String,
    requests: Arc<AtomicUsize>,
}

async fn fake_hub(files: HashMap<String, Vec<u8>>) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let files = Arc::new(files);
    let count = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let files = files.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let mut parts = text.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let head = method == "HEAD";
                let reply = |status: &str, headers: Vec<String>, body: &[u8]| {
                    let mut r = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
                    for h in headers {
                        r.push_str(&h);
                        r.push_str("\r\n");
                    }
                    r.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                    let mut bytes = r.into_bytes();
                    if !head {
                        bytes.extend_from_slice(body);
                    }
                    bytes
                };
                let response = if path.starts_with("/org/gated/") {
                    reply("401 Unauthorized", vec![], b"")
                } else if let Some(key) = path.strip_prefix("/blobs/") {
                    match files.get(key) {
                        Some(body) => reply("200 OK", vec![], body),
                        None => reply("404 Not Found", vec![], b""),
                    }
                } else if let Some((_, file)) = path.split_once("/resolve/") {
                    let file = file.split_once('/').map(|(_, f)| f).unwrap_or("");
                    match files.get(file) {
                        Some(body) if body.len() > 1000 => reply(
                            "302 Found",
                            vec![
                                format!("x-repo-commit: {COMMIT}"),
                                format!("x-linked-size: {}", body.len()),
                                format!("location: /blobs/{file}"),
                            ],
                            b"",
                        ),
                        Some(body) => {
                            reply("200 OK", vec![format!("x-repo-commit: {COMMIT}")], body)
                        }
                        None => reply("404 Not Found", vec![], b""),
                    }
                } else {
                    reply("404 Not Found", vec![], b"")
                };
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    FakeHub { url, requests }
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, u64, Option<u64>)>>,
}

impl DownloadProgress for Recorder {
    fn progress(&self, e: &ProgressEvent<'_>) {
        self.events
            .lock()
            .unwrap()
            .push((e.file.to_string(), e.done, e.total));
    }
}

fn sample_files() -> HashMap<String, Vec<u8>> {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    HashMap::from([
        (
            "config.json".to_string(),
            br#"{"model_type":"dinov3_vit"}"#.to_vec(),
        ),
        ("model.safetensors".to_string(), big),
    ])
}

#[tokio::test]
async fn downloads_into_the_hub_layout_with_progress_and_then_serves_from_the_cache() {
    let files = sample_files();
    let hub = fake_hub(files.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = HubClient::new(HubCache::in_data_dir(dir.path()))
        .with_endpoint(&hub.url)
        .with_token(None);
    let recorder = Recorder::default();
    let wanted = ["config.json", "model.safetensors"];
    let snap = client
        .ensure("org/model", "main", &wanted, &recorder)
        .await
        .expect("download");

    let repo_dir = dir.path().join("models").join("models--org--model");
    assert_eq!(snap, repo_dir.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT
    );
    for f in wanted {
        assert_eq!(std::fs::read(snap.join(f)).unwrap(), files[f], "{f}");
    }
    // Progress: overall totals, monotonic, ending at the total.
    let events = recorder.events.lock().unwrap().clone();
    let total: u64 = files.values().map(|v| v.len() as u64).sum();
    assert!(events.len() > 2, "{events:?}");
    assert!(events.iter().all(|(_, _, t)| *t == Some(total)));
    assert!(events.windows(2).all(|w| w[0].1 <= w[1].1));
    assert_eq!(events.last().unwrap().1, total);
    assert!(events.iter().any(|(f, _, _)| f == "model.safetensors"));

    // A second request is answered by the cache: no request reaches the hub.
    let before = hub.requests.load(Ordering::SeqCst);
    let again = client
        .ensure("org/model", "main", &wanted, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again, snap);
    assert_eq!(hub.requests.load(Ordering::SeqCst), before);
    // So is an offline one, and the catalogue-style presence check agrees.
    let offline = HubClient::new(HubCache::in_data_dir(dir.path()))
        .with_endpoint(&hub.url)
        .offline(true);
    assert_eq!(
        offline
            .ensure("org/model", "main", &wanted, &NoProgress)
            .await
            .unwrap(),
        snap
    );
    assert!(HubCache::in_data_dir(dir.path()).contains("org/model", COMMIT, &wanted));
}

#[tokio::test]
async fn offline_never_touches_the_network_and_names_the_missing_file() {
    let hub = fake_hub(sample_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = HubClient::new(HubCache::in_data_dir(dir.path()))
        .with_endpoint(&hub.url)
        .offline(true);
    let err = client
        .ensure("org/model", "main", &["config.json"], &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        0,
        "offline made a request"
    );
    match &err {
        WeightsError::Missing { file, how } => {
            assert_eq!(file, "org/model/config.json");
            assert!(how.contains("snapshots"), "{how}");
            assert!(how.contains("local folder"), "{how}");
        }
        other => panic!("expected Missing, got {other}"),
    }
    assert!(err.to_string().contains("org/model/config.json"));
}

#[tokio::test]
async fn gated_and_missing_files_are_reported_with_what_to_do() {
    let hub = fake_hub(sample_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = HubClient::new(HubCache::in_data_dir(dir.path()))
        .with_endpoint(&hub.url)
        .with_token(None);
    let err = client
        .ensure("org/gated", "main", &["config.json"], &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HF_TOKEN"), "{err}");
    let err = client
        .ensure("org/model", "main", &["nothing.bin"], &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing.bin") && err.contains("404"), "{err}");
    // Nothing half-written is left in the cache.
    assert!(!HubCache::in_data_dir(dir.path()).contains("org/model", "main", &["nothing.bin"]));
}

#[test]
fn the_catalogue_lists_encoders_and_segmenters_and_sees_cached_files() {
    let all = catalogue::catalogue();
    let mut ids: Vec<&str> = all.iter().map(|m| m.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "ids are unique");
    for id in [
        "dinov3_small",
        "dinov3_large",
        "dinov2_small",
        "dinov2_base",
        "dinov2_small_registers",
        "sam_hq_tiny",
        "sam_hq_vit_b",
        "sam_vit_b",
        "mobile_sam",
    ] {
        let m = catalogue::find(id).unwrap_or_else(|| panic!("{id} in the catalogue"));
        assert!(!m.files.is_empty() && m.size_bytes > 1_000_000 && !m.licence.is_empty());
        assert!(m.repo.contains('/'));
    }
    assert_eq!(
        catalogue::find("sam_hq_tiny").unwrap().files,
        &["sam_hq_vit_tiny.pth"]
    );
    assert_eq!(
        catalogue::find("sam_hq_tiny").unwrap().kind,
        ModelKind::Segmenter
    );
    assert!(catalogue::find("dinov3_small").unwrap().gated);

    let dir = tempfile::tempdir().unwrap();
    let m = catalogue::find("dinov2_small").unwrap();
    assert!(!m.present_locally(dir.path()));
    let snap = dir
        .path()
        .join("models--facebook--dinov2-small/snapshots")
        .join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("config.json"), "{}").unwrap();
    std::fs::create_dir_all(dir.path().join("models--facebook--dinov2-small/refs")).unwrap();
    std::fs::write(
        dir.path().join("models--facebook--dinov2-small/refs/main"),
        COMMIT,
    )
    .unwrap();
    assert!(!m.present_locally(dir.path()), "one file is still missing");
    std::fs::write(snap.join("model.safetensors"), "x").unwrap();
    assert!(m.present_locally(dir.path()));
}

fn pth_fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoders/pth")
}

#[test]
fn pth_checkpoints_read_as_written_by_torch_save() {
    let expected =
        candle_core::safetensors::load(pth_fixtures().join("expected.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(expected.len(), 4);
    for file in ["state_dict.pth", "wrapped.pth"] {
        let vb = load_pth(&pth_fixtures().join(file), None, DType::F32, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for (name, want) in &expected {
            let got: Tensor = vb
                .get(want.dims(), name)
                .unwrap_or_else(|e| panic!("{file} {name}: {e}"));
            let diff = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff == 0.0, "{file} {name}: {diff}");
        }
    }
    // An explicit key that is not there is an error, not an empty model.
    let err = load_pth(
        &pth_fixtures().join("wrapped.pth"),
        Some("state_dict"),
        DType::F32,
        &Device::Cpu,
    );
    assert!(err.is_err());
    let missing = load_pth(
        &pth_fixtures().join("nope.pth"),
        None,
        DType::F32,
        &Device::Cpu,
    );
    assert!(matches!(missing, Err(WeightsError::Missing { .. })));
}
