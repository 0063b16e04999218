//! The neural algorithms through the real server, with small random-weight models in a
//! `MODELS_DIR`: each algorithm runs in the live pipeline (its detections reach an MQTT sink),
//! click-to-segment answers with a mask and an outline, and what is missing or malformed is
//! refused with a message that names it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use visprompt_media::synthetic::ObjectKind;
use visprompt_testkit::{Access, Broker};

use crate::helpers::{Options, TestApp, assert_error, id, spawn_app, spawn_app_with};
use crate::pipeline::{
    eventually_status, labels_in, prompt_of, start_synthetic, subscribe, upload_scene_frame,
};

/// A server whose `MODELS_DIR` holds the small models (kept alive by the returned folder).
async fn app_with_models() -> (TestApp, tempfile::TempDir) {
    let models = tempfile::tempdir().unwrap();
    visprompt_testkit::tiny_models_dir(models.path());
    let dir = models.path().to_str().unwrap().to_owned();
    let app = spawn_app_with(Options {
        adjust: Some(Box::new(move |s| s.models.dir = Some(dir))),
        ..Options::default()
    })
    .await;
    (app, models)
}

/// A model configuration of `model_type` with floor thresholds (random weights score low).
fn permissive(model_type: &str) -> Value {
    let mut config =
        json!({ "model_type": model_type, "precision": "fp32", "confidence_threshold": 0.01 });
    if model_type != "matcher" {
        config["num_foreground_points"] = json!(8);
    }
    json!({ "name": model_type, "active": true, "config": config })
}

/// A project whose label `disc` is prompted on the synthetic scene's striped disc, with the
/// synthetic source running; returns its id and the label.
async fn live_prompted_project(app: &TestApp, name: &str) -> (String, Value) {
    let pid = id(&app.post_project(name).await);
    let label = app.post_label(&pid, "disc").await;
    let frame = upload_scene_frame(app, &pid).await;
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/prompts"),
            &prompt_of(&frame, &label, ObjectKind::StripedDisc),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    start_synthetic(app, &pid).await;
    (pid, label)
}

