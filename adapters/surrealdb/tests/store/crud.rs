//! Create, read, update, delete and list every entity; pages and totals; entities of another
//! project are absent.

use visprompt_domain::*;

use crate::helpers::*;

async fn a_bundle_round_trips_with_everything_in_it(engine: Engine) {
    // Arrange
    let store = open(engine).await;
    let bundle = full_bundle("everything", true);

    // Act
    store.insert_bundle(&bundle).await.unwrap();
    let loaded = store.load_bundle(bundle.project.id).await.unwrap().unwrap();

    // Assert
    assert_eq!(loaded.project, bundle.project);
    assert_eq!(loaded.labels, bundle.labels);
    assert_eq!(loaded.frames, bundle.frames);
    assert_eq!(loaded.prompts, bundle.prompts);
    assert_eq!(loaded.sources, bundle.sources);
    assert_eq!(loaded.sinks, bundle.sinks);
    assert_eq!(loaded.models, bundle.models);
    assert_eq!(
        store.active_project().await.unwrap(),
        Some(bundle.project.clone())
    );
    let active_source = bundle.sources.iter().find(|s| s.active).cloned();
    let active_model = bundle.models.iter().find(|m| m.active).cloned();
    let pid = bundle.project.id;
    assert_eq!(
        store
            .get_source(pid, active_source.as_ref().unwrap().id)
            .await
            .unwrap(),
        active_source
    );
    assert_eq!(store.active_model(pid).await.unwrap(), active_model);
    assert_eq!(store.load_bundle(ProjectId::new()).await.unwrap(), None);
}

async fn projects_are_listed_in_creation_order_with_totals(engine: Engine) {
    // Arrange: created out of order, two at the same instant (then ordered by id).
    let store = open(engine).await;
    let mut projects = vec![
        project("c", 30),
        project("a", 10),
        project("b1", 20),
        project("b2", 20),
    ];
    for p in &projects {
        store.insert_bundle(&bundle(p)).await.unwrap();
    }
    projects.sort_by_key(|p| (p.created_at, p.id.as_uuid()));

    // Act
    let all = store.list_projects(Page::all()).await.unwrap();
    let first = store.list_projects(Page::new(0, 3).unwrap()).await.unwrap();
    let second = store.list_projects(Page::new(3, 3).unwrap()).await.unwrap();
    let beyond = store
        .list_projects(Page::new(10, 3).unwrap())
        .await
        .unwrap();

    // Assert
    assert_eq!(all.items, projects);
    assert_eq!(all.total, 4);
    assert_eq!(first.items, projects[..3]);
    assert_eq!((first.total, first.page), (4, Page::new(0, 3).unwrap()));
    assert_eq!(second.items, projects[3..]);
    assert_eq!(second.total, 4);
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 4);
}

