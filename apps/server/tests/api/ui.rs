//! The browser UI on the API's port: files, cache headers, the single-page fallback, and the
//! API's paths never shadowed by it.

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Options, assert_error, spawn_app_with};

/// A built UI as Vite lays it out, beside a file that must stay out of reach.
fn built_ui() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dist = root.path().join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><div id=root></div>",
    )
    .unwrap();
    std::fs::write(dist.join("assets/index-3f9a1c.js"), "console.log(1)").unwrap();
    std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(root.path().join("secret.txt"), "not for browsers").unwrap();
    (root, dist)
}

fn with_ui(dist: std::path::PathBuf, token: Option<&str>) -> Options {
    Options {
        api_token: token.map(str::to_owned),
        adjust: Some(Box::new(move |s| s.server.ui_dir = dist)),
        ..Options::default()
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_ui_is_served_at_the_root_with_its_cache_rules() {
    let (_root, dist) = built_ui();
    let app = spawn_app_with(with_ui(dist, None)).await;

    let index = app.get("/").await;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(header(&index, "content-type").starts_with("text/html"));
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert!(index.text().await.unwrap().contains("id=root"));

    let asset = app.get("/assets/index-3f9a1c.js").await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(header(&asset, "content-type").contains("javascript"));
    assert_eq!(
        header(&asset, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(asset.text().await.unwrap(), "console.log(1)");

    let icon = app.get("/favicon.svg").await;
    assert_eq!(icon.status(), StatusCode::OK);
    assert_eq!(header(&icon, "cache-control"), "no-cache");

    let head = app
        .client
        .head(app.url("/assets/index-3f9a1c.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn app_routes_get_the_page_and_missing_files_a_404() {
    let (_root, dist) = built_ui();
    let app = spawn_app_with(with_ui(dist, None)).await;

    let route = app.get("/projects/0b6a/live").await;
    assert_eq!(route.status(), StatusCode::OK);
    assert!(route.text().await.unwrap().contains("id=root"));

    for missing in ["/assets/gone-123.js", "/robots.txt"] {
        let resp = app.get(missing).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{missing}");
        assert!(!resp.text().await.unwrap().contains("id=root"), "{missing}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_api_keeps_its_paths_and_its_json_errors() {
    let (_root, dist) = built_ui();
    let app = spawn_app_with(with_ui(dist, None)).await;

    assert_error(
        app.get("/api/v1/no-such-resource").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    let projects = app.get("/api/v1/projects").await;
    assert_eq!(projects.status(), StatusCode::OK);
    assert!(header(&projects, "content-type").starts_with("application/json"));
    // Writes to UI paths are not the UI's business: the API answers them.
    let post = app.client.post(app.url("/")).send().await.unwrap();
    assert!(post.status().is_client_error(), "{}", post.status());
    app.shutdown().await;
}

#[tokio::test]
async fn paths_out_of_the_ui_folder_are_refused() {
    let (_root, dist) = built_ui();
    let app = spawn_app_with(with_ui(dist, None)).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    // Sent raw: HTTP clients would resolve the dot segments before sending.
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(!answer.contains("not for browsers"), "{path}: {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 404") || answer.starts_with("HTTP/1.1 400"),
            "{path}: {answer}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn with_a_token_the_page_loads_and_the_api_still_asks_for_it() {
    let (_root, dist) = built_ui();
    let app = spawn_app_with(with_ui(dist, Some("s3cret"))).await;

    assert_eq!(app.get("/").await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/assets/index-3f9a1c.js").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/projects").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_unbuilt_ui_explains_how_to_build_it() {
    let root = tempfile::tempdir().unwrap();
    let app = spawn_app_with(with_ui(root.path().join("dist"), None)).await;
    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.unwrap();
    assert!(text.contains("just ui-build"), "{text}");
    assert!(text.contains("/api/docs"), "{text}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_servers_own_pages_may_write_on_any_port_and_other_origins_may_not() {
    // The test server's port is random, so the default CORS_ORIGINS (port 9100) never lists it.
    let app = spawn_app_with(Options::default()).await;
    let own = app.address.clone();
    let created = app
        .client
        .post(app.url("/api/v1/projects"))
        .header("Origin", &own)
        .json(&serde_json::json!({ "name": "from the UI" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let foreign = app
        .client
        .post(app.url("/api/v1/projects"))
        .header("Origin", "http://attacker.example")
        .json(&serde_json::json!({ "name": "from elsewhere" }))
        .send()
        .await
        .unwrap();
    let body = assert_error(foreign, StatusCode::FORBIDDEN, "forbidden_origin").await;
    assert!(
        body["message"].as_str().unwrap().contains("CORS_ORIGINS"),
        "{body}"
    );
    // Nothing was stored by the refused request.
    let list: serde_json::Value = app.get("/api/v1/projects").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total"], 1, "{list}");

    // A listed origin still gets its CORS headers.
    let listed = app
        .client
        .get(app.url("/api/v1/projects"))
        .header("Origin", "http://localhost:9100")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        header(&listed, "access-control-allow-origin"),
        "http://localhost:9100"
    );
    app.shutdown().await;
}
