//! Reference frames: upload, read back byte for byte, list, delete; bad images refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, id, jpeg, png, spawn_app};

#[tokio::test]
async fn an_uploaded_png_and_jpeg_come_back_byte_for_byte_with_their_type_and_size() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    for (bytes, media_type) in [(png(64, 48), "image/png"), (jpeg(80, 60), "image/jpeg")] {
        let resp = app
            .upload_frame(&pid, bytes.clone(), "application/octet-stream")
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let frame: Value = resp.json().await.unwrap();
        assert_eq!(frame["media_type"], media_type);
        assert_eq!(frame["byte_len"], bytes.len());
        let image = app.get(&location).await;
        assert_eq!(image.status(), StatusCode::OK);
        assert_eq!(image.headers()["content-type"], media_type);
        assert_eq!(image.bytes().await.unwrap().to_vec(), bytes);
    }
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/frames"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 2);
    assert_eq!(
        (
            list["frames"][0]["width"].clone(),
            list["frames"][0]["height"].clone()
        ),
        (json!(64), json!(48))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn data_that_is_not_an_image_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let resp = app
        .upload_frame(&pid, b"GIF89a not really".to_vec(), "image/png")
        .await;
    let body = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert_eq!(body["field"], "body");
    let mut truncated = png(64, 64);
    truncated.truncate(truncated.len() / 2);
    let resp = app.upload_frame(&pid, truncated, "image/png").await;
    assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/frames"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_frame_of_another_project_is_not_found() {
    let app = spawn_app().await;
    let p1 = id(&app.post_project("p1").await);
    let p2 = id(&app.post_project("p2").await);
    let frame = app.post_frame(&p1, 8, 8).await;
    let path = format!("/api/v1/projects/{p2}/frames/{}", id(&frame));
    assert_error(app.get(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.delete(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_frame_used_by_a_prompt_cannot_be_deleted_but_an_unused_one_can() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let label = app.post_label(&pid, "cat").await;
    let used = app.post_frame(&pid, 16, 16).await;
    let unused = app.post_frame(&pid, 16, 16).await;
    let prompt = json!({ "type": "visual", "frame_id": used["id"], "annotations": [
        { "label_id": label["id"], "shape": { "type": "points", "points": [{ "x": 1, "y": 1 }] } }
    ]});
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/prompts"), &prompt)
            .await
            .status(),
        201
    );
    let used_path = format!("/api/v1/projects/{pid}/frames/{}", id(&used));
    assert_error(
        app.delete(&used_path).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let unused_path = format!("/api/v1/projects/{pid}/frames/{}", id(&unused));
    assert_eq!(
        app.delete(&unused_path).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        app.get(&unused_path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_upload_to_an_unknown_project_is_not_found() {
    let app = spawn_app().await;
    let resp = app
        .upload_frame(
            "7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c11",
            png(4, 4),
            "image/png",
        )
        .await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}
