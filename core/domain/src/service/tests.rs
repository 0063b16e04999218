//! Unit tests of the services against a mocked repository: what each use case checks itself,
//! and what it asks of the store.

use std::sync::Arc;

use crate::entity::*;
use crate::error::{DomainError, Entity};
use crate::id::*;
use crate::repository::MockRepository;
use crate::service::{MediaRoots, NewSource, Service};
use crate::value::*;

fn project(id: ProjectId) -> Project {
    let at = chrono::Utc::now();
    Project {
        id,
        name: ProjectName::parse("p").unwrap(),
        active: false,
        created_at: at,
        updated_at: at,
    }
}

fn label(project_id: ProjectId, color: Color) -> Label {
    let at = chrono::Utc::now();
    Label {
        id: LabelId::new(),
        project_id,
        name: LabelName::parse("cat").unwrap(),
        color,
        created_at: at,
        updated_at: at,
    }
}

fn frame(project_id: ProjectId, id: FrameId) -> Frame {
    Frame {
        id,
        project_id,
        format: ImageFormat::Png,
        size: FrameSize::new(64, 48).unwrap(),
        byte_len: 10,
        created_at: chrono::Utc::now(),
    }
}

fn service(repo: MockRepository) -> Service {
    Service::new(
        Arc::new(repo),
        MediaRoots::new(vec!["/srv/media".into()]).unwrap(),
    )
}

/// Every project the service asks for exists.
fn with_project(repo: &mut MockRepository) {
    repo.expect_get_project()
        .returning(|id| Ok(Some(project(id))));
}

#[tokio::test]
async fn a_new_project_is_stored_with_one_model_per_algorithm_and_the_classical_one_active() {
    let mut repo = MockRepository::new();
    repo.expect_insert_bundle()
        .withf(|bundle| {
            let algorithms: Vec<Algorithm> =
                bundle.models.iter().map(|m| m.params.algorithm()).collect();
            let active: Vec<Algorithm> = bundle
                .models
                .iter()
                .filter(|m| m.active)
                .map(|m| m.params.algorithm())
                .collect();
            algorithms == Algorithm::ALL.to_vec()
                && active == vec![Algorithm::Classical]
                && bundle
                    .models
                    .iter()
                    .all(|m| m.project_id == bundle.project.id)
                && bundle.project.active
        })
        .times(1)
        .returning(|_| Ok(()));
    let created = service(repo)
        .create_project(ProjectName::parse("cats").unwrap(), true)
        .await;
    assert_eq!(created.unwrap().name.as_str(), "cats");
}

#[tokio::test]
async fn a_name_conflict_from_the_store_reaches_the_caller_unchanged() {
    let mut repo = MockRepository::new();
    repo.expect_insert_bundle()
        .returning(|_| Err(DomainError::conflict(Some("name"), "name taken")));
    let err = service(repo)
        .create_project(ProjectName::parse("x").unwrap(), false)
        .await;
    assert!(matches!(err, Err(DomainError::Conflict { field: Some(f), .. }) if f == "name"));
}

#[tokio::test]
async fn a_label_without_colour_gets_the_first_palette_colour_not_taken() {
    let pid = ProjectId::new();
    let mut repo = MockRepository::new();
    with_project(&mut repo);
    repo.expect_list_labels().returning(move |pid, page| {
        Ok(crate::Paged {
            items: vec![label(pid, Color::PALETTE[0])],
            total: 1,
            page,
        })
    });
    repo.expect_insert_label()
        .withf(|l| l.color == Color::PALETTE[1])
        .times(1)
        .returning(|_| Ok(()));
    let label = service(repo)
        .create_label(pid, LabelName::parse("dog").unwrap(), None)
        .await;
    assert_eq!(label.unwrap().color, Color::PALETTE[1]);
}

#[tokio::test]
async fn a_label_of_an_unknown_project_is_not_found_and_nothing_is_stored() {
    let mut repo = MockRepository::new();
    repo.expect_get_project().returning(|_| Ok(None));
    repo.expect_insert_label().never();
    let err = service(repo)
        .create_label(ProjectId::new(), LabelName::parse("dog").unwrap(), None)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DomainError::NotFound {
            entity: Entity::Project,
            ..
        }
    ));
}