/// Makes a permissive configuration of `model_type` the project's active model.
async fn activate(app: &TestApp, pid: &str, model_type: &str) {
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/models"),
            &permissive(model_type),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{model_type}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_neural_algorithm_runs_live_with_weights_from_the_models_folder() {
    let broker = Broker::start(Access::Anonymous);
    let (app, _models) = app_with_models().await;
    let (pid, label) = live_prompted_project(&app, "neural").await;
    let topic = "visprompt/neural";
    let sub = subscribe(&broker, topic);
    let sink = json!({ "active": true, "config": { "sink_type": "mqtt", "broker_host": "127.0.0.1", "broker_port": broker.port, "topic": topic } });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/sinks"), &sink)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    for model_type in ["matcher", "soft_matcher", "perdino"] {
        activate(&app, &pid, model_type).await;
        let s = eventually_status(&app, "the neural detector runs", |s| {
            s["detector"]["algorithm"] == model_type
                && s["detector"]["state"] == "running"
                && s["detector"]["processed"].as_u64() > Some(0)
        })
        .await;
        assert_eq!(s["state"], "running", "{model_type}: {s}");
        let model_status: Value = app
            .get(&format!("/api/v1/projects/{pid}/model-status"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(model_status["status"], "ready", "{model_type}");
        // Its detections reach the sink with the prompted label and frame-sized masks.
        sub.drain();
        let message = sub.next_matching(Duration::from_secs(60), |m| {
            labels_in(m).contains(&"disc".to_owned())
        });
        let detection = &message["detections"][0];
        assert_eq!(detection["label_id"], label["id"], "{model_type}");
        assert_eq!(detection["mask"]["size"], json!([480, 640]), "{model_type}");
        let score = detection["score"].as_f64().unwrap();
        assert!(score > 0.01 && score <= 1.0, "{model_type}: score {score}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_weights_put_the_pipeline_in_error_naming_the_file_and_the_server_stays_up() {
    // No MODELS_DIR and offline (the test settings).
    let app = spawn_app().await;
    let (pid, _) = live_prompted_project(&app, "no weights").await;
    activate(&app, &pid, "matcher").await;
    let s = eventually_status(&app, "the model error shows", |s| s["state"] == "error").await;
    let message = s["message"].as_str().unwrap();
    for needle in ["dinov3_small", "model.safetensors", "MODELS_DIR"] {
        assert!(message.contains(needle), "{needle:?} in {message:?}");
    }
    let status: Value = app
        .get(&format!("/api/v1/projects/{pid}/model-status"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "error");
    assert!(
        status["error_message"]
            .as_str()
            .unwrap()
            .contains("model.safetensors")
    );
    // The server answers as before.
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supported_models_list_the_weights_and_which_are_on_this_machine() {
    let (app, _models) = app_with_models().await;
    let body: Value = app
        .get("/api/v1/system/supported-models")
        .await
        .json()
        .await
        .unwrap();
    let weights = body["weights"].as_array().unwrap();
    let find = |id: &str| weights.iter().find(|w| w["id"] == id).unwrap().clone();
    assert_eq!(find("dinov3_small")["present_locally"], true);
    assert_eq!(find("sam_hq_tiny")["present_locally"], true);
    assert_eq!(find("sam_hq_tiny")["kind"], "segmenter");
    assert_eq!(find("dinov3_large")["present_locally"], false);
    assert_eq!(find("dinov3_large")["gated"], true);
    assert!(find("dinov3_large")["size_bytes"].as_u64().unwrap() > 1_000_000_000);
    app.shutdown().await;
}

fn segment_path(pid: &str, frame: &Value) -> String {
    format!("/api/v1/projects/{pid}/frames/{}/segment", id(frame))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_segment_answers_a_mask_its_outline_and_score() {
    let (app, _models) = app_with_models().await;
    let pid = id(&app.post_project("clicks").await);
    let frame = upload_scene_frame(&app, &pid).await;
    let path = segment_path(&pid, &frame);
    let mut last_counts = Vec::new();
    for body in [
        json!({ "points": [{ "x": 200, "y": 150 }] }),
        json!({ "points": [{ "x": 200, "y": 150 }, { "x": 20, "y": 20, "positive": false }] }),
        json!({ "box": { "min": { "x": 100, "y": 80 }, "max": { "x": 300, "y": 260 } } }),
        json!({ "points": [{ "x": 200, "y": 150 }], "box": { "min": { "x": 100, "y": 80 }, "max": { "x": 300, "y": 260 } }, "sam_model": "SAM-HQ-tiny" }),
    ] {
        let resp = app.post_json(&path, &body).await;
        assert_eq!(resp.status(), StatusCode::OK, "{body}");
        let r: Value = resp.json().await.unwrap();
        assert_eq!(
            (r["mask"]["width"].as_u64(), r["mask"]["height"].as_u64()),
            (Some(640), Some(480))
        );
        let counts: Vec<u64> = r["mask"]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(
            counts.iter().sum::<u64>(),
            640 * 480,
            "runs cover the frame"
        );
        let ones: u64 = counts.iter().skip(1).step_by(2).sum();
        assert_eq!(ones, r["area"].as_u64().unwrap(), "area = set pixels");
        assert!(r["score"].as_f64().unwrap().is_finite());
        assert_eq!(r["sam_model"], "SAM-HQ-tiny");
        if ones > 0 {
            assert!(r["polygon"].as_array().unwrap().len() >= 3, "an outline");
        }
        if ones > 0 {
            last_counts = counts;
        }
    }
    assert!(!last_counts.is_empty(), "some prompt segmented something");
    // The answer is a mask shape a prompt accepts as it is.
    let label = app.post_label(&pid, "clicked").await;
    let prompt = json!({ "type": "visual", "frame_id": frame["id"], "annotations": [{ "label_id": label["id"], "shape": { "type": "mask", "width": 640, "height": 480, "counts": last_counts } }] });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/prompts"), &prompt)
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "{:?}",
        resp.text().await
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_segment_refuses_what_it_cannot_use() {
    let (app, _models) = app_with_models().await;
    let pid = id(&app.post_project("bad clicks").await);
    let frame = upload_scene_frame(&app, &pid).await;
    let path = segment_path(&pid, &frame);
    let cases = [
        (json!({}), "points"),
        (json!({ "points": [] }), "points"),
        (json!({ "points": [{ "x": 700, "y": 10 }] }), "points[0]"),
        (
            json!({ "points": [{ "x": 10, "y": 10, "positive": false }] }),
            "points",
        ),
        (
            json!({ "box": { "min": { "x": 300, "y": 80 }, "max": { "x": 100, "y": 260 } } }),
            "box",
        ),
        (
            json!({ "box": { "min": { "x": 0, "y": 0 }, "max": { "x": 100, "y": 600 } } }),
            "box.max",
        ),
        (
            json!({ "points": [{ "x": 1, "y": 1 }], "sam_model": "SAM-9000" }),
            "sam_model",
        ),
    ];
    for (body, field) in cases {
        let resp = app.post_json(&path, &body).await;
        let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
        assert_eq!(err["field"], field, "{body}");
    }
    // A body the schema refuses (a point with a negative coordinate).
    let resp = app
        .post_json(&path, &json!({ "points": [{ "x": -1, "y": 1 }] }))
        .await;
    assert!(resp.status().is_client_error());
    // An unknown frame.
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/frames/00000000-0000-4000-8000-000000000000/segment"),
            &json!({ "points": [{ "x": 1, "y": 1 }] }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;

    // Without the segmenter's weights: 409, naming the file and how to provide it.
    let app = spawn_app().await;
    let pid = id(&app.post_project("no weights").await);
    let frame = upload_scene_frame(&app, &pid).await;
    let resp = app
        .post_json(
            &segment_path(&pid, &frame),
            &json!({ "points": [{ "x": 200, "y": 150 }] }),
        )
        .await;
    let err = assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("sam_hq_vit_tiny.pth"), "{message}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_encoder_downloads_with_progress_in_model_status_then_runs() {
    // The segmenter is in MODELS_DIR; the encoder only on a (slow) stand-in for the hub.
    let models = tempfile::tempdir().unwrap();
    visprompt_testkit::tiny_models_dir(models.path());
    let encoder = models.path().join("dinov3_small");
    let files = std::collections::HashMap::from([
        (
            "config.json".to_string(),
            std::fs::read(encoder.join("config.json")).unwrap(),
        ),
        (
            "model.safetensors".to_string(),
            std::fs::read(encoder.join("model.safetensors")).unwrap(),
        ),
    ]);
    std::fs::remove_dir_all(&encoder).unwrap();
    // About 170 kB in 8 kB slices every 100 ms: two seconds of downloading.
    let hub =
        visprompt_testkit::FakeHub::start_throttled(files, 8 * 1024, Duration::from_millis(100));
    let dir = models.path().to_str().unwrap().to_owned();
    let endpoint = hub.url.clone();
    let app = spawn_app_with(Options {
        adjust: Some(Box::new(move |s| {
            s.models.dir = Some(dir);
            s.models.offline = false;
            s.models.hub_endpoint = Some(endpoint);
        })),
        ..Options::default()
    })
    .await;
    let (pid, _) = live_prompted_project(&app, "download").await;
    activate(&app, &pid, "matcher").await;

    // Model status: downloading with a fraction that grows, then ready.
    let mut seen = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..600 {
        let s: Value = app
            .get(&format!("/api/v1/projects/{pid}/model-status"))
            .await
            .json()
            .await
            .unwrap();
        statuses.push(s["status"].to_string());
        if s["status"] == "downloading" {
            assert_eq!(s["model"], "dinov3_small");
            if let Some(p) = s["progress"].as_f64() {
                assert!((0.0..=1.0).contains(&p), "{s}");
                seen.push(p);
            }
        }
        // "ready" counts once the pipeline runs the new model (the classical one that new
        // projects start with was ready before).
        let pipeline: Value = app.get("/api/v1/pipeline").await.json().await.unwrap();
        if s["status"] == "ready" && pipeline["detector"]["algorithm"] == "matcher" {
            break;
        }
        assert_ne!(s["status"], "error", "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    statuses.dedup();
    assert!(
        seen.len() >= 3,
        "progress seen while downloading: {seen:?}; statuses {statuses:?}; hub requests {}",
        hub.requests.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    eventually_status(&app, "the downloaded model runs", |s| {
        s["detector"]["state"] == "running" && s["detector"]["processed"].as_u64() > Some(0)
    })
    .await;
    // The weights are now in the cache and listed as present.
    let body: Value = app
        .get("/api/v1/system/supported-models")
        .await
        .json()
        .await
        .unwrap();
    let enc = body["weights"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "dinov3_small")
        .unwrap()
        .clone();
    assert_eq!(enc["present_locally"], true);
    app.shutdown().await;
}
