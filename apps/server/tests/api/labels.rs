//! Labels: palette colours, uniqueness within a project, and labels in use.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, id, spawn_app};

#[tokio::test]
async fn labels_get_distinct_palette_colours_unless_given_one() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let a = app.post_label(&pid, "a").await;
    let b = app.post_label(&pid, "b").await;
    assert_ne!(a["color"], b["color"]);
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/labels"),
            &json!({ "name": "c", "color": "#a0b1c2" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&format!("/api/v1/projects/{pid}/labels/"))
    );
    let c: Value = resp.json().await.unwrap();
    assert_eq!(c["color"], "#A0B1C2");
    app.shutdown().await;
}

#[tokio::test]
async fn a_label_name_is_unique_within_a_project_only() {
    let app = spawn_app().await;
    let p1 = id(&app.post_project("p1").await);
    let p2 = id(&app.post_project("p2").await);
    app.post_label(&p1, "cat").await;
    app.post_label(&p2, "cat").await;
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{p1}/labels"),
            &json!({ "name": "cat" }),
        )
        .await;
    let body = assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(body["field"], "name");
    app.shutdown().await;
}

#[tokio::test]
async fn a_label_can_be_read_renamed_recoloured_listed_and_deleted() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let label = app.post_label(&pid, "cat").await;
    let path = format!("/api/v1/projects/{pid}/labels/{}", id(&label));
    let got: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(got, label);
    let updated: Value = app
        .put_json(&path, &json!({ "name": "kitten", "color": "#000000" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (updated["name"].clone(), updated["color"].clone()),
        (json!("kitten"), json!("#000000"))
    );
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/labels"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["labels"][0]["name"], "kitten");
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_error(app.get(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.delete(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_malformed_colour_is_refused() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/labels"),
            &json!({ "name": "x", "color": "red" }),
        )
        .await;
    assert!(resp.status().is_client_error());
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("color"),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_label_used_by_a_prompt_cannot_be_deleted() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let label = app.post_label(&pid, "cat").await;
    let prompt =
        json!({ "type": "text", "phrases": [{ "label_id": label["id"], "text": "a cat" }] });
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/prompts"), &prompt)
            .await
            .status(),
        201
    );
    let path = format!("/api/v1/projects/{pid}/labels/{}", id(&label));
    assert_error(app.delete(&path).await, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(app.get(&path).await.status(), StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn labels_of_an_unknown_project_are_not_found() {
    let app = spawn_app().await;
    let path = "/api/v1/projects/7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c11/labels";
    assert_error(app.get(path).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.post_json(path, &json!({ "name": "x" })).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;
}
