//! Upgrade tests: a database that an earlier release migrated and filled is migrated to the
//! current schema and read back through the repository. The rows are written with raw SurrealQL
//! in the shape the earlier release wrote, because today's record types can no longer produce it.
//!
//! They live inside the crate because building a database at an old schema version needs the
//! migrator's `migrate_to`, which is not part of the public API.

use std::sync::Arc;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use uuid::Uuid;
use visprompt_domain::{
    AlgorithmParams, ClassicalParams, MatcherParams, ModelConfigId, MqttQos, MqttSink, ProjectId,
    SinkConfig, SinkId, SourceConfig, SourceId,
};

use crate::SurrealRepository;
use crate::schema::{SCHEMA_VERSION, current_version, migrate, migrate_to};

/// A fresh in-memory database with the schema at `version`.
async fn database_at(version: i64) -> Surreal<Any> {
    let db = surrealdb::engine::any::connect("mem://").await.unwrap();
    db.use_ns("test").use_db("upgrade").await.unwrap();
    assert_eq!(migrate_to(&db, version).await.unwrap(), version);
    assert_eq!(current_version(&db).await.unwrap(), version);
    db
}

/// Runs a script and fails the test on the first statement that failed.
async fn exec(db: &Surreal<Any>, script: &str) {
    let mut response = db.query(script).await.unwrap();
    let errors = response.take_errors();
    assert!(errors.is_empty(), "{script}: {errors:?}");
}

struct Ids {
    project: ProjectId,
    mqtt: SinkId,
    webhook: SinkId,
    classical: ModelConfigId,
    matcher: ModelConfigId,
    video: SourceId,
}

/// Writes a project with an MQTT and a webhook sink and a classical and a matcher model, in the
/// shape schema version 1 defines (no `qos`, `tls` or `min_area`).
async fn fill_as_version_1(db: &Surreal<Any>) -> Ids {
    let ids = Ids {
        project: ProjectId::from_uuid(Uuid::new_v4()),
        mqtt: SinkId::from_uuid(Uuid::new_v4()),
        webhook: SinkId::from_uuid(Uuid::new_v4()),
        classical: ModelConfigId::from_uuid(Uuid::new_v4()),
        matcher: ModelConfigId::from_uuid(Uuid::new_v4()),
        video: SourceId::from_uuid(Uuid::new_v4()),
    };
    let project = format!("project:u'{}'", ids.project.as_uuid());
    let script = format!(
        r#"
CREATE {project} CONTENT {{ name: 'old', created_at: d'2026-01-01T00:00:00Z',
    updated_at: d'2026-01-01T00:00:00Z' }};
CREATE sink:u'{mqtt}' CONTENT {{ project: {project}, name: 'broker', active: true,
    config: {{ kind: 'mqtt', broker_host: 'broker.local', broker_port: 1883, topic: 'vp/out',
        username: 'u', password: 'p' }},
    created_at: d'2026-01-01T00:00:00Z', updated_at: d'2026-01-01T00:00:00Z' }};
CREATE sink:u'{webhook}' CONTENT {{ project: {project}, name: 'hook', active: false,
    config: {{ kind: 'webhook', url: 'https://example.com/hook' }},
    created_at: d'2026-01-01T00:00:00Z', updated_at: d'2026-01-01T00:00:00Z' }};
CREATE model:u'{classical}' CONTENT {{ project: {project}, name: 'Classical', device: 'cpu',
    params: {{ algorithm: 'classical', confidence_threshold: 0.6, max_detections: 7 }},
    created_at: d'2026-01-01T00:00:00Z', updated_at: d'2026-01-01T00:00:00Z' }};
CREATE model:u'{matcher}' CONTENT {{ project: {project}, name: 'Matcher', device: 'auto',
    params: {{ algorithm: 'matcher', sam_model: 'SAM-HQ-tiny', encoder_model: 'dinov3_small',
        precision: 'bf16', num_foreground_points: 5, num_background_points: 3,
        confidence_threshold: 0.75, use_mask_refinement: false, similarity_threshold: NONE,
        num_grid_cells: 8 }},
    created_at: d'2026-01-01T00:00:00Z', updated_at: d'2026-01-01T00:00:00Z' }};
UPDATE {project} SET active_model = model:u'{classical}';
CREATE source:u'{video}' CONTENT {{ project: {project}, name: 'clip',
    config: {{ kind: 'video_file', video_path: '/srv/media/clip.mp4' }},
    created_at: d'2026-01-01T00:00:00Z', updated_at: d'2026-01-01T00:00:00Z' }};
"#,
        video = ids.video.as_uuid(),
        mqtt = ids.mqtt.as_uuid(),
        webhook = ids.webhook.as_uuid(),
        classical = ids.classical.as_uuid(),
        matcher = ids.matcher.as_uuid(),
    );
    exec(db, &script).await;
    ids
}