async fn a_project_is_read_renamed_activated_and_deleted(engine: Engine) {
    let store = open(engine).await;
    let mut p = new_project(&store, "first").await;
    let other = new_project(&store, "second").await;
    assert_eq!(store.get_project(p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.get_project(ProjectId::new()).await.unwrap(), None);
    assert_eq!(store.active_project().await.unwrap(), None);

    p.name = ProjectName::parse("renamed").unwrap();
    p.updated_at = at(100);
    store.update_project(&p).await.unwrap();
    assert_eq!(store.get_project(p.id).await.unwrap(), Some(p.clone()));

    store.set_active_project(Some(p.id)).await.unwrap();
    p.active = true;
    assert_eq!(store.get_project(p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.active_project().await.unwrap(), Some(p.clone()));
    assert!(!store.get_project(other.id).await.unwrap().unwrap().active);

    store.set_active_project(Some(other.id)).await.unwrap();
    assert!(!store.get_project(p.id).await.unwrap().unwrap().active);
    assert_eq!(store.active_project().await.unwrap().unwrap().id, other.id);

    store.set_active_project(None).await.unwrap();
    assert_eq!(store.active_project().await.unwrap(), None);
    assert_not_found(
        store.set_active_project(Some(ProjectId::new())).await,
        Entity::Project,
    );

    let mut unknown = project("ghost", 0);
    unknown.updated_at = at(5);
    assert_not_found(store.update_project(&unknown).await, Entity::Project);

    assert!(store.delete_project(p.id).await.unwrap());
    assert!(!store.delete_project(p.id).await.unwrap());
    assert_eq!(store.get_project(p.id).await.unwrap(), None);
    assert_eq!(store.list_projects(Page::all()).await.unwrap().total, 1);
}

async fn timestamps_round_trip_to_the_microsecond(engine: Engine) {
    let store = open(engine).await;
    let now = chrono::Utc::now();
    let mut p = project("now", 0);
    p.created_at = now;
    p.updated_at = now + chrono::Duration::nanoseconds(1_234_567);
    store.insert_bundle(&bundle(&p)).await.unwrap();
    let read = store.get_project(p.id).await.unwrap().unwrap();
    assert_eq!(
        read.created_at.timestamp_micros(),
        p.created_at.timestamp_micros()
    );
    assert_eq!(
        read.updated_at.timestamp_micros(),
        p.updated_at.timestamp_micros()
    );
}

async fn labels_are_stored_updated_listed_and_deleted(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "labels").await;
    let other = new_project(&store, "other").await;
    let mut labels: Vec<Label> = (0..25)
        .map(|i| label(p.id, &format!("label {i:02}"), 25 - i))
        .collect();
    for l in &labels {
        store.insert_label(l).await.unwrap();
    }
    store
        .insert_label(&label(other.id, "label 00", 0))
        .await
        .unwrap();
    labels.sort_by_key(|l| l.created_at);

    let page = store
        .list_labels(p.id, Page::new(20, 10).unwrap())
        .await
        .unwrap();
    assert_eq!((page.items.as_slice(), page.total), (&labels[20..], 25));
    let all = store.list_labels(p.id, Page::all()).await.unwrap();
    assert_eq!(all.items, labels);
    assert_eq!(
        store
            .list_labels(ProjectId::new(), Page::default())
            .await
            .unwrap()
            .total,
        0
    );

    let mut changed = labels[0].clone();
    changed.name = LabelName::parse("renamed").unwrap();
    changed.color = Color::parse("#010203").unwrap();
    changed.updated_at = at(1000);
    store.update_label(&changed).await.unwrap();
    assert_eq!(
        store.get_label(p.id, changed.id).await.unwrap(),
        Some(changed.clone())
    );
    // Another project's label is absent, through every method.
    assert_eq!(store.get_label(other.id, changed.id).await.unwrap(), None);
    assert!(!store.delete_label(other.id, changed.id).await.unwrap());
    let mut moved = changed.clone();
    moved.project_id = other.id;
    assert_not_found(store.update_label(&moved).await, Entity::Label);
    assert_not_found(
        store.insert_label(&label(ProjectId::new(), "x", 0)).await,
        Entity::Project,
    );

    assert!(store.delete_label(p.id, changed.id).await.unwrap());
    assert!(!store.delete_label(p.id, changed.id).await.unwrap());
    assert_eq!(store.get_label(p.id, changed.id).await.unwrap(), None);
    assert_eq!(
        store
            .list_labels(p.id, Page::default())
            .await
            .unwrap()
            .total,
        24
    );
}

async fn frames_keep_their_bytes_apart_from_their_description(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "frames").await;
    let other = new_project(&store, "other").await;
    let frames: Vec<StoredFrame> = (0..3).map(|i| frame(p.id, i)).collect();
    for f in &frames {
        store.insert_frame(f).await.unwrap();
    }
    let mut jpeg = frame(p.id, 3);
    jpeg.frame.format = ImageFormat::Jpeg;
    jpeg.frame.size = FrameSize::new(FrameSize::MAX_SIDE, 1).unwrap();
    jpeg.bytes = (0..=255u8).cycle().take(300_000).collect();
    jpeg.frame.byte_len = jpeg.bytes.len() as u64;
    store.insert_frame(&jpeg).await.unwrap();

    let f = &frames[1];
    assert_eq!(
        store.get_frame(p.id, f.frame.id).await.unwrap(),
        Some(f.frame.clone())
    );
    assert_eq!(
        store.get_frame_bytes(p.id, f.frame.id).await.unwrap(),
        Some(f.bytes.clone())
    );
    assert_eq!(
        store.get_frame(p.id, jpeg.frame.id).await.unwrap(),
        Some(jpeg.frame.clone())
    );
    assert_eq!(
        store.get_frame_bytes(p.id, jpeg.frame.id).await.unwrap(),
        Some(jpeg.bytes.clone())
    );
    assert_eq!(store.get_frame(other.id, f.frame.id).await.unwrap(), None);
    assert_eq!(
        store.get_frame_bytes(other.id, f.frame.id).await.unwrap(),
        None
    );

    let listed = store
        .list_frames(p.id, Page::new(1, 2).unwrap())
        .await
        .unwrap();
    assert_eq!(
        listed.items,
        vec![frames[1].frame.clone(), frames[2].frame.clone()]
    );
    assert_eq!(listed.total, 4);
    assert_not_found(
        store.insert_frame(&frame(ProjectId::new(), 0)).await,
        Entity::Project,
    );

    assert!(!store.delete_frame(other.id, f.frame.id).await.unwrap());
    assert!(store.delete_frame(p.id, f.frame.id).await.unwrap());
    assert!(!store.delete_frame(p.id, f.frame.id).await.unwrap());
    assert_eq!(store.get_frame(p.id, f.frame.id).await.unwrap(), None);
    assert_eq!(store.get_frame_bytes(p.id, f.frame.id).await.unwrap(), None);
    assert_eq!(store.list_frames(p.id, Page::all()).await.unwrap().total, 3);
}

