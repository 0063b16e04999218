//! `spawn_app` and the typed helpers the API tests share.

use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use visprompt_server::{Application, Settings};

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub media_root: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A change to the settings before the app starts.
pub type Adjust = Box<dyn FnOnce(&mut Settings) + Send>;

/// What a test may change before the app starts.
pub struct Options {
    pub api_token: Option<String>,
    pub max_upload_bytes: u64,
    pub max_body_bytes: u64,
    pub data_dir: Option<std::path::PathBuf>,
    /// Tests start from an empty store unless they test the demo project.
    pub seed_demo: bool,
    /// Any other change to the settings.
    pub adjust: Option<Adjust>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_token: None,
            max_upload_bytes: 8 << 20,
            max_body_bytes: 1 << 20,
            data_dir: None,
            seed_demo: false,
            adjust: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        visprompt_server::telemetry::init("debug");
    }
    let media_root = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.demo.seed_project = options.seed_demo;
    settings.server.api_token = options.api_token;
    settings.server.max_upload_bytes = options.max_upload_bytes;
    settings.server.max_body_bytes = options.max_body_bytes;
    match options.data_dir {
        Some(dir) => settings.store.data_dir = dir,
        None => settings.store.url = Some("mem://".into()),
    }
    settings.media.roots = media_root.path().to_str().unwrap().to_owned();
    // Media stays on loopback: tests send no traffic to other addresses of this machine.
    settings.webrtc.loopback_only = true;
    // Tests never download model weights; neural tests bring a models folder.
    settings.models.offline = true;
    settings.models.cache_dir = Some(
        media_root
            .path()
            .join(".model-cache")
            .to_str()
            .unwrap()
            .to_owned(),
    );
    if let Some(adjust) = options.adjust {
        adjust(&mut settings);
    }
    let app = Application::build(settings).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: Client::new(),
        media_root,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the server and asserts that it stopped within its grace period.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let joined =
            tokio::time::timeout(Duration::from_secs(10), self.server.take().unwrap()).await;
        let result = joined
            .expect("the server stops within 10 s")
            .expect("the server task did not panic");
        result.expect("the server stopped cleanly");
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a project (active unless told otherwise) and returns its JSON.
    pub async fn post_project(&self, name: &str) -> Value {
        let resp = self
            .post_json("/api/v1/projects", &json!({ "name": name }))
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "creating project {name}"
        );
        resp.json().await.unwrap()
    }

    pub async fn post_label(&self, project: &str, name: &str) -> Value {
        let resp = self
            .post_json(
                &format!("/api/v1/projects/{project}/labels"),
                &json!({ "name": name }),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "creating label {name}");
        resp.json().await.unwrap()
    }

    pub async fn upload_frame(&self, project: &str, bytes: Vec<u8>, media_type: &str) -> Response {
        self.client
            .post(self.url(&format!("/api/v1/projects/{project}/frames/upload")))
            .header("Content-Type", media_type)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a `width` x `height` PNG and returns the frame's JSON.
    pub async fn post_frame(&self, project: &str, width: u32, height: u32) -> Value {
        let resp = self
            .upload_frame(project, png(width, height), "image/png")
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }
}

/// Asserts the status and the error body's `code`, returning the body.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8"),
        "error bodies are JSON"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "error code in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message in {body}"
    );
    body
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, image::ImageFormat::Png)
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, image::ImageFormat::Jpeg)
}

fn encode(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// `image` encoded as PNG, for uploads.
pub fn png_of(image: &visprompt_runtime::RgbImage) -> Vec<u8> {
    let buffer =
        image::RgbImage::from_raw(image.width(), image.height(), image.as_raw().to_vec()).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    buffer.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