#[tokio::test]
async fn rows_of_schema_version_1_read_back_with_the_new_parameters_defaulted() {
    // Arrange: a database as the release with schema version 1 left it.
    let db = database_at(1).await;
    let ids = fill_as_version_1(&db).await;

    // Act
    assert_eq!(migrate(&db).await.unwrap(), SCHEMA_VERSION);
    let repo = SurrealRepository { db: Arc::new(db) };

    // Assert: the new fields have the defaults, everything else is as written.
    let mqtt = repo.get_sink(ids.project, ids.mqtt).await.unwrap().unwrap();
    assert_eq!(
        mqtt.config,
        SinkConfig::Mqtt(MqttSink {
            broker_host: "broker.local".into(),
            broker_port: 1883,
            topic: "vp/out".into(),
            username: Some("u".into()),
            password: Some("p".into()),
            qos: MqttQos::AtMostOnce,
            tls: false,
        })
    );
    let webhook = repo.get_sink(ids.project, ids.webhook).await.unwrap();
    assert_eq!(
        webhook.unwrap().config,
        SinkConfig::Webhook {
            url: "https://example.com/hook".into()
        }
    );
    let classical = repo
        .get_model(ids.project, ids.classical)
        .await
        .unwrap()
        .unwrap();
    assert!(classical.active);
    assert_eq!(
        classical.params,
        AlgorithmParams::Classical(ClassicalParams {
            confidence_threshold: 0.6,
            max_detections: 7,
            min_area: 0.2,
        })
    );
    let matcher = repo.get_model(ids.project, ids.matcher).await.unwrap();
    assert_eq!(
        matcher.unwrap().params,
        AlgorithmParams::Matcher(MatcherParams::default())
    );
    // Migration 3: videos loop, as every video did before the setting existed.
    let video = repo.get_source(ids.project, ids.video).await.unwrap();
    assert_eq!(
        video.unwrap().config,
        SourceConfig::VideoFile {
            video_path: "/srv/media/clip.mp4".into(),
            looping: true,
        }
    );
}

#[tokio::test]
async fn rows_written_after_the_upgrade_keep_their_own_values() {
    // Arrange: upgraded from version 1, then a sink and a model changed through the repository.
    let db = database_at(1).await;
    let ids = fill_as_version_1(&db).await;
    migrate(&db).await.unwrap();
    let repo = SurrealRepository { db: Arc::new(db) };
    let mut sink = repo.get_sink(ids.project, ids.mqtt).await.unwrap().unwrap();
    let SinkConfig::Mqtt(mqtt) = &mut sink.config else {
        panic!("not an MQTT sink: {:?}", sink.config)
    };
    mqtt.qos = MqttQos::ExactlyOnce;
    mqtt.tls = true;
    let mut model = repo
        .get_model(ids.project, ids.classical)
        .await
        .unwrap()
        .unwrap();
    model.params = AlgorithmParams::Classical(ClassicalParams {
        min_area: 1.0,
        ..ClassicalParams::default()
    });

    // Act
    repo.update_sink(&sink).await.unwrap();
    repo.update_model(&model).await.unwrap();

    // Assert
    assert_eq!(
        repo.get_sink(ids.project, ids.mqtt).await.unwrap(),
        Some(sink)
    );
    assert_eq!(
        repo.get_model(ids.project, ids.classical).await.unwrap(),
        Some(model)
    );
}

#[tokio::test]
async fn the_schema_refuses_a_qos_level_outside_zero_to_two() {
    let db = database_at(SCHEMA_VERSION).await;
    let create = |qos: i64| {
        format!(
            "CREATE sink CONTENT {{ project: project:x, name: 'n', active: false,
                config: {{ kind: 'mqtt', broker_host: 'h', broker_port: 1883, topic: 't',
                    username: NONE, password: NONE, qos: {qos}, tls: false }},
                created_at: time::now(), updated_at: time::now() }};"
        )
    };
    exec(&db, &create(2)).await;
    for qos in [3, -1] {
        let mut response = db.query(create(qos)).await.unwrap();
        assert_eq!(response.take_errors().len(), 1, "qos {qos}");
    }
}

/// The values migration 2 backfills are written out in its script; they must stay the domain's
/// defaults, or an upgraded configuration would behave unlike a new one with the same settings.
#[test]
fn the_backfilled_values_are_the_domain_defaults() {
    assert_eq!(ClassicalParams::default().min_area, 0.2);
    assert_eq!(MqttQos::default(), MqttQos::AtMostOnce);
}
