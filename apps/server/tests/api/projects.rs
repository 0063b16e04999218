//! Projects: create, list, read, rename, activate, deactivate, delete, export and import.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, id, spawn_app};

#[tokio::test]
async fn a_created_project_is_active_has_a_location_and_four_model_configs() {
    let app = spawn_app().await;
    let resp = app
        .post_json("/api/v1/projects", &json!({ "name": "cats" }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let project: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/projects/{}", id(&project)));
    assert_eq!(project["name"], "cats");
    assert_eq!(project["active"], true);
    let models: Value = app
        .get(&format!("{location}/models"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(models["pagination"]["total"], 4);
    let active: Value = app
        .get(&format!("{location}/models/active"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["config"]["model_type"], "classical");
    app.shutdown().await;
}

#[tokio::test]
async fn activating_a_project_deactivates_the_other() {
    let app = spawn_app().await;
    let a = app.post_project("a").await;
    let b = app.post_project("b").await;
    let active: Value = app
        .get("/api/v1/projects/active")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["id"], b["id"]);
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/projects/{}/activate", id(&a))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let a_now: Value = app
        .get(&format!("/api/v1/projects/{}", id(&a)))
        .await
        .json()
        .await
        .unwrap();
    let b_now: Value = app
        .get(&format!("/api/v1/projects/{}", id(&b)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (a_now["active"].clone(), b_now["active"].clone()),
        (json!(true), json!(false))
    );
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/projects/{}/deactivate", id(&a))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_error(
        app.get("/api/v1/projects/active").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_project_can_be_created_inactive() {
    let app = spawn_app().await;
    let resp = app
        .post_json(
            "/api/v1/projects",
            &json!({ "name": "quiet", "active": false }),
        )
        .await;
    let project: Value = resp.json().await.unwrap();
    assert_eq!(project["active"], false);
    assert_error(
        app.get("/api/v1/projects/active").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn projects_are_listed_in_pages_with_the_total() {
    let app = spawn_app().await;
    for name in ["p1", "p2", "p3"] {
        app.post_project(name).await;
    }
    let page: Value = app
        .get("/api/v1/projects?limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["pagination"],
        json!({ "count": 2, "total": 3, "offset": 0, "limit": 2 })
    );
    assert_eq!(page["projects"][0]["name"], "p1");
    let rest: Value = app
        .get("/api/v1/projects?offset=2&limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["projects"].as_array().unwrap().len(), 1);
    assert_eq!(rest["projects"][0]["name"], "p3");
    let bad = app.get("/api/v1/projects?limit=0").await;
    assert!(bad.status().is_client_error());
    let bad = app.get("/api/v1/projects?limit=1001").await;
    assert!(bad.status().is_client_error());
    app.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_name_is_a_conflict_naming_the_field() {
    let app = spawn_app().await;
    app.post_project("same").await;
    let resp = app
        .post_json("/api/v1/projects", &json!({ "name": "same" }))
        .await;
    let body = assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(body["field"], "name");
    app.shutdown().await;
}

#[tokio::test]
async fn renaming_keeps_the_id_and_respects_uniqueness() {
    let app = spawn_app().await;
    let a = app.post_project("a").await;
    app.post_project("b").await;
    let path = format!("/api/v1/projects/{}", id(&a));
    let renamed: Value = app
        .put_json(&path, &json!({ "name": "a2" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (renamed["id"].clone(), renamed["name"].clone()),
        (a["id"].clone(), json!("a2"))
    );
    let resp = app.put_json(&path, &json!({ "name": "b" })).await;
    assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    let resp = app.put_json(&path, &json!({ "name": "   " })).await;
    let body = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert_eq!(body["field"], "name");
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_400() {
    let app = spawn_app().await;
    let unknown = "/api/v1/projects/7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c11";
    assert_error(app.get(unknown).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.delete(unknown).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.put_json(unknown, &json!({ "name": "x" })).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get("/api/v1/projects/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn deleting_a_project_deletes_what_it_owns() {
    let app = spawn_app().await;
    let p = app.post_project("doomed").await;
    let pid = id(&p);
    let label = app.post_label(&pid, "cat").await;
    let frame = app.post_frame(&pid, 32, 24).await;
    let prompt = json!({ "type": "visual", "frame_id": frame["id"], "annotations": [
        { "label_id": label["id"], "shape": { "type": "points", "points": [{ "x": 3, "y": 4 }] } }
    ]});
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/prompts"), &prompt)
            .await
            .status(),
        201
    );
    assert_eq!(
        app.delete(&format!("/api/v1/projects/{pid}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        app.get(&format!("/api/v1/projects/{pid}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let frame_path = format!("/api/v1/projects/{pid}/frames/{}", id(&frame));
    assert_error(
        app.get(&frame_path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get("/api/v1/projects/active").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list: Value = app.get("/api/v1/projects").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn an_exported_project_imports_as_a_new_inactive_project_with_the_same_content() {
    let app = spawn_app().await;
    let p = app.post_project("original").await;
    let pid = id(&p);
    let label = app.post_label(&pid, "cat").await;
    let frame = app.post_frame(&pid, 40, 30).await;
    let prompt = json!({ "type": "visual", "frame_id": frame["id"], "annotations": [
        { "label_id": label["id"], "shape": { "type": "rectangle", "min": {"x": 1, "y": 2}, "max": {"x": 20, "y": 10} } }
    ]});
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/prompts"), &prompt)
            .await
            .status(),
        201
    );
    let source = json!({ "active": true, "config": { "source_type": "synthetic" } });
    assert_eq!(
        app.post_json(&format!("/api/v1/projects/{pid}/sources"), &source)
            .await
            .status(),
        201
    );

    let resp = app.get(&format!("/api/v1/projects/{pid}/export")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let archive = resp.bytes().await.unwrap();

    let resp = app
        .client
        .post(app.url("/api/v1/projects/import?name=copy"))
        .header("content-type", "application/zip")
        .body(archive.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let copy: Value = resp.json().await.unwrap();
    let cid = id(&copy);
    assert_ne!(cid, pid);
    assert_eq!(
        (copy["name"].clone(), copy["active"].clone()),
        (json!("copy"), json!(false))
    );

    let labels: Value = app
        .get(&format!("/api/v1/projects/{cid}/labels"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(labels["labels"][0]["name"], "cat");
    assert_ne!(labels["labels"][0]["id"], label["id"]);
    let prompts: Value = app
        .get(&format!("/api/v1/projects/{cid}/prompts"))
        .await
        .json()
        .await
        .unwrap();
    let copied = &prompts["prompts"][0];
    assert_eq!(
        copied["annotations"][0]["label_id"],
        labels["labels"][0]["id"]
    );
    let image = app
        .get(&format!(
            "/api/v1/projects/{cid}/frames/{}",
            copied["frame_id"].as_str().unwrap()
        ))
        .await;
    let original = app
        .get(&format!("/api/v1/projects/{pid}/frames/{}", id(&frame)))
        .await;
    assert_eq!(
        image.bytes().await.unwrap(),
        original.bytes().await.unwrap()
    );
    let sources: Value = app
        .get(&format!("/api/v1/projects/{cid}/sources"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sources["sources"][0]["active"], true);
    let models: Value = app
        .get(&format!("/api/v1/projects/{cid}/models"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(models["pagination"]["total"], 4);

    // The same archive again, under the name it carries, clashes with the original.
    let resp = app
        .client
        .post(app.url("/api/v1/projects/import"))
        .header("content-type", "application/zip")
        .body(archive.to_vec())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    app.shutdown().await;
}

#[tokio::test]
async fn importing_garbage_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/api/v1/projects/import"))
        .header("content-type", "application/zip")
        .body(b"PK\x03\x04 definitely not a zip".to_vec())
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert_eq!(body["field"], "archive");
    let list: Value = app.get("/api/v1/projects").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total"], 0);
    app.shutdown().await;
}
