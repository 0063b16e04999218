//! Opens a fresh repository on a chosen engine, starts the shared SurrealDB server for remote
//! tests, and builds domain values for the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tempfile::TempDir;
use visprompt_domain::*;
use visprompt_surrealdb::{StoreLocation, SurrealRepository};

/// Instantiates each named `async fn(Engine)` of the calling module once per engine, as
/// `memory::<name>`, `disk::<name>` and `remote::<name>`.
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Engine::Memory).await;
                }
            )*
        }
        mod disk {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Engine::Disk).await;
                }
            )*
        }
        mod remote {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Engine::Remote).await;
                }
            )*
        }
    };
}
pub(crate) use on_every_engine;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Memory,
    Disk,
    Remote,
}

/// A repository on a fresh database, and what must live as long as it (the temporary directory).
pub struct TestStore {
    pub repo: SurrealRepository,
    /// Where a disk store lives, and how a remote one is reached: enough to open it again.
    pub location: StoreLocation,
    pub database: String,
    _dir: Option<TempDir>,
}

impl std::ops::Deref for TestStore {
    type Target = SurrealRepository;

    fn deref(&self) -> &SurrealRepository {
        &self.repo
    }
}

pub const NAMESPACE: &str = "visprompt_test";

/// Opens a repository on an empty database of the engine.
pub async fn open(engine: Engine) -> TestStore {
    init_logging();
    let database = format!("db_{}", uuid::Uuid::new_v4().simple());
    let (location, dir) = match engine {
        Engine::Memory => (StoreLocation::Memory, None),
        Engine::Disk => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            (StoreLocation::Disk(dir.path().join("db")), Some(dir))
        }
        Engine::Remote => (
            StoreLocation::Remote {
                url: format!("ws://{}", server_address()),
                username: TEST_USER.into(),
                password: TEST_PASSWORD.into(),
            },
            None,
        ),
    };
    let repo = SurrealRepository::connect(location.clone(), NAMESPACE, &database)
        .await
        .unwrap_or_else(|e| panic!("cannot open a {engine:?} store: {e}"));
    TestStore {
        repo,
        location,
        database,
        _dir: dir,
    }
}

fn init_logging() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "visprompt_surrealdb=debug",
                ))
                .with_test_writer()
                .init();
        }
    });
}

// --- the shared server ---

/// The root user the tests sign in as. Its password hash uses the cheapest Argon2 parameters
/// (8 KiB, one pass; computed once for this file): the server verifies whatever parameters the
/// hash names, and with the defaults a debug-built server spends most of a second per sign-in.
const TEST_USER: &str = "visprompt";
const TEST_PASSWORD: &str = "visprompt-test";
const TEST_PASSHASH: &str =
    "$argon2id$v=19$m=8,t=1,p=1$dmlzcHJvbXB0LXNhbHQxNg$BlsWvTvr0qQGnT/BtAq0jAruzyOkq7Kou7N5mxXenAg";

/// The server the remote tests share. Each test uses a database of its own on it.
struct Server {
    address: SocketAddr,
    /// Never written: when the test process ends, this pipe closes and the server exits (see
    /// `tools/surrealdb-server`). Statics are not dropped, so this is what stops the server.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn server_address() -> SocketAddr {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start_server).address
}

/// The server binary, built into the same target directory as this test binary.
fn server_binary() -> PathBuf {
    let name = format!("visprompt-surrealdb-server{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the remote-mode tests need the SurrealDB server binary `{name}` next to the test \
                 binary ({}); build it first with `cargo build -p visprompt-surrealdb-server`",
                exe.display()
            )
        })
}

