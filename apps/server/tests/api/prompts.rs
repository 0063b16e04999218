//! Prompts: every shape, text prompts, validation against the frame, frames used once, and the
//! frame going away with its prompt.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, id, spawn_app};

struct Fixture {
    pid: String,
    label: Value,
    frame: Value,
}

async fn fixture(app: &TestApp) -> Fixture {
    let pid = id(&app.post_project("p").await);
    let label = app.post_label(&pid, "cat").await;
    let frame = app.post_frame(&pid, 100, 50).await;
    Fixture { pid, label, frame }
}

fn visual(f: &Fixture, shape: Value) -> Value {
    json!({ "type": "visual", "frame_id": f.frame["id"], "annotations": [{ "label_id": f.label["id"], "shape": shape }] })
}

#[tokio::test]
async fn every_shape_is_accepted_and_read_back_as_sent() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let shapes = json!([
        { "type": "points", "points": [{ "x": 1.5, "y": 2.0, "positive": true }, { "x": 99, "y": 49, "positive": false }] },
        { "type": "rectangle", "min": { "x": 0.0, "y": 0.0 }, "max": { "x": 100.0, "y": 50.0 } },
        { "type": "polygon", "points": [{ "x": 0.0, "y": 0.0 }, { "x": 10.0, "y": 0.0 }, { "x": 0.0, "y": 10.0 }] },
        { "type": "mask", "width": 100, "height": 50, "counts": [10, 20, 4970] }
    ]);
    let annotations: Vec<Value> = shapes
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({ "label_id": f.label["id"], "shape": s }))
        .collect();
    let body = json!({ "type": "visual", "frame_id": f.frame["id"], "annotations": annotations });
    let resp = app
        .post_json(&format!("/api/v1/projects/{}/prompts", f.pid), &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = resp.json().await.unwrap();
    let got: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(got, created);
    assert_eq!(got["type"], "visual");
    let sent: Vec<Value> = shapes.as_array().unwrap().clone();
    let back: Vec<Value> = got["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["shape"].clone())
        .collect();
    for (s, b) in sent.iter().zip(&back) {
        assert_eq!(s["type"], b["type"]);
    }
    assert_eq!(back[3]["counts"], json!([10, 20, 4970]));
    assert_eq!(back[0]["points"][1]["positive"], false);
    app.shutdown().await;
}

#[tokio::test]
async fn a_text_prompt_is_accepted_and_listed() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let body = json!({ "type": "text", "phrases": [{ "label_id": f.label["id"], "text": "a tabby cat" }] });
    let resp = app
        .post_json(&format!("/api/v1/projects/{}/prompts", f.pid), &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let list: Value = app
        .get(&format!("/api/v1/projects/{}/prompts", f.pid))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 1);
    assert_eq!(list["prompts"][0]["phrases"][0]["text"], "a tabby cat");
    app.shutdown().await;
}

