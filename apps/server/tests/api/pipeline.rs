//! The live pipeline through the real server: a synthetic source, a prompt marking one of its
//! shapes, the classical detector, an MQTT sink on a real Mosquitto broker, the status endpoint,
//! `/metrics` and the event stream; and changes through the API that reach the output without a
//! restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use visprompt_media::SyntheticScene;
use visprompt_media::synthetic::ObjectKind;
use visprompt_testkit::{Access, Broker, mosquitto_binary};

use crate::helpers::{TestApp, assert_error, id, png_of, spawn_app};

/// Messages on `topic`, one JSON document per line, from a `mosquitto_sub` child.
pub(crate) fn subscribe(broker: &Broker, topic: &str) -> Subscriber {
    let mut child = Command::new(mosquitto_binary("mosquitto_sub"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            topic,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Subscriber { child, rx }
}

pub(crate) struct Subscriber {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Subscriber {
    /// The next message that satisfies `accept`, within `within`.
    pub(crate) fn next_matching(&self, within: Duration, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .rx
                .recv_timeout(left)
                .expect("no matching MQTT message in time");
            let message: Value = serde_json::from_str(&line).expect("MQTT messages are JSON");
            if accept(&message) {
                return message;
            }
        }
    }

    pub(crate) fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uploads frame 0 of the demo scene; returns the stored frame.
pub(crate) async fn upload_scene_frame(app: &TestApp, pid: &str) -> Value {
    let scene = SyntheticScene::default();
    let resp = app
        .upload_frame(pid, png_of(&scene.render(0)), "image/png")
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

/// A visual prompt on `frame` that marks the exact mask of `kind` as `label`.
pub(crate) fn prompt_of(frame: &Value, label: &Value, kind: ObjectKind) -> Value {
    let mask = SyntheticScene::default()
        .ground_truth(0)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .unwrap()
        .1
        .to_rle();
    let shape = json!({ "type": "mask", "width": 640, "height": 480, "counts": mask.counts });
    json!({ "type": "visual", "frame_id": frame["id"], "annotations": [{ "label_id": label["id"], "shape": shape }] })
}

/// Creates an active synthetic source and waits until its frames flow.
pub(crate) async fn start_synthetic(app: &TestApp, pid: &str) -> Value {
    let body = json!({ "active": true, "config": { "source_type": "synthetic" } });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/sources"), &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let source = resp.json().await.unwrap();
    eventually_status(app, "frames flow", |s| {
        s["source"]["frames"].as_u64() > Some(0)
    })
    .await;
    source
}

pub(crate) fn labels_in(message: &Value) -> Vec<String> {
    message["detections"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|d| d["label_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn status(app: &TestApp) -> Value {
    app.get("/api/v1/pipeline").await.json().await.unwrap()
}

pub(crate) async fn eventually_status(
    app: &TestApp,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..200 {
        let s = status(app).await;
        if check(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting until {what}; last status {}",
        status(app).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_of_a_prompted_shape_flow_to_mqtt_and_follow_api_changes() {
    // Arrange: a broker, the server, a project with one label prompted on the striped disc.
    let broker = Broker::start(Access::Anonymous);
    let app = spawn_app().await;
    let project = app.post_project("live").await;
    let pid = id(&project);
    let label = app.post_label(&pid, "disc").await;
    let frame = upload_scene_frame(&app, &pid).await;
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/prompts"),
            &prompt_of(&frame, &label, ObjectKind::StripedDisc),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let prompt: Value = resp.json().await.unwrap();
    let topic = "visprompt/test";
    let sub = subscribe(&broker, topic);
    let sink = json!({ "active": true, "config": { "sink_type": "mqtt", "broker_host": "127.0.0.1", "broker_port": broker.port, "topic": topic } });
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/sinks"), &sink)
            .await
            .status(),
        StatusCode::CREATED
    );

    // Act: the synthetic source becomes active.
    start_synthetic(&app, &pid).await;

    // Assert: predictions of the disc arrive over MQTT, in frame order.
    let has_disc = |m: &Value| labels_in(m).contains(&"disc".to_owned());
    let first = sub.next_matching(Duration::from_secs(20), has_disc);
    assert_eq!(first["project_id"], pid.as_str());
    assert_eq!(first["frame"]["width"], 640);
    let detection = &first["detections"][0];
    assert_eq!(detection["label_id"], label["id"]);
    assert_eq!(detection["mask"]["size"], json!([480, 640]));
    assert!(detection["polygon"].as_array().unwrap().len() >= 3);
    let second = sub.next_matching(Duration::from_secs(5), has_disc);
    assert!(second["frame"]["sequence"].as_u64() > first["frame"]["sequence"].as_u64());

    // ... and the status and metrics show the pipeline running with the sink connected.
    let s = eventually_status(&app, "the sink is connected", |s| {
        s["sinks"][0]["state"] == "connected" && s["sinks"][0]["published"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(s["state"], "running");
    assert_eq!(s["project_id"], pid.as_str());
    assert_eq!(s["source"]["kind"], "synthetic");
    assert_eq!(s["detector"]["algorithm"], "classical");
    assert_eq!(s["detector"]["state"], "running");
    assert!(s["detector"]["processed"].as_u64().unwrap() > 0);
    assert!(s["detector"]["latency_p50_ms"].as_f64().unwrap() > 0.0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "visprompt_pipeline_state{{project_id=\"{pid}\",state=\"running\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("visprompt_detector_processed_total"));
    let model_status: Value = app
        .get(&format!("/api/v1/projects/{pid}/model-status"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(model_status["status"], "ready");

    // A label rename reaches the output without a refit.
    let resp = app
        .put_json(
            &format!("/api/v1/projects/{pid}/labels/{}", id(&label)),
            &json!({ "name": "plate" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    sub.next_matching(Duration::from_secs(5), |m| {
        m["detections"][0]["label_name"] == "plate"
    });

    // A model that this build cannot run: the pipeline reports the error, sinks fall silent.
    let matcher =
        json!({ "name": "neural", "active": true, "config": { "model_type": "matcher" } });
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/models"), &matcher)
            .await
            .status(),
        StatusCode::CREATED
    );
    let s = eventually_status(&app, "the model error shows", |s| s["state"] == "error").await;
    assert!(s["message"].as_str().unwrap().starts_with("model:"), "{s}");
    let model_status: Value = app
        .get(&format!("/api/v1/projects/{pid}/model-status"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(model_status["status"], "error");

    // Back to a classical model: detections flow again.
    let classical = json!({ "name": "classical again", "active": true, "config": { "model_type": "classical" } });
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/models"), &classical)
            .await
            .status(),
        StatusCode::CREATED
    );
    sub.drain();
    sub.next_matching(Duration::from_secs(10), |m| {
        m["detections"][0]["label_name"] == "plate"
    });

    // A prompt change refits: the prompt now marks the square as a new label, and the disc's
    // label disappears from the output.
    let square = app.post_label(&pid, "box").await;
    let resp = app
        .put_json(
            &format!("/api/v1/projects/{pid}/prompts/{}", id(&prompt)),
            &prompt_of(&frame, &square, ObjectKind::CheckeredSquare),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    sub.next_matching(Duration::from_secs(10), |m| labels_in(m) == ["box"]);

    // A source change: the sample dataset (320x240 frames) replaces the synthetic scene and its
    // first frame is processed.
    let dataset = json!({ "active": true, "config": { "source_type": "sample_dataset" } });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/sources"), &dataset)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let dataset: Value = resp.json().await.unwrap();
    sub.next_matching(Duration::from_secs(10), |m| m["frame"]["width"] == 320);
    let s = eventually_status(&app, "the dataset is the source", |s| {
        s["source"]["kind"] == "sample_dataset"
    })
    .await;
    assert_eq!(s["state"], "running");

    // Deactivating the source leaves nothing to run: idle, still for this project.
    let resp = app
        .put_json(
            &format!("/api/v1/projects/{pid}/sources/{}", id(&dataset)),
            &json!({ "active": false, "config": { "source_type": "sample_dataset" } }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
    eventually_status(&app, "the pipeline is idle", |s| {
        s["state"] == "idle" && s["project_id"] == pid.as_str()
    })
    .await;

    // Deactivating the project stops its pipeline altogether.
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/projects/{pid}/deactivate")))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    eventually_status(&app, "the pipeline is idle", |s| {
        s["state"] == "idle" && s["project_id"].is_null()
    })
    .await;

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capturing_a_frame_needs_a_running_source_and_stores_a_jpeg() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("capture").await);
    let capture = format!("/api/v1/projects/{pid}/frames");

    // No source yet: a conflict that says why, never a 500.
    eventually_status(&app, "the project's pipeline runs", |s| {
        s["project_id"] == pid.as_str()
    })
    .await;
    let body = assert_error(
        app.client.post(app.url(&capture)).send().await.unwrap(),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no active source"),
        "{body}"
    );

    start_synthetic(&app, &pid).await;
    let resp = app.client.post(app.url(&capture)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let frame: Value = resp.json().await.unwrap();
    assert_eq!(frame["media_type"], "image/jpeg");
    assert_eq!(
        (frame["width"].as_u64(), frame["height"].as_u64()),
        (Some(640), Some(480))
    );
    let image = app
        .get(&format!("/api/v1/projects/{pid}/frames/{}", id(&frame)))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(visprompt_image::inspect(&image).unwrap().size.width(), 640);

    // Another project is not the running one.
    let other: Value = app
        .post_json(
            "/api/v1/projects",
            &json!({ "name": "other", "active": false }),
        )
        .await
        .json()
        .await
        .unwrap();
    let other = id(&other);
    assert_error(
        app.client
            .post(app.url(&format!("/api/v1/projects/{other}/frames")))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_pushes_pipeline_state_and_entity_changes() {
    let app = spawn_app().await;
    let resp = app.get("/api/v1/events").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    let mut next_event = async move |want: &str| -> Value {
        loop {
            if let Some(at) = seen.find("\n\n") {
                let block: String = seen.drain(..at + 2).collect();
                let event = block
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or("");
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or("");
                if event == want {
                    return serde_json::from_str(data).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap_or_else(|_| panic!("no `{want}` event in time"))
                .unwrap()
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    // On connect: the current state.
    let first = next_event("pipeline").await;
    assert_eq!(first["pipeline"]["state"], "idle");

    let pid = id(&app.post_project("events").await);
    let created = next_event("entity").await;
    assert_eq!(created["entity"]["entity"], "project");
    assert_eq!(created["entity"]["action"], "created");
    assert_eq!(created["entity"]["project_id"], pid.as_str());

    let source = json!({ "active": true, "config": { "source_type": "synthetic" } });
    app.post_json(&format!("/api/v1/projects/{pid}/sources"), &source)
        .await;
    loop {
        let e = next_event("pipeline").await;
        if e["pipeline"]["state"] == "running" {
            assert_eq!(e["pipeline"]["project_id"], pid.as_str());
            break;
        }
    }
    let metrics = next_event("metrics").await;
    assert!(metrics["pipeline"]["source"]["frames"].as_u64().unwrap() > 0);
    app.shutdown().await;
}

#[tokio::test]
async fn navigating_a_live_source_or_an_inactive_one_is_a_conflict() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("nav").await);
    let sid = id(&start_synthetic(&app, &pid).await);
    let body = assert_error(
        app.client
            .post(app.url(&format!("/api/v1/projects/{pid}/sources/{sid}/frames/2")))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("live stream"),
        "{body}"
    );
    assert_error(
        app.get(&format!(
            "/api/v1/projects/{pid}/sources/{}/frames/index",
            uuid::Uuid::new_v4()
        ))
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;
}