fn start_server() -> Server {
    let binary = server_binary();
    // A free port: bind to port 0, note what the system chose, and release it for the server.
    // Another process could take it in between; then the server fails to start and we try again.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(&binary)
            .args([
                "start",
                "--bind",
                &address.to_string(),
                "--user",
                "root",
                "--pass",
                "root",
            ])
            .args(["--no-banner", "--log", "warn", "memory"])
            .env("VISPROMPT_EXIT_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdin = child.stdin.take().expect("the server's stdin pipe");
        if wait_until_ready(address, &mut child, Duration::from_secs(60)) {
            define_test_user(address);
            return Server {
                address,
                _stdin: Mutex::new(stdin),
                _child: Mutex::new(child),
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("the SurrealDB server did not become ready; see its output above");
}

/// Signs in once as the initial root user and defines [`TEST_USER`]. Runs on a thread of its own
/// because the caller is inside some test's runtime, which must not be blocked on.
fn define_test_user(address: SocketAddr) {
    let define = async move {
        let db = surrealdb::engine::any::connect(format!("ws://{address}")).await?;
        db.signin(surrealdb::opt::auth::Root {
            username: "root".into(),
            password: "root".into(),
        })
        .await?;
        db.query(format!(
            "DEFINE USER OVERWRITE {TEST_USER} ON ROOT PASSHASH '{TEST_PASSHASH}' ROLES OWNER"
        ))
        .await?
        .check()?;
        Ok::<_, surrealdb::Error>(())
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(define)
    })
    .join()
    .expect("the thread defining the test user")
    .unwrap_or_else(|e| panic!("cannot define the test user on the server: {e}"));
}

/// Waits until the server answers `GET /ready` with 200. It may accept connections (and answer
/// `/health`) before it finished starting up, and refuses everything else with 503 until then; on
/// a busy machine that takes a while, because a debug build hashes the root password slowly.
fn wait_until_ready(address: SocketAddr, child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if is_ready(address) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn is_ready(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).is_ok() && status.ends_with(b" 200")
}

// --- domain values ---

/// A timestamp `seconds` after a fixed instant, so that creation order is explicit in tests
/// (and whole microseconds, the precision the store promises).
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

pub fn project(name: &str, seconds: i64) -> Project {
    Project {
        id: ProjectId::new(),
        name: ProjectName::parse(name).unwrap(),
        active: false,
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

/// A bundle holding only the project, as a new project is created.
pub fn bundle(project: &Project) -> ProjectBundle {
    ProjectBundle {
        project: project.clone(),
        labels: vec![],
        frames: vec![],
        prompts: vec![],
        sources: vec![],
        sinks: vec![],
        models: vec![],
    }
}

/// Stores a new, inactive project.
pub async fn new_project(store: &SurrealRepository, name: &str) -> Project {
    let p = project(name, 0);
    store.insert_bundle(&bundle(&p)).await.unwrap();
    p
}

pub fn label(project: ProjectId, name: &str, seconds: i64) -> Label {
    Label {
        id: LabelId::new(),
        project_id: project,
        name: LabelName::parse(name).unwrap(),
        color: Color::PALETTE[(seconds.unsigned_abs() % 12) as usize],
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

/// A frame of 40×30 pixels whose "image" bytes are distinct per call (the store does not decode).
pub fn frame(project: ProjectId, seconds: i64) -> StoredFrame {
    let bytes: Vec<u8> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .cycle()
        .take(1000)
        .copied()
        .collect();
    StoredFrame {
        frame: Frame {
            id: FrameId::new(),
            project_id: project,
            format: ImageFormat::Png,
            size: FrameSize::new(40, 30).unwrap(),
            byte_len: bytes.len() as u64,
            created_at: at(seconds),
        },
        bytes,
    }
}

/// A visual prompt with one annotation of every shape, all tied to `labels` in turn.
pub fn visual_prompt(
    project: ProjectId,
    frame: FrameId,
    labels: &[LabelId],
    seconds: i64,
) -> Prompt {
    let p = |x: f64, y: f64| Point { x, y };
    let shapes = [
        Shape::Points(vec![(p(1.5, 2.0), true), (p(10.0, 20.25), false)]),
        Shape::Rectangle {
            min: p(1.0, 1.0),
            max: p(39.5, 29.0),
        },
        Shape::Polygon(vec![p(0.0, 0.0), p(10.0, 0.0), p(0.0, 10.0)]),
        Shape::Mask(Rle {
            size: FrameSize::new(40, 30).unwrap(),
            counts: vec![100, 50, 1050],
        }),
    ];
    let annotations = shapes
        .into_iter()
        .enumerate()
        .map(|(i, shape)| Annotation {
            label_id: labels[i % labels.len()],
            shape,
        })
        .collect();
    Prompt {
        id: PromptId::new(),
        project_id: project,
        content: PromptContent::Visual {
            frame_id: frame,
            annotations,
        },
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

pub fn text_prompt(project: ProjectId, labels: &[LabelId], seconds: i64) -> Prompt {
    Prompt {
        id: PromptId::new(),
        project_id: project,
        content: PromptContent::Text {
            phrases: labels
                .iter()
                .map(|&label_id| TextPhrase {
                    label_id,
                    text: Phrase::parse(&format!("a photo of thing {label_id}")).unwrap(),
                })
                .collect(),
        },
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

/// One source of every kind, in creation order; none active.
pub fn sources(project: ProjectId) -> Vec<Source> {
    let configs = [
        SourceConfig::UsbCamera { device_id: 2 },
        SourceConfig::VideoFile {
            looping: false,
            video_path: "/media/clip.mp4".into(),
        },
        SourceConfig::ImagesFolder {
            images_folder_path: "/media/frames".into(),
        },
        SourceConfig::Rtsp {
            url: "rtsp://camera.local:8554/live".into(),
        },
        SourceConfig::SampleDataset { dataset_id: None },
        SourceConfig::SampleDataset {
            dataset_id: Some(uuid::Uuid::new_v4()),
        },
        SourceConfig::Synthetic,
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(i, config)| source(project, config, i as i64))
        .collect()
}

pub fn source(project: ProjectId, config: SourceConfig, seconds: i64) -> Source {
    Source {
        id: SourceId::new(),
        project_id: project,
        name: DisplayName::parse(config.kind().default_name()).unwrap(),
        active: false,
        config,
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

/// One sink of every kind (MQTT with and without credentials, with the default QoS and plain, and
/// with QoS 1 and TLS), in creation order; none active.
pub fn sinks(project: ProjectId) -> Vec<Sink> {
    let configs = [
        SinkConfig::Mqtt(MqttSink {
            broker_host: "broker.local".into(),
            broker_port: 1883,
            topic: "visprompt/predictions".into(),
            username: None,
            password: None,
            qos: MqttQos::AtMostOnce,
            tls: false,
        }),
        SinkConfig::Mqtt(MqttSink {
            broker_host: "10.0.0.2".into(),
            broker_port: 8883,
            topic: "a/b".into(),
            username: Some("user".into()),
            password: Some("secret".into()),
            qos: MqttQos::AtLeastOnce,
            tls: true,
        }),
        SinkConfig::Webhook {
            url: "https://example.com/hook".into(),
        },
        SinkConfig::File {
            path: "/media/out.jsonl".into(),
        },
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(i, config)| sink(project, config, i as i64))
        .collect()
}

pub fn sink(project: ProjectId, config: SinkConfig, seconds: i64) -> Sink {
    Sink {
        id: SinkId::new(),
        project_id: project,
        name: DisplayName::parse(config.kind().default_name()).unwrap(),
        active: false,
        config,
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

/// One model configuration per algorithm with non-default values, in creation order; none active.
pub fn models(project: ProjectId) -> Vec<ModelConfig> {
    let params = [
        AlgorithmParams::Matcher(MatcherParams {
            sam_model: SamModel::MobileSam,
            encoder_model: EncoderModel::Dinov2BaseReg,
            precision: Precision::Fp16,
            similarity_threshold: Some(0.3),
            use_mask_refinement: true,
            ..MatcherParams::default()
        }),
        AlgorithmParams::PerDino(PerDinoParams::default()),
        AlgorithmParams::SoftMatcher(SoftMatcherParams {
            use_sampling: true,
            ..SoftMatcherParams::default()
        }),
        AlgorithmParams::Classical(ClassicalParams {
            confidence_threshold: 0.25,
            max_detections: 7,
            min_area: 0.05,
        }),
    ];
    let devices = [Device::Auto, Device::Cpu, Device::Cuda(1), Device::Xpu(0)];
    params
        .into_iter()
        .zip(devices)
        .enumerate()
        .map(|(i, (params, device))| ModelConfig {
            id: ModelConfigId::new(),
            project_id: project,
            name: DisplayName::parse(params.algorithm().display_name()).unwrap(),
            active: false,
            device,
            params,
            created_at: at(i as i64),
            updated_at: at(i as i64),
        })
        .collect()
}

pub fn model(project: ProjectId, name: &str, seconds: i64) -> ModelConfig {
    ModelConfig {
        id: ModelConfigId::new(),
        project_id: project,
        name: DisplayName::parse(name).unwrap(),
        active: false,
        device: Device::Cpu,
        params: Algorithm::Classical.default_params(),
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

/// A project with a bit of everything: 3 labels, 2 frames, a visual prompt on the first frame
/// (the second frame is unused), a text prompt, every source, sink and model kind, with the
/// third source, the second and third sinks and the fourth model active.
pub fn full_bundle(name: &str, active: bool) -> ProjectBundle {
    let mut project = project(name, 0);
    project.active = active;
    let pid = project.id;
    let labels: Vec<Label> = (0..3)
        .map(|i| label(pid, &format!("label {i}"), i))
        .collect();
    let label_ids: Vec<LabelId> = labels.iter().map(|l| l.id).collect();
    let frames = vec![frame(pid, 0), frame(pid, 1)];
    let prompts = vec![
        visual_prompt(pid, frames[0].frame.id, &label_ids, 0),
        text_prompt(pid, &label_ids[1..], 1),
    ];
    let mut sources = sources(pid);
    sources[2].active = true;
    let mut sinks = sinks(pid);
    sinks[1].active = true;
    sinks[2].active = true;
    let mut models = models(pid);
    models[3].active = true;
    ProjectBundle {
        project,
        labels,
        frames,
        prompts,
        sources,
        sinks,
        models,
    }
}

/// Asserts that the error is a `Conflict` on `field` (or on no field for `None`).
#[track_caller]
pub fn assert_conflict(result: Result<impl std::fmt::Debug, DomainError>, field: Option<&str>) {
    match result {
        Err(DomainError::Conflict { field: f, message }) => {
            assert_eq!(f.as_deref(), field, "conflict on another field: {message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a conflict on {field:?}, got {other:?}"),
    }
}

/// Asserts that the error is a `NotFound` of `entity`.
#[track_caller]
pub fn assert_not_found(result: Result<impl std::fmt::Debug, DomainError>, entity: Entity) {
    match result {
        Err(DomainError::NotFound { entity: e, .. }) => assert_eq!(e, entity),
        other => panic!("expected {entity} not found, got {other:?}"),
    }
}
