//! Discovery of available sources, and navigation of a source that has positions (a bundled
//! dataset found through discovery).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, id, spawn_app};

#[tokio::test]
async fn listed_cameras_exist_and_unlistable_kinds_are_refused_by_name() {
    let app = spawn_app().await;
    let cameras: Vec<Value> = app
        .get("/api/v1/system/source-types/usb_camera/sources")
        .await
        .json()
        .await
        .unwrap();
    for camera in &cameras {
        let device = format!("/dev/video{}", camera["device_id"]);
        assert!(std::path::Path::new(&device).exists(), "{camera}");
        assert_eq!(camera["source_type"], "usb_camera");
    }
    let body = assert_error(
        app.get("/api/v1/system/source-types/rtsp/sources").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    )
    .await;
    assert_eq!(body["field"], "source_type");
    assert!(
        body["message"].as_str().unwrap().contains("usb_camera"),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_dataset_can_be_browsed_and_seeked() {
    let app = spawn_app().await;
    let listed: Vec<Value> = app
        .get("/api/v1/system/source-types/sample_dataset/sources")
        .await
        .json()
        .await
        .unwrap();
    let datasets: Value = app
        .get("/api/v1/system/datasets")
        .await
        .json()
        .await
        .unwrap();
    let dataset = &datasets["datasets"][0];
    assert_eq!(listed[0]["dataset_id"], dataset["id"]);
    let frames = dataset["frames"].as_u64().unwrap();
    assert!(frames > 1);

    let pid = id(&app.post_project("browse").await);
    let config = json!({ "source_type": "sample_dataset", "dataset_id": dataset["id"] });
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/sources"),
            &json!({ "active": true, "config": config }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let sid = id(&resp.json::<Value>().await.unwrap());
    let base = format!("/api/v1/projects/{pid}/sources/{sid}/frames");

    // The source opens asynchronously; the listing answers once it has.
    let mut list = Value::Null;
    for _ in 0..100 {
        let resp = app.get(&format!("{base}?limit=3&offset=1")).await;
        if resp.status() == StatusCode::OK {
            list = resp.json().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(list["pagination"]["total"], frames);
    let thumbs = list["frames"].as_array().unwrap();
    assert_eq!(thumbs.len(), 3);
    assert_eq!(thumbs[0]["index"], 1);
    assert!(
        thumbs[0]["thumbnail"]
            .as_str()
            .unwrap()
            .starts_with("data:image/jpeg;base64,")
    );

    let seek: Value = app
        .client
        .post(app.url(&format!("{base}/{}", frames - 1)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seek["index"], frames - 1);
    let index: Value = app
        .get(&format!("{base}/index"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(index, json!({ "index": frames - 1, "count": frames }));

    let body = assert_error(
        app.client
            .post(app.url(&format!("{base}/{frames}")))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    )
    .await;
    assert_eq!(body["field"], "index");
    // The position did not move.
    let index: Value = app
        .get(&format!("{base}/index"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(index["index"], frames - 1);
    app.shutdown().await;
}
