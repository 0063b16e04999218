//! Archives round-trip every entity, and hostile archives are refused with a reason.

use std::io::{Cursor, Write};

use chrono::{SubsecRound, Utc};
use visprompt_archive::{ArchiveError, ArchiveLimits, FORMAT_VERSION, read_archive, write_archive};
use visprompt_domain::*;
use zip::write::SimpleFileOptions;

fn bundle() -> ProjectBundle {
    let at = Utc::now().trunc_subsecs(6);
    let pid = ProjectId::new();
    let label = Label {
        id: LabelId::new(),
        project_id: pid,
        name: LabelName::parse("cat").unwrap(),
        color: Color::rgb(1, 2, 3),
        created_at: at,
        updated_at: at,
    };
    let frame = Frame {
        id: FrameId::new(),
        project_id: pid,
        format: ImageFormat::Png,
        size: FrameSize::new(4, 2).unwrap(),
        byte_len: 3,
        created_at: at,
    };
    let shapes = vec![
        Shape::Points(vec![
            (Point { x: 1.0, y: 1.5 }, true),
            (Point { x: 2.0, y: 0.0 }, false),
        ]),
        Shape::Rectangle {
            min: Point { x: 0.0, y: 0.0 },
            max: Point { x: 4.0, y: 2.0 },
        },
        Shape::Polygon(vec![
            Point { x: 0.0, y: 0.0 },
            Point { x: 4.0, y: 0.0 },
            Point { x: 0.0, y: 2.0 },
        ]),
        Shape::Mask(Rle {
            size: frame.size,
            counts: vec![2, 3, 3],
        }),
    ];
    let visual = Prompt {
        id: PromptId::new(),
        project_id: pid,
        content: PromptContent::Visual {
            frame_id: frame.id,
            annotations: shapes
                .into_iter()
                .map(|shape| Annotation {
                    label_id: label.id,
                    shape,
                })
                .collect(),
        },
        created_at: at,
        updated_at: at,
    };
    let text = Prompt {
        id: PromptId::new(),
        project_id: pid,
        content: PromptContent::Text {
            phrases: vec![TextPhrase {
                label_id: label.id,
                text: Phrase::parse("a cat").unwrap(),
            }],
        },
        created_at: at,
        updated_at: at,
    };
    let sources = [
        SourceConfig::UsbCamera { device_id: 2 },
        SourceConfig::VideoFile {
            looping: false,
            video_path: "/srv/a.mp4".into(),
        },
        SourceConfig::ImagesFolder {
            images_folder_path: "/srv/imgs".into(),
        },
        SourceConfig::Rtsp {
            url: "rtsp://cam/1".into(),
        },
        SourceConfig::SampleDataset { dataset_id: None },
        SourceConfig::Synthetic,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, config)| Source {
        id: SourceId::new(),
        project_id: pid,
        name: DisplayName::parse(&format!("s{i}")).unwrap(),
        active: i == 5,
        config,
        created_at: at,
        updated_at: at,
    })
    .collect();
    let sinks = [
        SinkConfig::Mqtt(MqttSink {
            broker_host: "broker".into(),
            broker_port: 1883,
            topic: "t".into(),
            username: Some("u".into()),
            password: None,
            qos: MqttQos::AtMostOnce,
            tls: false,
        }),
        SinkConfig::Mqtt(MqttSink {
            broker_host: "secure.broker".into(),
            broker_port: 8883,
            topic: "t/2".into(),
            username: None,
            password: None,
            qos: MqttQos::ExactlyOnce,
            tls: true,
        }),
        SinkConfig::Webhook {
            url: "http://h/x".into(),
        },
        SinkConfig::File {
            path: "/srv/out.jsonl".into(),
        },
    ]
    .into_iter()
    .map(|config| Sink {
        id: SinkId::new(),
        project_id: pid,
        name: DisplayName::parse("k").unwrap(),
        active: true,
        config,
        created_at: at,
        updated_at: at,
    })
    .collect();
    let models = Algorithm::ALL
        .iter()
        .map(|a| ModelConfig {
            id: ModelConfigId::new(),
            project_id: pid,
            name: DisplayName::parse(a.display_name()).unwrap(),
            active: *a == Algorithm::Matcher,
            device: Device::Cuda(1),
            params: match a.default_params() {
                // Not the default, so that the round trip shows the value is carried.
                AlgorithmParams::Classical(p) => AlgorithmParams::Classical(ClassicalParams {
                    min_area: 0.35,
                    ..p
                }),
                other => other,
            },
            created_at: at,
            updated_at: at,
        })
        .collect();
    ProjectBundle {
        project: Project {
            id: pid,
            name: ProjectName::parse("cats").unwrap(),
            active: false,
            created_at: at,
            updated_at: at,
        },
        labels: vec![label],
        frames: vec![StoredFrame {
            frame,
            bytes: vec![9, 8, 7],
        }],
        prompts: vec![visual, text],
        sources,
        sinks,
        models,
    }
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn every_entity_survives_a_round_trip() {
    let original = bundle();
    let read = read_archive(&write_archive(&original), ArchiveLimits::default()).unwrap();
    assert_eq!(read, original);
}

#[test]
fn mqtt_passwords_are_not_exported() {
    let mut original = bundle();
    if let SinkConfig::Mqtt(m) = &mut original.sinks[0].config {
        m.password = Some("hunter2".into());
    }
    let archive = write_archive(&original);
    assert!(!archive.windows(7).any(|w| w == b"hunter2"));
    let read = read_archive(&archive, ArchiveLimits::default()).unwrap();
    assert!(matches!(&read.sinks[0].config, SinkConfig::Mqtt(m) if m.password.is_none()));
}