async fn visual_and_text_prompts_are_stored_updated_and_deleted(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "prompts").await;
    let labels: Vec<Label> = (0..3).map(|i| label(p.id, &format!("l{i}"), i)).collect();
    for l in &labels {
        store.insert_label(l).await.unwrap();
    }
    let ids: Vec<LabelId> = labels.iter().map(|l| l.id).collect();
    let (f1, f2) = (frame(p.id, 0), frame(p.id, 1));
    store.insert_frame(&f1).await.unwrap();
    store.insert_frame(&f2).await.unwrap();

    let visual = visual_prompt(p.id, f1.frame.id, &ids, 1);
    let text = text_prompt(p.id, &ids[..2], 0);
    // Text prompts have no frame: any number of them fit the one-prompt-per-frame index.
    let more_text = text_prompt(p.id, &ids[2..], 2);
    store.insert_prompt(&visual).await.unwrap();
    store.insert_prompt(&text).await.unwrap();
    store.insert_prompt(&more_text).await.unwrap();
    assert_eq!(
        store.get_prompt(p.id, visual.id).await.unwrap(),
        Some(visual.clone())
    );
    assert_eq!(
        store.get_prompt(p.id, text.id).await.unwrap(),
        Some(text.clone())
    );
    let listed = store.list_prompts(p.id, Page::all()).await.unwrap();
    assert_eq!(
        (listed.items, listed.total),
        (vec![text.clone(), visual.clone(), more_text], 3)
    );

    // Same frame, different annotations: the frame stays.
    let mut changed = visual.clone();
    if let PromptContent::Visual { annotations, .. } = &mut changed.content {
        annotations.truncate(1);
        annotations[0].label_id = ids[2];
    }
    changed.updated_at = at(50);
    store.update_prompt(&changed).await.unwrap();
    assert_eq!(
        store.get_prompt(p.id, visual.id).await.unwrap(),
        Some(changed.clone())
    );
    assert!(store.get_frame(p.id, f1.frame.id).await.unwrap().is_some());

    let mut text2 = text.clone();
    text2.content = PromptContent::Text {
        phrases: vec![TextPhrase {
            label_id: ids[2],
            text: Phrase::parse("only this").unwrap(),
        }],
    };
    store.update_prompt(&text2).await.unwrap();
    assert_eq!(store.get_prompt(p.id, text.id).await.unwrap(), Some(text2));

    let unknown = text_prompt(p.id, &ids, 0);
    assert_not_found(store.update_prompt(&unknown).await, Entity::Prompt);
    assert!(store.delete_prompt(p.id, text.id).await.unwrap());
    assert!(!store.delete_prompt(p.id, text.id).await.unwrap());
    assert_eq!(
        store.list_prompts(p.id, Page::all()).await.unwrap().total,
        2
    );
}

async fn prompts_refer_only_to_labels_and_frames_of_their_project(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "mine").await;
    let other = new_project(&store, "theirs").await;
    let mine = label(p.id, "mine", 0);
    let theirs = label(other.id, "theirs", 0);
    store.insert_label(&mine).await.unwrap();
    store.insert_label(&theirs).await.unwrap();
    let my_frame = frame(p.id, 0);
    let their_frame = frame(other.id, 0);
    store.insert_frame(&my_frame).await.unwrap();
    store.insert_frame(&their_frame).await.unwrap();

    let result = store
        .insert_prompt(&text_prompt(p.id, &[mine.id, theirs.id], 0))
        .await;
    match result {
        Err(DomainError::NotFound {
            entity: Entity::Label,
            id,
        }) => {
            assert_eq!(id, theirs.id.to_string())
        }
        other => panic!("expected the foreign label not found, got {other:?}"),
    }
    assert_not_found(
        store
            .insert_prompt(&text_prompt(p.id, &[LabelId::new()], 0))
            .await,
        Entity::Label,
    );
    assert_not_found(
        store
            .insert_prompt(&visual_prompt(p.id, their_frame.frame.id, &[mine.id], 0))
            .await,
        Entity::Frame,
    );
    assert_not_found(
        store
            .insert_prompt(&text_prompt(ProjectId::new(), &[mine.id], 0))
            .await,
        Entity::Project,
    );
    assert_eq!(
        store.list_prompts(p.id, Page::all()).await.unwrap().total,
        0
    );

    // A frame serves one prompt.
    let first = visual_prompt(p.id, my_frame.frame.id, &[mine.id], 0);
    store.insert_prompt(&first).await.unwrap();
    let second = visual_prompt(p.id, my_frame.frame.id, &[mine.id], 1);
    assert_conflict(store.insert_prompt(&second).await, Some("frame_id"));
    assert_eq!(store.get_prompt(other.id, first.id).await.unwrap(), None);
    assert!(!store.delete_prompt(other.id, first.id).await.unwrap());
}