#[tokio::test]
async fn a_prompt_naming_a_label_of_another_project_is_refused_before_storing() {
    let pid = ProjectId::new();
    let mut repo = MockRepository::new();
    with_project(&mut repo);
    repo.expect_get_label().returning(|_, _| Ok(None));
    repo.expect_insert_prompt().never();
    let content = PromptContent::Text {
        phrases: vec![TextPhrase {
            label_id: LabelId::new(),
            text: Phrase::parse("a cat").unwrap(),
        }],
    };
    let err = service(repo).create_prompt(pid, content).await.unwrap_err();
    assert!(matches!(
        err,
        DomainError::NotFound {
            entity: Entity::Label,
            ..
        }
    ));
}

#[tokio::test]
async fn a_visual_prompt_whose_shape_leaves_the_frame_is_refused_with_the_field_path() {
    let pid = ProjectId::new();
    let frame_id = FrameId::new();
    let mut repo = MockRepository::new();
    with_project(&mut repo);
    repo.expect_get_label()
        .returning(|pid, _| Ok(Some(label(pid, Color::PALETTE[0]))));
    repo.expect_get_frame()
        .returning(|pid, id| Ok(Some(frame(pid, id))));
    repo.expect_insert_prompt().never();
    let content = PromptContent::Visual {
        frame_id,
        annotations: vec![
            Annotation {
                label_id: LabelId::new(),
                shape: Shape::Rectangle {
                    min: Point { x: 1.0, y: 1.0 },
                    max: Point { x: 9.0, y: 9.0 },
                },
            },
            Annotation {
                label_id: LabelId::new(),
                shape: Shape::Rectangle {
                    min: Point { x: 1.0, y: 1.0 },
                    max: Point { x: 65.0, y: 9.0 },
                },
            },
        ],
    };
    let err = service(repo).create_prompt(pid, content).await.unwrap_err();
    match err {
        DomainError::Invalid { field, .. } => assert_eq!(field, "annotations[1].shape.max"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_prompt_cannot_change_kind() {
    let pid = ProjectId::new();
    let mut repo = MockRepository::new();
    with_project(&mut repo);
    repo.expect_get_prompt().returning(|pid, id| {
        Ok(Some(Prompt {
            id,
            project_id: pid,
            content: PromptContent::Visual {
                frame_id: FrameId::new(),
                annotations: vec![],
            },
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }))
    });
    repo.expect_update_prompt().never();
    let content = PromptContent::Text {
        phrases: vec![TextPhrase {
            label_id: LabelId::new(),
            text: Phrase::parse("x").unwrap(),
        }],
    };
    let err = service(repo)
        .update_prompt(pid, PromptId::new(), content)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "type"));
}

#[tokio::test]
async fn a_video_source_outside_the_media_roots_is_refused_before_storing() {
    let mut repo = MockRepository::new();
    repo.expect_insert_source().never();
    let new = NewSource {
        name: None,
        active: true,
        config: SourceConfig::VideoFile {
            looping: true,
            video_path: "/etc/shadow".into(),
        },
    };
    let err = service(repo)
        .create_source(ProjectId::new(), new)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "config.video_path"));
}

#[tokio::test]
async fn a_source_without_a_name_is_named_after_its_kind() {
    let mut repo = MockRepository::new();
    repo.expect_insert_source().times(1).returning(|_| Ok(()));
    let new = NewSource {
        name: None,
        active: false,
        config: SourceConfig::Synthetic,
    };
    let source = service(repo)
        .create_source(ProjectId::new(), new)
        .await
        .unwrap();
    assert_eq!(source.name.as_str(), "Synthetic scene");
}

