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
