//! Model configurations: defaults, validation, one active per project, supported models.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, id, spawn_app};

#[tokio::test]
async fn a_config_left_mostly_empty_gets_the_algorithm_defaults() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let body = json!({ "name": "fast matcher", "config": { "model_type": "matcher", "num_foreground_points": 7 } });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/models"), &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let model: Value = resp.json().await.unwrap();
    assert_eq!(model["config"]["num_foreground_points"], 7);
    assert_eq!(model["config"]["num_background_points"], 3);
    assert_eq!(model["config"]["sam_model"], "SAM-HQ-tiny");
    assert_eq!(model["config"]["encoder_model"], "dinov3_small");
    assert_eq!(model["device"], "auto");
    assert_eq!(model["active"], false);
    app.shutdown().await;
}

#[tokio::test]
async fn activating_a_model_deactivates_the_previous_one() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let body = json!({ "name": "mine", "active": true, "device": "cpu", "config": { "model_type": "soft_matcher" } });
    let created: Value = app
        .post_json(&format!("/api/v1/projects/{pid}/models"), &body)
        .await
        .json()
        .await
        .unwrap();
    let active: Value = app
        .get(&format!("/api/v1/projects/{pid}/models/active"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["id"], created["id"]);
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/models"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["active"] == true)
            .count(),
        1
    );
    let path = format!("/api/v1/projects/{pid}/models/{}", id(&created));
    let body = json!({ "name": "mine", "active": false, "config": { "model_type": "classical" } });
    let updated: Value = app.put_json(&path, &body).await.json().await.unwrap();
    assert_eq!(updated["config"]["model_type"], "classical");
    assert_error(
        app.get(&format!("/api/v1/projects/{pid}/models/active"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_error(app.get(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn model_names_are_unique_within_a_project() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let body = json!({ "name": "Matcher", "config": { "model_type": "matcher" } });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/models"), &body)
        .await;
    let err = assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(err["field"], "name");
    app.shutdown().await;
}

#[tokio::test]
async fn out_of_range_parameters_and_unknown_devices_are_refused() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    for body in [
        json!({ "name": "x", "config": { "model_type": "matcher", "confidence_threshold": 1.0 } }),
        json!({ "name": "x", "config": { "model_type": "perdino", "num_foreground_points": 0 } }),
        json!({ "name": "x", "config": { "model_type": "matcher", "sam_model": "SAM2-tiny" } }),
        json!({ "name": "x", "device": "tpu", "config": { "model_type": "classical" } }),
        json!({ "name": "x", "config": { "model_type": "sam3" } }),
    ] {
        let resp = app
            .post_json(&format!("/api/v1/projects/{pid}/models"), &body)
            .await;
        assert!(
            resp.status().is_client_error(),
            "{body} got {}",
            resp.status()
        );
    }
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/models"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 4);
    app.shutdown().await;
}

#[tokio::test]
async fn the_classical_min_area_defaults_to_a_fifth_and_round_trips() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let models = format!("/api/v1/projects/{pid}/models");
    let body = json!({ "name": "coarse", "config": { "model_type": "classical" } });
    let created: Value = app.post_json(&models, &body).await.json().await.unwrap();
    assert_eq!(created["config"]["min_area"], 0.2);
    let path = format!("{models}/{}", id(&created));
    for min_area in [0.01, 0.35, 1.0] {
        let body = json!({ "name": "coarse", "config": { "model_type": "classical", "min_area": min_area } });
        let updated: Value = app.put_json(&path, &body).await.json().await.unwrap();
        assert_eq!(updated["config"]["min_area"], min_area);
        let read: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(read["config"]["min_area"], min_area);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_min_area_outside_one_percent_to_one_is_refused_by_name() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    for min_area in [0.0, 0.009, -0.2, 1.01, 5.0] {
        let body =
            json!({ "name": "x", "config": { "model_type": "classical", "min_area": min_area } });
        let resp = app
            .post_json(&format!("/api/v1/projects/{pid}/models"), &body)
            .await;
        let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
        // Named as poem names every range-checked field inside the `config` union.
        assert_eq!(err["field"], "min_area", "{min_area} {err}");
        // In words, not in the parser's terms.
        let message = err["message"].as_str().unwrap();
        let rule = if min_area < 0.01 {
            "min_area: must be at least 0.01"
        } else {
            "min_area: must be at most 1"
        };
        assert_eq!(message, rule, "{min_area}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn supported_models_list_every_algorithm_with_its_defaults() {
    let app = spawn_app().await;
    let list: Value = app
        .get("/api/v1/system/supported-models")
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["matcher", "perdino", "soft_matcher", "classical"]);
    assert_eq!(list["models"][3]["needs_weights"], false);
    assert_eq!(list["models"][3]["default_config"]["min_area"], 0.2);
    assert_eq!(
        list["models"][2]["default_config"]["confidence_threshold"],
        0.42
    );
    let page: Value = app
        .get("/api/v1/system/supported-models?offset=3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["pagination"],
        json!({ "count": 1, "total": 4, "offset": 3, "limit": 20 })
    );
    app.shutdown().await;
}
