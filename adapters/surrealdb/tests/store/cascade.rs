//! Deleting removes what depends on the deleted thing, in one transaction, or refuses and changes
//! nothing; a write that fails half-way leaves nothing behind.

use visprompt_domain::*;

use crate::helpers::*;

async fn deleting_a_project_removes_everything_it_owns(engine: Engine) {
    // Arrange
    let store = open(engine).await;
    let doomed = full_bundle("doomed", true);
    let kept = full_bundle("kept", false);
    store.insert_bundle(&doomed).await.unwrap();
    store.insert_bundle(&kept).await.unwrap();
    let pid = doomed.project.id;

    // Act
    assert!(store.delete_project(pid).await.unwrap());

    // Assert
    assert_eq!(store.get_project(pid).await.unwrap(), None);
    assert_eq!(store.load_bundle(pid).await.unwrap(), None);
    assert_eq!(store.active_project().await.unwrap(), None);
    let all = Page::all();
    assert_eq!(store.list_labels(pid, all).await.unwrap().total, 0);
    assert_eq!(store.list_frames(pid, all).await.unwrap().total, 0);
    assert_eq!(store.list_prompts(pid, all).await.unwrap().total, 0);
    assert_eq!(store.list_sources(pid, all).await.unwrap().total, 0);
    assert_eq!(store.list_sinks(pid, all).await.unwrap().total, 0);
    assert_eq!(store.list_models(pid, all).await.unwrap().total, 0);
    assert_eq!(store.active_model(pid).await.unwrap(), None);
    for f in &doomed.frames {
        assert_eq!(store.get_frame_bytes(pid, f.frame.id).await.unwrap(), None);
    }
    // The other project is untouched.
    assert_eq!(
        store.load_bundle(kept.project.id).await.unwrap(),
        Some(kept.clone())
    );
    assert_eq!(
        store.list_projects(all).await.unwrap().items,
        vec![kept.project]
    );
}

async fn deleting_an_inactive_project_keeps_the_active_one(engine: Engine) {
    let store = open(engine).await;
    let active = new_project(&store, "active").await;
    let other = new_project(&store, "other").await;
    store.set_active_project(Some(active.id)).await.unwrap();
    assert!(store.delete_project(other.id).await.unwrap());
    assert_eq!(store.active_project().await.unwrap().unwrap().id, active.id);
}

async fn deleting_a_prompt_deletes_its_frame(engine: Engine) {
    let store = open(engine).await;
    let bundle = full_bundle("prompts", false);
    store.insert_bundle(&bundle).await.unwrap();
    let pid = bundle.project.id;
    let (visual, text) = (&bundle.prompts[0], &bundle.prompts[1]);
    let used = bundle.frames[0].frame.id;
    let unused = bundle.frames[1].frame.id;

    assert!(store.delete_prompt(pid, visual.id).await.unwrap());
    assert_eq!(store.get_frame(pid, used).await.unwrap(), None);
    assert_eq!(store.get_frame_bytes(pid, used).await.unwrap(), None);
    assert!(store.get_frame(pid, unused).await.unwrap().is_some());

    assert!(store.delete_prompt(pid, text.id).await.unwrap());
    assert_eq!(store.list_frames(pid, Page::all()).await.unwrap().total, 1);
    assert_eq!(store.list_labels(pid, Page::all()).await.unwrap().total, 3);
}

async fn moving_a_prompt_to_another_frame_deletes_the_old_one(engine: Engine) {
    let store = open(engine).await;
    let bundle = full_bundle("moving", false);
    store.insert_bundle(&bundle).await.unwrap();
    let pid = bundle.project.id;
    let (old, new) = (bundle.frames[0].frame.id, bundle.frames[1].frame.id);
    let mut prompt = bundle.prompts[0].clone();
    if let PromptContent::Visual { frame_id, .. } = &mut prompt.content {
        *frame_id = new;
    }
    prompt.updated_at = at(60);

    store.update_prompt(&prompt).await.unwrap();

    assert_eq!(
        store.get_prompt(pid, prompt.id).await.unwrap(),
        Some(prompt)
    );
    assert_eq!(store.get_frame(pid, old).await.unwrap(), None);
    assert_eq!(store.get_frame_bytes(pid, old).await.unwrap(), None);
    assert!(store.get_frame(pid, new).await.unwrap().is_some());
}

