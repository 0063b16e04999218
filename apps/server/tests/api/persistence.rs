//! The default on-disk database keeps everything across a restart of the server.

use serde_json::Value;

use crate::helpers::{Options, id, spawn_app_with};

#[tokio::test]
async fn data_survives_a_restart_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        data_dir: Some(dir.path().to_owned()),
        ..Options::default()
    };
    let app = spawn_app_with(options()).await;
    let pid = id(&app.post_project("kept").await);
    let label = app.post_label(&pid, "cat").await;
    let frame = app.post_frame(&pid, 12, 10).await;
    let image_before = app
        .get(&format!("/api/v1/projects/{pid}/frames/{}", id(&frame)))
        .await
        .bytes()
        .await
        .unwrap();
    app.shutdown().await;

    let app = spawn_app_with(options()).await;
    let project: Value = app
        .get("/api/v1/projects/active")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(project["id"].as_str(), Some(pid.as_str()));
    let labels: Value = app
        .get(&format!("/api/v1/projects/{pid}/labels"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(labels["labels"][0], label);
    let image_after = app
        .get(&format!("/api/v1/projects/{pid}/frames/{}", id(&frame)))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(image_before, image_after);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_creates_a_demo_project_that_detects_at_once_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        data_dir: Some(dir.path().to_owned()),
        seed_demo: true,
        ..Options::default()
    };
    let app = spawn_app_with(options()).await;
    let project: Value = app
        .get("/api/v1/projects/active")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(project["name"], "Demo");
    // The seeded prompt makes the classical detector find the striped disc in live frames.
    let mut status = Value::Null;
    for _ in 0..200 {
        status = app.get("/api/v1/pipeline").await.json().await.unwrap();
        if status["detector"]["last_detections"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["source"]["kind"], "synthetic");
    assert!(
        status["detector"]["last_detections"].as_u64() >= Some(1),
        "{status}"
    );
    app.shutdown().await;

    // A restart over the same store does not seed again.
    let app = spawn_app_with(options()).await;
    let projects: Value = app.get("/api/v1/projects").await.json().await.unwrap();
    assert_eq!(projects["pagination"]["total"], 1);
    app.shutdown().await;
}