async fn sources_are_stored_with_one_active_per_project(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "sources").await;
    let mut sources = sources(p.id);
    sources[1].active = true;
    sources[4].active = true; // Inserted later: takes the slot over from sources[1].
    for s in &sources {
        store.insert_source(s).await.unwrap();
    }
    sources[1].active = false;

    let listed = store.list_sources(p.id, Page::all()).await.unwrap();
    assert_eq!(
        (listed.items.as_slice(), listed.total),
        (sources.as_slice(), sources.len() as u64)
    );
    assert_eq!(
        store.get_source(p.id, sources[4].id).await.unwrap(),
        Some(sources[4].clone())
    );

    // Updating another source to active moves the slot.
    let mut rtsp = sources[3].clone();
    rtsp.active = true;
    rtsp.name = DisplayName::parse("door").unwrap();
    rtsp.config = SourceConfig::Rtsp {
        url: "rtsps://cam/2".into(),
    };
    rtsp.updated_at = at(99);
    store.update_source(&rtsp).await.unwrap();
    assert_eq!(
        store.get_source(p.id, rtsp.id).await.unwrap(),
        Some(rtsp.clone())
    );
    assert!(
        !store
            .get_source(p.id, sources[4].id)
            .await
            .unwrap()
            .unwrap()
            .active
    );

    // Deactivating the active one leaves none active.
    rtsp.active = false;
    store.update_source(&rtsp).await.unwrap();
    let listed = store.list_sources(p.id, Page::all()).await.unwrap();
    assert!(listed.items.iter().all(|s| !s.active));

    // Deactivating one that is not active leaves the active one alone.
    let mut usb = sources[0].clone();
    usb.active = true;
    store.update_source(&usb).await.unwrap();
    let mut video = sources[1].clone();
    video.active = false;
    store.update_source(&video).await.unwrap();
    assert!(
        store
            .get_source(p.id, usb.id)
            .await
            .unwrap()
            .unwrap()
            .active
    );

    let mut ghost = sources[0].clone();
    ghost.id = SourceId::new();
    assert_not_found(store.update_source(&ghost).await, Entity::Source);
    assert_not_found(
        store
            .insert_source(&source(ProjectId::new(), SourceConfig::Synthetic, 0))
            .await,
        Entity::Project,
    );
    assert!(store.delete_source(p.id, usb.id).await.unwrap());
    assert!(!store.delete_source(p.id, usb.id).await.unwrap());
    let listed = store
        .list_sources(p.id, Page::new(0, 2).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (listed.items.len(), listed.total),
        (2, sources.len() as u64 - 1)
    );
    assert!(listed.items.iter().all(|s| !s.active));
}

async fn sinks_are_active_independently(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "sinks").await;
    let mut sinks = sinks(p.id);
    sinks[0].active = true;
    sinks[2].active = true;
    for s in &sinks {
        store.insert_sink(s).await.unwrap();
    }
    let listed = store.list_sinks(p.id, Page::all()).await.unwrap();
    assert_eq!(
        (listed.items.as_slice(), listed.total),
        (sinks.as_slice(), 4)
    );

    let mut mqtt = sinks[1].clone();
    mqtt.active = true;
    mqtt.config = SinkConfig::Mqtt(MqttSink {
        broker_host: "other".into(),
        broker_port: 1,
        topic: "t".into(),
        username: Some("u".into()),
        password: None,
        qos: MqttQos::ExactlyOnce,
        tls: false,
    });
    mqtt.updated_at = at(10);
    store.update_sink(&mqtt).await.unwrap();
    assert_eq!(
        store.get_sink(p.id, mqtt.id).await.unwrap(),
        Some(mqtt.clone())
    );
    let active = store
        .list_sinks(p.id, Page::all())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|s| s.active)
        .count();
    assert_eq!(active, 3);

    let mut ghost = mqtt.clone();
    ghost.id = SinkId::new();
    assert_not_found(store.update_sink(&ghost).await, Entity::Sink);
    assert_eq!(
        store.get_sink(ProjectId::new(), mqtt.id).await.unwrap(),
        None
    );
    assert!(store.delete_sink(p.id, mqtt.id).await.unwrap());
    assert!(!store.delete_sink(p.id, mqtt.id).await.unwrap());
    assert_eq!(
        store.list_sinks(p.id, Page::default()).await.unwrap().total,
        3
    );
}

