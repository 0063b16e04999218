//! The weights layer: the catalogue, the hub cache layout, offline lookups that never touch the
//! network, download with progress from a local stand-in for the hub, and `.pth` reading.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use candle_core::{DType, Device, Tensor};
use visprompt_testkit::{FAKE_HUB_COMMIT as COMMIT, FakeHub};
use visprompt_vision::weights::catalogue::{self, ModelKind};
use visprompt_vision::weights::{
    DownloadProgress, HubCache, HubClient, NoProgress, ProgressEvent, WeightsError, load_pth,
};

async fn fake_hub(files: HashMap<String, Vec<u8>>) -> FakeHub {
    FakeHub::start(files)
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
