//! Cross-cutting behaviour: the bearer token, body limits, malformed requests, health.

use futures_util::stream;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, assert_error, png, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_answers_ok() {
    let app = spawn_app().await;
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn with_a_token_every_route_but_health_requires_it() {
    let app = spawn_app_with(Options {
        api_token: Some("s3cret".into()),
        ..Options::default()
    })
    .await;
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    assert_error(
        app.get("/api/v1/projects").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.get("/api/openapi.json").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let wrong = app
        .client
        .get(app.url("/api/v1/projects"))
        .bearer_auth("s3cres")
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app
        .client
        .post(app.url("/api/v1/projects"))
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let ok = app
        .client
        .get(app.url("/api/v1/projects"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let list: Value = ok.json().await.unwrap();
    assert_eq!(
        list["pagination"]["total"], 0,
        "the refused create stored nothing"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_oversized_upload_is_refused_before_it_is_read() {
    let app = spawn_app_with(Options {
        max_upload_bytes: 1024,
        ..Options::default()
    })
    .await;
    let pid = crate::helpers::id(&app.post_project("p").await);
    let big = png(256, 256);
    assert!(big.len() > 1024);
    let resp = app.upload_frame(&pid, big, "image/png").await;
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_oversized_chunked_body_without_length_is_refused_too() {
    let app = spawn_app_with(Options {
        max_body_bytes: 4096,
        ..Options::default()
    })
    .await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 1024])).collect();
    let resp = app
        .client
        .post(app.url("/api/v1/projects"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_small_chunked_body_still_works() {
    let app = spawn_app().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"{\"name\":".to_vec()), Ok(b"\"chunky\"}".to_vec())];
    let resp = app
        .client
        .post(app.url("/api/v1/projects"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_bad_requests_with_a_json_body() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/api/v1/projects"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = app
        .post_json("/api/v1/projects", &json!({ "name": 42 }))
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = app.post_json("/api/v1/projects", &json!({})).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_schema_violation_names_the_field() {
    let app = spawn_app().await;
    let resp = app
        .post_json("/api/v1/projects", &json!({ "name": "x".repeat(101) }))
        .await;
    let body = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert_eq!(body["field"], "name");
    app.shutdown().await;
}
