//! Sources: every kind, one active per project, media roots, fixed kind.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, id, spawn_app};

#[tokio::test]
async fn every_source_kind_is_stored_and_read_back() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let root = app.media_root.path().to_str().unwrap().to_owned();
    let configs = [
        json!({ "source_type": "usb_camera", "device_id": 0 }),
        json!({ "source_type": "video_file", "video_path": format!("{root}/a.mp4") }),
        json!({ "source_type": "images_folder", "images_folder_path": format!("{root}/imgs") }),
        json!({ "source_type": "rtsp", "url": "rtsp://127.0.0.1:8554/cam" }),
        json!({ "source_type": "sample_dataset" }),
        json!({ "source_type": "synthetic" }),
    ];
    for config in &configs {
        let resp = app
            .post_json(
                &format!("/api/v1/projects/{pid}/sources"),
                &json!({ "config": config }),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{config}");
        let source: Value = resp.json().await.unwrap();
        assert_eq!(source["config"]["source_type"], config["source_type"]);
        assert_eq!(source["active"], false);
        let got: Value = app
            .get(&format!("/api/v1/projects/{pid}/sources/{}", id(&source)))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got, source);
    }
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/sources?limit=4"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            list["pagination"]["total"].clone(),
            list["pagination"]["count"].clone()
        ),
        (json!(6), json!(4))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn activating_a_source_deactivates_the_other() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let path = format!("/api/v1/projects/{pid}/sources");
    let a: Value = app
        .post_json(
            &path,
            &json!({ "active": true, "config": { "source_type": "synthetic" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .post_json(
            &path,
            &json!({ "active": true, "config": { "source_type": "rtsp", "url": "rtsp://h/1" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let list: Value = app.get(&path).await.json().await.unwrap();
    let active: Vec<&Value> = list["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["id"], b["id"]);
    let back: Value = app
        .put_json(
            &format!("{path}/{}", id(&a)),
            &json!({ "active": true, "config": { "source_type": "synthetic" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(back["active"], true);
    let b_now: Value = app
        .get(&format!("{path}/{}", id(&b)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b_now["active"], false);
    app.shutdown().await;
}

#[tokio::test]
async fn paths_outside_the_media_roots_are_refused() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let root = app.media_root.path().to_str().unwrap().to_owned();
    for path in [
        "/etc/passwd".to_owned(),
        format!("{root}/../../etc/passwd"),
        "relative/video.mp4".to_owned(),
    ] {
        let body = json!({ "config": { "source_type": "video_file", "video_path": path } });
        let resp = app
            .post_json(&format!("/api/v1/projects/{pid}/sources"), &body)
            .await;
        let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
        assert_eq!(err["field"], "config.video_path");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_source_keeps_its_kind_and_can_be_deleted() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let s: Value = app
        .post_json(
            &format!("/api/v1/projects/{pid}/sources"),
            &json!({ "name": "demo", "config": { "source_type": "synthetic" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["name"], "demo");
    let path = format!("/api/v1/projects/{pid}/sources/{}", id(&s));
    let resp = app
        .put_json(
            &path,
            &json!({ "config": { "source_type": "usb_camera", "device_id": 1 } }),
        )
        .await;
    let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert_eq!(err["field"], "config.source_type");
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_error(app.get(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.put_json(&path, &json!({ "config": { "source_type": "synthetic" } }))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_rtsp_url_is_refused() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let body = json!({ "config": { "source_type": "rtsp", "url": "rtsp://" } });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/sources"), &body)
        .await;
    let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert_eq!(err["field"], "config.url");
    app.shutdown().await;
}

#[tokio::test]
async fn a_video_loops_unless_told_not_to() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let path = format!("{}/a.mp4", app.media_root.path().display());
    let create = |config: Value| {
        let app = &app;
        let pid = pid.clone();
        async move {
            let resp = app
                .post_json(
                    &format!("/api/v1/projects/{pid}/sources"),
                    &json!({ "config": config }),
                )
                .await;
            assert_eq!(resp.status(), StatusCode::CREATED);
            resp.json::<Value>().await.unwrap()
        }
    };
    let default = create(json!({ "source_type": "video_file", "video_path": path })).await;
    assert_eq!(default["config"]["loop"], true);
    let once =
        create(json!({ "source_type": "video_file", "video_path": path, "loop": false })).await;
    assert_eq!(once["config"]["loop"], false);
    let body = assert_error(
        app.post_json(
            &format!("/api/v1/projects/{pid}/sources"),
            &json!({ "config": { "source_type": "video_file", "video_path": path, "loop": "no" } }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("boolean"),
        "{body}"
    );
    app.shutdown().await;
}
