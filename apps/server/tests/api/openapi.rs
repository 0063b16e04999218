//! The OpenAPI document: served, browsable, and identical to the checked-in copy.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

fn checked_in() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    let text =
        std::fs::read_to_string(path).expect("openapi/openapi.json exists (run `just openapi`)");
    serde_json::from_str(&text).expect("openapi/openapi.json is JSON")
}

#[tokio::test]
async fn the_checked_in_document_matches_what_the_server_generates() {
    let generated: Value =
        serde_json::from_str(&visprompt_server::openapi_document().await.unwrap()).unwrap();
    assert!(
        generated == checked_in(),
        "openapi/openapi.json is stale: run `just openapi` and commit the result"
    );
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one_and_docs_are_browsable() {
    let app = spawn_app().await;
    let served: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert_eq!(served, checked_in());
    assert!(served["paths"]["/api/v1/projects/{project_id}/labels"].is_object());
    let docs = app.get("/api/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    app.shutdown().await;
}
