//! Sinks: every kind, several active at once, write-only passwords, fixed kind.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, id, spawn_app};

#[tokio::test]
async fn every_sink_kind_is_stored_and_several_may_be_active() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let root = app.media_root.path().to_str().unwrap().to_owned();
    let configs = [
        json!({ "sink_type": "mqtt", "broker_host": "127.0.0.1", "broker_port": 1883, "topic": "vp/predictions" }),
        json!({ "sink_type": "webhook", "url": "http://127.0.0.1:9/hook" }),
        json!({ "sink_type": "file", "path": format!("{root}/out.jsonl") }),
    ];
    for config in &configs {
        let resp = app
            .post_json(
                &format!("/api/v1/projects/{pid}/sinks"),
                &json!({ "active": true, "config": config }),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{config}");
    }
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/sinks"))
        .await
        .json()
        .await
        .unwrap();
    let sinks = list["sinks"].as_array().unwrap();
    assert_eq!(sinks.len(), 3);
    assert!(sinks.iter().all(|s| s["active"] == true));
    app.shutdown().await;
}

#[tokio::test]
async fn an_mqtt_password_is_never_returned_and_survives_an_update_without_one() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let config = json!({ "sink_type": "mqtt", "broker_host": "broker", "topic": "t", "username": "u", "password": "hunter2" });
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/sinks"),
            &json!({ "config": config }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("hunter2"));
    let sink: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(sink["config"]["password_set"], true);
    assert_eq!(sink["config"]["broker_port"], 1883);
    let path = format!("/api/v1/projects/{pid}/sinks/{}", id(&sink));
    let update =
        json!({ "config": { "sink_type": "mqtt", "broker_host": "broker2", "topic": "t" } });
    let updated: Value = app.put_json(&path, &update).await.json().await.unwrap();
    assert_eq!(updated["config"]["broker_host"], "broker2");
    assert_eq!(updated["config"]["password_set"], true);
    app.shutdown().await;
}

#[tokio::test]
async fn an_mqtt_sinks_qos_and_tls_default_to_0_and_off_and_round_trip() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let sinks = format!("/api/v1/projects/{pid}/sinks");
    let plain = json!({ "config": { "sink_type": "mqtt", "broker_host": "broker" } });
    let created: Value = app.post_json(&sinks, &plain).await.json().await.unwrap();
    assert_eq!(created["config"]["qos"], 0);
    assert_eq!(created["config"]["tls"], false);
    let path = format!("{sinks}/{}", id(&created));
    for (qos, tls) in [(1, true), (2, false), (0, true)] {
        let body = json!({ "config": { "sink_type": "mqtt", "broker_host": "broker", "broker_port": 8883, "qos": qos, "tls": tls } });
        let updated: Value = app.put_json(&path, &body).await.json().await.unwrap();
        assert_eq!(
            (&updated["config"]["qos"], &updated["config"]["tls"]),
            (&json!(qos), &json!(tls))
        );
        let read: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(read["config"], updated["config"]);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_qos_other_than_0_1_or_2_is_refused_by_name() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    for qos in [json!(3), json!(-1), json!(1000)] {
        let body = json!({ "config": { "sink_type": "mqtt", "broker_host": "h", "qos": qos } });
        let resp = app
            .post_json(&format!("/api/v1/projects/{pid}/sinks"), &body)
            .await;
        let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
        // The schema's range refuses it before the domain sees it, and poem names a field inside
        // the `config` union without the union's own name, as it does for every such field.
        assert_eq!(err["field"], "qos", "{qos} {err}");
    }
    let body = json!({ "config": { "sink_type": "mqtt", "broker_host": "h", "tls": "yes" } });
    let resp = app
        .post_json(&format!("/api/v1/projects/{pid}/sinks"), &body)
        .await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let list: Value = app
        .get(&format!("/api/v1/projects/{pid}/sinks"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_sink_values_are_refused_by_field() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let root = app.media_root.path().to_str().unwrap().to_owned();
    let cases = [
        (
            json!({ "sink_type": "webhook", "url": "http://" }),
            "config.url",
        ),
        (
            json!({ "sink_type": "file", "path": "/etc/cron.d/evil" }),
            "config.path",
        ),
        (
            json!({ "sink_type": "file", "path": format!("{root}/../x") }),
            "config.path",
        ),
    ];
    for (config, field) in cases {
        let resp = app
            .post_json(
                &format!("/api/v1/projects/{pid}/sinks"),
                &json!({ "config": config }),
            )
            .await;
        let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
        assert_eq!(err["field"], field);
    }
    let resp = app
        .post_json(
            &format!("/api/v1/projects/{pid}/sinks"),
            &json!({ "config": { "sink_type": "mqtt", "broker_host": "h", "topic": "a/#" } }),
        )
        .await;
    assert!(resp.status().is_client_error());
    app.shutdown().await;
}

#[tokio::test]
async fn a_sink_keeps_its_kind_and_can_be_deleted() {
    let app = spawn_app().await;
    let pid = id(&app.post_project("p").await);
    let sink: Value = app
        .post_json(
            &format!("/api/v1/projects/{pid}/sinks"),
            &json!({ "config": { "sink_type": "webhook", "url": "https://example.com/x" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/projects/{pid}/sinks/{}", id(&sink));
    assert_eq!(app.get(&path).await.status(), StatusCode::OK);
    let resp = app
        .put_json(
            &path,
            &json!({ "config": { "sink_type": "mqtt", "broker_host": "h" } }),
        )
        .await;
    let err = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert_eq!(err["field"], "config.sink_type");
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_error(app.get(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}