#[tokio::test]
async fn a_source_cannot_change_kind() {
    let pid = ProjectId::new();
    let mut repo = MockRepository::new();
    with_project(&mut repo);
    repo.expect_get_source().returning(|pid, id| {
        Ok(Some(Source {
            id,
            project_id: pid,
            name: DisplayName::parse("s").unwrap(),
            active: false,
            config: SourceConfig::Synthetic,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }))
    });
    repo.expect_update_source().never();
    let new = NewSource {
        name: None,
        active: false,
        config: SourceConfig::Rtsp {
            url: "rtsp://cam/1".into(),
        },
    };
    let err = service(repo)
        .replace_source(pid, SourceId::new(), new)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "config.source_type"));
}

#[tokio::test]
async fn deleting_an_unknown_prompt_is_not_found() {
    let pid = ProjectId::new();
    let mut repo = MockRepository::new();
    with_project(&mut repo);
    repo.expect_delete_prompt().returning(|_, _| Ok(false));
    let err = service(repo)
        .delete_prompt(pid, PromptId::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DomainError::NotFound {
            entity: Entity::Prompt,
            ..
        }
    ));
}

#[tokio::test]
async fn a_store_failure_is_reported_as_storage_not_as_not_found() {
    let mut repo = MockRepository::new();
    repo.expect_get_project()
        .returning(|_| Err(DomainError::storage("disk on fire")));
    let err = service(repo)
        .get_project(ProjectId::new())
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Storage(_)));
}

#[tokio::test]
async fn import_gives_every_entity_a_fresh_id_and_rewires_references() {
    let old_pid = ProjectId::new();
    let old_label = label(old_pid, Color::PALETTE[0]);
    let old_frame = frame(old_pid, FrameId::new());
    let prompt = Prompt {
        id: PromptId::new(),
        project_id: old_pid,
        content: PromptContent::Visual {
            frame_id: old_frame.id,
            annotations: vec![Annotation {
                label_id: old_label.id,
                shape: Shape::Points(vec![(Point { x: 3.0, y: 4.0 }, true)]),
            }],
        },
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let bundle = crate::ProjectBundle {
        project: project(old_pid),
        labels: vec![old_label.clone()],
        frames: vec![crate::StoredFrame {
            frame: old_frame.clone(),
            bytes: vec![1, 2, 3],
        }],
        prompts: vec![prompt],
        sources: vec![],
        sinks: vec![],
        models: vec![],
    };
    let mut repo = MockRepository::new();
    repo.expect_insert_bundle()
        .withf(move |b| {
            let pid = b.project.id;
            let PromptContent::Visual {
                frame_id,
                annotations,
            } = &b.prompts[0].content
            else {
                return false;
            };
            pid != old_pid
                && !b.project.active
                && b.labels[0].id != old_label.id
                && b.labels[0].project_id == pid
                && b.frames[0].frame.id != old_frame.id
                && *frame_id == b.frames[0].frame.id
                && annotations[0].label_id == b.labels[0].id
                && b.prompts[0].project_id == pid
        })
        .times(1)
        .returning(|_| Ok(()));
    let imported = service(repo)
        .import_project(bundle, Some(ProjectName::parse("copy").unwrap()))
        .await
        .unwrap();
    assert_eq!(imported.name.as_str(), "copy");
}

#[tokio::test]
async fn import_refuses_a_prompt_whose_shape_leaves_its_frame() {
    let pid = ProjectId::new();
    let l = label(pid, Color::PALETTE[0]);
    let f = frame(pid, FrameId::new());
    let prompt = Prompt {
        id: PromptId::new(),
        project_id: pid,
        content: PromptContent::Visual {
            frame_id: f.id,
            annotations: vec![Annotation {
                label_id: l.id,
                shape: Shape::Points(vec![(Point { x: 640.0, y: 4.0 }, true)]),
            }],
        },
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let bundle = crate::ProjectBundle {
        project: project(pid),
        labels: vec![l],
        frames: vec![crate::StoredFrame {
            frame: f,
            bytes: vec![],
        }],
        prompts: vec![prompt],
        sources: vec![],
        sinks: vec![],
        models: vec![],
    };
    let mut repo = MockRepository::new();
    repo.expect_insert_bundle().never();
    let err = service(repo)
        .import_project(bundle, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DomainError::Invalid { ref field, .. } if field.starts_with("prompts[0]"))
    );
}