#[test]
fn a_frame_larger_than_the_limit_is_refused_by_counting_not_by_trusting_headers() {
    let archive = write_archive(&bundle());
    let limits = ArchiveLimits {
        max_frame_bytes: 2,
        ..ArchiveLimits::default()
    };
    assert!(matches!(
        read_archive(&archive, limits),
        Err(ArchiveError::TooLarge(..))
    ));
}

#[test]
fn a_highly_compressed_manifest_cannot_exceed_the_total_budget() {
    let bomb = vec![b' '; 4 << 20];
    let archive = zip_of(&[("manifest.json", &bomb)]);
    let limits = ArchiveLimits {
        max_total_bytes: 1 << 20,
        ..ArchiveLimits::default()
    };
    assert!(archive.len() < 1 << 20);
    assert!(matches!(
        read_archive(&archive, limits),
        Err(ArchiveError::TooLarge(..))
    ));
}

#[test]
fn an_archive_without_its_frame_file_is_refused() {
    let archive = write_archive(&bundle());
    let mut zip = zip::ZipArchive::new(Cursor::new(&archive[..])).unwrap();
    let manifest = std::io::read_to_string(zip.by_name("manifest.json").unwrap()).unwrap();
    let only_manifest = zip_of(&[("manifest.json", manifest.as_bytes())]);
    let err = read_archive(&only_manifest, ArchiveLimits::default()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Missing(ref name) if name.starts_with("frames/")),
        "{err}"
    );
}

#[test]
fn garbage_is_not_an_archive() {
    let err = read_archive(b"not a zip", ArchiveLimits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::NotAnArchive(_)));
}

#[test]
fn a_newer_format_version_is_refused_by_number() {
    let json = br#"{"format":"visprompt-project","version":99,"project":{"id":"7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c11","name":"x","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}}"#;
    let err = read_archive(
        &zip_of(&[("manifest.json", json)]),
        ArchiveLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::Version { found: 99, .. }));
}

#[test]
fn an_invalid_value_inside_is_refused_with_its_path() {
    let json = br##"{"format":"visprompt-project","version":1,"project":{"id":"7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c11","name":"x","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"},
      "labels":[{"id":"7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c12","name":"cat","color":"#GGGGGG","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}]}"##;
    let err = read_archive(
        &zip_of(&[("manifest.json", json)]),
        ArchiveLimits::default(),
    )
    .unwrap_err();
    match err {
        ArchiveError::Invalid(DomainError::Invalid { field, .. }) => {
            assert_eq!(field, "labels[0].color")
        }
        other => panic!("unexpected {other}"),
    }
}

/// A manifest as format version 1 wrote it: an MQTT sink and a classical model, neither with the
/// fields version 2 added.
const VERSION_1_MANIFEST: &[u8] = br#"{"format":"visprompt-project","version":1,
  "project":{"id":"7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c11","name":"x","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"},
  "sinks":[{"id":"7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c13","name":"broker","active":true,
    "config":{"sink_type":"mqtt","broker_host":"broker","broker_port":1883,"topic":"t","username":null},
    "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}],
  "models":[{"id":"7c1f7a7e-2f9c-4a55-9d3e-0b3f1f7f0c14","name":"Classical","active":true,"device":"cpu",
    "config":{"algorithm":"classical","confidence_threshold":0.6,"max_detections":7},
    "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}]}"#;

#[test]
fn this_build_writes_format_version_2() {
    assert_eq!(FORMAT_VERSION, 2);
    let archive = write_archive(&bundle());
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_reader(zip.by_name("manifest.json").unwrap()).unwrap();
    assert_eq!(manifest["version"], 2);
    assert_eq!(manifest["sinks"][1]["config"]["qos"], 2);
    assert_eq!(manifest["sinks"][1]["config"]["tls"], true);
}

#[test]
fn a_version_1_archive_imports_with_what_version_1_meant_for_the_new_fields() {
    let read = read_archive(
        &zip_of(&[("manifest.json", VERSION_1_MANIFEST)]),
        ArchiveLimits::default(),
    )
    .unwrap();
    assert_eq!(
        read.sinks[0].config,
        SinkConfig::Mqtt(MqttSink {
            broker_host: "broker".into(),
            broker_port: 1883,
            topic: "t".into(),
            username: None,
            password: None,
            qos: MqttQos::AtMostOnce,
            tls: false,
        })
    );
    assert_eq!(
        read.models[0].params,
        AlgorithmParams::Classical(ClassicalParams {
            confidence_threshold: 0.6,
            max_detections: 7,
            min_area: 0.2,
        })
    );
}

#[test]
fn a_qos_level_above_2_is_refused_with_its_path() {
    let json = String::from_utf8(VERSION_1_MANIFEST.to_vec())
        .unwrap()
        .replace(r#""version":1"#, r#""version":2"#)
        .replace(
            r#""username":null"#,
            r#""username":null,"qos":3,"tls":true"#,
        );
    let err = read_archive(
        &zip_of(&[("manifest.json", json.as_bytes())]),
        ArchiveLimits::default(),
    )
    .unwrap_err();
    match err {
        ArchiveError::Invalid(DomainError::Invalid { field, .. }) => {
            assert_eq!(field, "sinks[0].config.qos")
        }
        other => panic!("unexpected {other}"),
    }
}