async fn model_configurations_are_stored_with_one_active_per_project(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "models").await;
    let mut models = models(p.id);
    models[0].active = true;
    for m in &models {
        store.insert_model(m).await.unwrap();
    }
    assert_eq!(
        store.list_models(p.id, Page::all()).await.unwrap().items,
        models
    );
    assert_eq!(
        store.active_model(p.id).await.unwrap(),
        Some(models[0].clone())
    );

    let mut soft = models[2].clone();
    soft.active = true;
    soft.device = Device::Cuda(3);
    soft.params = AlgorithmParams::Matcher(MatcherParams::default());
    soft.name = DisplayName::parse("now a matcher").unwrap();
    soft.updated_at = at(77);
    store.update_model(&soft).await.unwrap();
    assert_eq!(
        store.get_model(p.id, soft.id).await.unwrap(),
        Some(soft.clone())
    );
    assert_eq!(store.active_model(p.id).await.unwrap(), Some(soft.clone()));
    assert!(
        !store
            .get_model(p.id, models[0].id)
            .await
            .unwrap()
            .unwrap()
            .active
    );

    assert_conflict(
        store.insert_model(&model(p.id, "Classical", 9)).await,
        Some("name"),
    );
    let mut clash = soft.clone();
    clash.name = DisplayName::parse("PerDINO").unwrap();
    assert_conflict(store.update_model(&clash).await, Some("name"));
    // The same name is fine in another project.
    let other = new_project(&store, "other").await;
    store
        .insert_model(&model(other.id, "Classical", 0))
        .await
        .unwrap();
    assert_eq!(store.active_model(other.id).await.unwrap(), None);

    assert!(store.delete_model(p.id, soft.id).await.unwrap());
    assert_eq!(store.active_model(p.id).await.unwrap(), None);
    assert!(!store.delete_model(p.id, soft.id).await.unwrap());
    assert_eq!(store.list_models(p.id, Page::all()).await.unwrap().total, 3);
}

async fn names_are_unique_where_the_domain_says(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "taken").await;
    let result = store.insert_bundle(&bundle(&project("taken", 1))).await;
    match result {
        Err(DomainError::Conflict { field, message }) => {
            assert_eq!(field.as_deref(), Some("name"));
            assert_eq!(message, "a project named \"taken\" already exists");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut renamed = new_project(&store, "free").await;
    renamed.name = ProjectName::parse("taken").unwrap();
    assert_conflict(store.update_project(&renamed).await, Some("name"));

    let cat = label(p.id, "cat", 0);
    store.insert_label(&cat).await.unwrap();
    assert_conflict(
        store.insert_label(&label(p.id, "cat", 1)).await,
        Some("name"),
    );
    let mut dog = label(p.id, "dog", 2);
    store.insert_label(&dog).await.unwrap();
    dog.name = LabelName::parse("cat").unwrap();
    assert_conflict(store.update_label(&dog).await, Some("name"));
    // Label names are per project.
    store
        .insert_label(&label(renamed.id, "cat", 0))
        .await
        .unwrap();
    assert_eq!(store.list_labels(p.id, Page::all()).await.unwrap().total, 2);
}

crate::helpers::on_every_engine!(
    a_bundle_round_trips_with_everything_in_it,
    projects_are_listed_in_creation_order_with_totals,
    a_project_is_read_renamed_activated_and_deleted,
    timestamps_round_trip_to_the_microsecond,
    labels_are_stored_updated_listed_and_deleted,
    frames_keep_their_bytes_apart_from_their_description,
    visual_and_text_prompts_are_stored_updated_and_deleted,
    prompts_refer_only_to_labels_and_frames_of_their_project,
    sources_are_stored_with_one_active_per_project,
    sinks_are_active_independently,
    model_configurations_are_stored_with_one_active_per_project,
    names_are_unique_where_the_domain_says,
);