async fn a_label_in_use_cannot_be_deleted_and_nothing_changes(engine: Engine) {
    let store = open(engine).await;
    let bundle = full_bundle("in use", false);
    store.insert_bundle(&bundle).await.unwrap();
    let pid = bundle.project.id;
    // Label 0 is used by the visual prompt only; label 2 by both prompts.
    let label = &bundle.labels[0];

    assert_conflict(store.delete_label(pid, label.id).await, None);
    assert_conflict(store.delete_label(pid, bundle.labels[2].id).await, None);
    assert_eq!(store.load_bundle(pid).await.unwrap(), Some(bundle.clone()));

    assert!(
        store
            .delete_prompt(pid, bundle.prompts[0].id)
            .await
            .unwrap()
    );
    assert!(store.delete_label(pid, label.id).await.unwrap());
    assert_conflict(store.delete_label(pid, bundle.labels[2].id).await, None);
}

async fn a_frame_in_use_cannot_be_deleted(engine: Engine) {
    let store = open(engine).await;
    let bundle = full_bundle("frames", false);
    store.insert_bundle(&bundle).await.unwrap();
    let pid = bundle.project.id;
    assert_conflict(
        store.delete_frame(pid, bundle.frames[0].frame.id).await,
        Some("frame_id"),
    );
    assert!(
        store
            .get_frame_bytes(pid, bundle.frames[0].frame.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .delete_frame(pid, bundle.frames[1].frame.id)
            .await
            .unwrap()
    );
}

async fn deleting_the_active_source_or_model_clears_the_slot(engine: Engine) {
    let store = open(engine).await;
    let bundle = full_bundle("slots", false);
    store.insert_bundle(&bundle).await.unwrap();
    let pid = bundle.project.id;
    let source = bundle.sources.iter().find(|s| s.active).unwrap();
    let model = bundle.models.iter().find(|m| m.active).unwrap();

    assert!(store.delete_source(pid, source.id).await.unwrap());
    assert!(store.delete_model(pid, model.id).await.unwrap());

    let sources = store.list_sources(pid, Page::all()).await.unwrap();
    assert!(sources.items.iter().all(|s| !s.active));
    assert_eq!(store.active_model(pid).await.unwrap(), None);
    // A source inserted with the same id later would not be active: the slot is really empty.
    let mut again = source.clone();
    again.active = false;
    store.insert_source(&again).await.unwrap();
    assert!(
        !store
            .get_source(pid, source.id)
            .await
            .unwrap()
            .unwrap()
            .active
    );
}

async fn a_bundle_that_fails_stores_nothing(engine: Engine) {
    let store = open(engine).await;
    // A prompt naming a label that is not in the bundle.
    let mut broken = full_bundle("broken", true);
    if let PromptContent::Text { phrases } = &mut broken.prompts[1].content {
        phrases[0].label_id = LabelId::new();
    }
    assert_not_found(store.insert_bundle(&broken).await, Entity::Label);
    // Two model configurations with one name.
    let mut clash = full_bundle("clash", true);
    clash.models[1].name = clash.models[0].name.clone();
    assert_conflict(store.insert_bundle(&clash).await, Some("name"));
    // Two prompts on one frame.
    let mut shared = full_bundle("shared", false);
    let mut second = shared.prompts[0].clone();
    second.id = PromptId::new();
    shared.prompts.push(second);
    assert_conflict(store.insert_bundle(&shared).await, Some("frame_id"));

    for pid in [broken.project.id, clash.project.id, shared.project.id] {
        assert_eq!(store.get_project(pid).await.unwrap(), None);
        assert_eq!(store.list_labels(pid, Page::all()).await.unwrap().total, 0);
        assert_eq!(store.list_frames(pid, Page::all()).await.unwrap().total, 0);
        assert_eq!(store.list_models(pid, Page::all()).await.unwrap().total, 0);
    }
    assert_eq!(store.active_project().await.unwrap(), None);
    assert_eq!(store.list_projects(Page::all()).await.unwrap().total, 0);
}

crate::helpers::on_every_engine!(
    deleting_a_project_removes_everything_it_owns,
    deleting_an_inactive_project_keeps_the_active_one,
    deleting_a_prompt_deletes_its_frame,
    moving_a_prompt_to_another_frame_deletes_the_old_one,
    a_label_in_use_cannot_be_deleted_and_nothing_changes,
    a_frame_in_use_cannot_be_deleted,
    deleting_the_active_source_or_model_clears_the_slot,
    a_bundle_that_fails_stores_nothing,
);