#[tokio::test]
async fn a_shape_outside_the_frame_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let cases = [
        (
            json!({ "type": "points", "points": [{ "x": 101, "y": 1 }] }),
            "annotations[0].shape.points[0]",
        ),
        (
            json!({ "type": "rectangle", "min": { "x": 5, "y": 5 }, "max": { "x": 4, "y": 9 } }),
            "annotations[0].shape",
        ),
        (
            json!({ "type": "mask", "width": 100, "height": 50, "counts": [10, 20] }),
            "annotations[0].shape.counts",
        ),
        (
            json!({ "type": "mask", "width": 50, "height": 100, "counts": [0, 5000] }),
            "annotations[0].shape.size",
        ),
        (
            json!({ "type": "points", "points": [{ "x": 1, "y": 1, "positive": false }] }),
            "annotations[0].shape.points",
        ),
    ];
    for (shape, field) in cases {
        let resp = app
            .post_json(
                &format!("/api/v1/projects/{}/prompts", f.pid),
                &visual(&f, shape),
            )
            .await;
        let body = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
        assert_eq!(body["field"], field);
    }
    let list: Value = app
        .get(&format!("/api/v1/projects/{}/prompts", f.pid))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_labels_and_frames_are_not_found() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let other = "7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c11";
    let bad_label = json!({ "type": "visual", "frame_id": f.frame["id"], "annotations": [
        { "label_id": other, "shape": { "type": "points", "points": [{ "x": 1, "y": 1 }] } }]});
    let resp = app
        .post_json(&format!("/api/v1/projects/{}/prompts", f.pid), &bad_label)
        .await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let bad_frame = json!({ "type": "visual", "frame_id": other, "annotations": [
        { "label_id": f.label["id"], "shape": { "type": "points", "points": [{ "x": 1, "y": 1 }] } }]});
    let resp = app
        .post_json(&format!("/api/v1/projects/{}/prompts", f.pid), &bad_frame)
        .await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_frame_serves_one_prompt_only() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let body = visual(
        &f,
        json!({ "type": "points", "points": [{ "x": 1, "y": 1 }] }),
    );
    let path = format!("/api/v1/projects/{}/prompts", f.pid);
    assert_eq!(
        app.post_json(&path, &body).await.status(),
        StatusCode::CREATED
    );
    let body = assert_error(
        app.post_json(&path, &body).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert_eq!(body["field"], "frame_id");
    app.shutdown().await;
}

#[tokio::test]
async fn updating_replaces_content_and_a_prompt_cannot_change_type() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let created: Value = app
        .post_json(
            &format!("/api/v1/projects/{}/prompts", f.pid),
            &visual(
                &f,
                json!({ "type": "points", "points": [{ "x": 1, "y": 1 }] }),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/projects/{}/prompts/{}", f.pid, id(&created));
    let polygon = json!({ "type": "polygon", "points": [{ "x": 0, "y": 0 }, { "x": 9, "y": 0 }, { "x": 0, "y": 9 }] });
    let updated: Value = app
        .put_json(&path, &visual(&f, polygon))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated["annotations"][0]["shape"]["type"], "polygon");
    assert_eq!(updated["id"], created["id"]);
    let text = json!({ "type": "text", "phrases": [{ "label_id": f.label["id"], "text": "x" }] });
    let body = assert_error(
        app.put_json(&path, &text).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    )
    .await;
    assert_eq!(body["field"], "type");
    app.shutdown().await;
}

#[tokio::test]
async fn moving_a_prompt_to_a_new_frame_deletes_the_old_frame() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let created: Value = app
        .post_json(
            &format!("/api/v1/projects/{}/prompts", f.pid),
            &visual(
                &f,
                json!({ "type": "points", "points": [{ "x": 1, "y": 1 }] }),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_frame = app.post_frame(&f.pid, 20, 20).await;
    let path = format!("/api/v1/projects/{}/prompts/{}", f.pid, id(&created));
    let body = json!({ "type": "visual", "frame_id": new_frame["id"], "annotations": [
        { "label_id": f.label["id"], "shape": { "type": "points", "points": [{ "x": 2, "y": 2 }] } }]});
    assert_eq!(app.put_json(&path, &body).await.status(), StatusCode::OK);
    let old = format!("/api/v1/projects/{}/frames/{}", f.pid, id(&f.frame));
    assert_error(app.get(&old).await, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn deleting_a_prompt_deletes_its_frame() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let created: Value = app
        .post_json(
            &format!("/api/v1/projects/{}/prompts", f.pid),
            &visual(
                &f,
                json!({ "type": "points", "points": [{ "x": 1, "y": 1 }] }),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/projects/{}/prompts/{}", f.pid, id(&created));
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_error(app.get(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.delete(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    let frame = format!("/api/v1/projects/{}/frames/{}", f.pid, id(&f.frame));
    assert_error(app.get(&frame).await, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_prompt_type_is_a_bad_request() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{}/prompts", f.pid),
            &json!({ "type": "audio" }),
        )
        .await;
    assert!(resp.status().is_client_error());
    app.shutdown().await;
}
