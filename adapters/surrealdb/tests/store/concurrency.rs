//! Rules that concurrent requests could break, hammered by 20 concurrent tasks each: unique
//! names, one active project / source / model configuration, and references that a concurrent
//! delete must not leave dangling.

use std::sync::Arc;

use tokio::task::JoinSet;
use visprompt_domain::*;
use visprompt_surrealdb::SurrealRepository;

use crate::helpers::*;

const TASKS: usize = 20;

/// Runs `TASKS` copies of `work(store, i)` at once and returns their results in task order.
async fn race<T, F, Fut>(store: &SurrealRepository, work: F) -> Vec<Result<T, DomainError>>
where
    T: Send + 'static,
    F: Fn(SurrealRepository, usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, DomainError>> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut set = JoinSet::new();
    for i in 0..TASKS {
        let task = work(store.clone(), i);
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            (i, task.await)
        });
    }
    let mut results: Vec<(usize, Result<T, DomainError>)> = set.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Exactly one success; every other result is a conflict on `field`.
#[track_caller]
fn exactly_one_wins<T: std::fmt::Debug>(results: Vec<Result<T, DomainError>>, field: Option<&str>) {
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for result in results.into_iter().filter(|r| r.is_err()) {
        assert_conflict(result, field);
    }
}

async fn one_of_many_projects_with_one_name_is_created(engine: Engine) {
    let store = open(engine).await;
    let results = race(&store, |s, i| async move {
        s.insert_bundle(&full_bundle("same name", i % 2 == 0)).await
    })
    .await;
    exactly_one_wins(results, Some("name"));
    assert_eq!(store.list_projects(Page::all()).await.unwrap().total, 1);
    // Nothing of the losing bundles was left behind.
    let winner = store
        .list_projects(Page::all())
        .await
        .unwrap()
        .items
        .remove(0);
    let bundle = store.load_bundle(winner.id).await.unwrap().unwrap();
    assert_eq!(bundle.labels.len(), 3);
}

async fn many_concurrent_activations_leave_one_active_project(engine: Engine) {
    let store = open(engine).await;
    let mut ids = Vec::new();
    for i in 0..TASKS {
        ids.push(new_project(&store, &format!("p{i}")).await.id);
    }
    let ids = Arc::new(ids);
    let targets = ids.clone();
    let results = race(&store, move |s, i| {
        let id = targets[i];
        async move { s.set_active_project(Some(id)).await }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let projects = store.list_projects(Page::all()).await.unwrap().items;
    let active: Vec<&Project> = projects.iter().filter(|p| p.active).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        store.active_project().await.unwrap().as_ref(),
        Some(active[0])
    );
}

async fn many_concurrent_activations_leave_one_active_source(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "sources").await;
    let mut sources = Vec::new();
    for i in 0..TASKS {
        let s = source(
            p.id,
            SourceConfig::UsbCamera {
                device_id: i as u32,
            },
            i as i64,
        );
        store.insert_source(&s).await.unwrap();
        sources.push(s);
    }
    let sources = Arc::new(sources);
    let all = sources.clone();
    let results = race(&store, move |s, i| {
        let mut source = all[i].clone();
        source.active = true;
        async move { s.update_source(&source).await }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let listed = store.list_sources(p.id, Page::all()).await.unwrap().items;
    assert_eq!(listed.iter().filter(|s| s.active).count(), 1);

    // Concurrent inserts of active sources: again exactly one ends up active.
    let results = race(&store, move |s, i| {
        let mut source = source(p.id, SourceConfig::Synthetic, 100 + i as i64);
        source.active = true;
        async move { s.insert_source(&source).await }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let listed = store.list_sources(p.id, Page::all()).await.unwrap();
    assert_eq!(listed.total, 2 * TASKS as u64);
    assert_eq!(listed.items.iter().filter(|s| s.active).count(), 1);
}

async fn many_concurrent_activations_leave_one_active_model(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "models").await;
    let mut models = Vec::new();
    for i in 0..TASKS {
        let m = model(p.id, &format!("m{i}"), i as i64);
        store.insert_model(&m).await.unwrap();
        models.push(m);
    }
    let models = Arc::new(models);
    let all = models.clone();
    let results = race(&store, move |s, i| {
        let mut model = all[i].clone();
        model.active = true;
        async move { s.update_model(&model).await }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let listed = store.list_models(p.id, Page::all()).await.unwrap().items;
    let active: Vec<&ModelConfig> = listed.iter().filter(|m| m.active).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        store.active_model(p.id).await.unwrap().as_ref(),
        Some(active[0])
    );
}

/// Sinks have no one-active rule: activating all of them at once leaves all of them active.
async fn many_sinks_activated_at_once_all_stay_active(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "sinks").await;
    let mut sinks = Vec::new();
    for i in 0..TASKS {
        let s = sink(
            p.id,
            SinkConfig::File {
                path: format!("/media/{i}.jsonl"),
            },
            i as i64,
        );
        store.insert_sink(&s).await.unwrap();
        sinks.push(s);
    }
    let sinks = Arc::new(sinks);
    let all = sinks.clone();
    let results = race(&store, move |s, i| {
        let mut sink = all[i].clone();
        sink.active = true;
        async move { s.update_sink(&sink).await }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let listed = store.list_sinks(p.id, Page::all()).await.unwrap().items;
    assert_eq!(listed.iter().filter(|s| s.active).count(), TASKS);
}

async fn one_of_many_labels_with_one_name_is_created(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "labels").await;
    let results = race(&store, move |s, i| async move {
        s.insert_label(&label(p.id, "cat", i as i64)).await
    })
    .await;
    exactly_one_wins(results, Some("name"));
    assert_eq!(store.list_labels(p.id, Page::all()).await.unwrap().total, 1);
}

async fn one_of_many_models_with_one_name_is_created(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "models").await;
    let results = race(&store, move |s, i| async move {
        s.insert_model(&model(p.id, "same", i as i64)).await
    })
    .await;
    exactly_one_wins(results, Some("name"));
}

async fn many_labels_with_distinct_names_are_all_created(engine: Engine) {
    // Every insert bumps the project's revision, so these all conflict with each other; the
    // adapter's retries must get every one of them through.
    let store = open(engine).await;
    let p = new_project(&store, "busy").await;
    let results = race(&store, move |s, i| async move {
        s.insert_label(&label(p.id, &format!("label {i}"), i as i64))
            .await
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        store.list_labels(p.id, Page::all()).await.unwrap().total,
        TASKS as u64
    );
}

async fn one_of_many_prompts_on_one_frame_is_created(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "frame").await;
    let l = label(p.id, "l", 0);
    store.insert_label(&l).await.unwrap();
    let f = frame(p.id, 0);
    store.insert_frame(&f).await.unwrap();
    let (pid, lid, fid) = (p.id, l.id, f.frame.id);
    let results = race(&store, move |s, i| async move {
        s.insert_prompt(&visual_prompt(pid, fid, &[lid], i as i64))
            .await
    })
    .await;
    exactly_one_wins(results, Some("frame_id"));
    assert_eq!(
        store.list_prompts(p.id, Page::all()).await.unwrap().total,
        1
    );
}

/// Half the tasks create prompts using a label while the other half delete it: afterwards either
/// the label is gone and no prompt was stored, or the label stayed and the prompts refer to it.
async fn a_label_deleted_while_prompts_start_using_it_leaves_no_dangling_reference(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "dangling").await;
    let l = label(p.id, "contested", 0);
    store.insert_label(&l).await.unwrap();
    let (pid, lid) = (p.id, l.id);
    let results = race(&store, move |s, i| async move {
        if i % 2 == 0 {
            s.insert_prompt(&text_prompt(pid, &[lid], i as i64))
                .await
                .map(|()| "inserted")
        } else {
            s.delete_label(pid, lid)
                .await
                .map(|deleted| if deleted { "deleted" } else { "absent" })
        }
    })
    .await;

    let label_left = store.get_label(p.id, l.id).await.unwrap().is_some();
    let prompts = store.list_prompts(p.id, Page::all()).await.unwrap();
    let inserted = results
        .iter()
        .filter(|r| matches!(r, Ok("inserted")))
        .count();
    assert_eq!(prompts.total, inserted as u64, "{results:?}");
    if label_left {
        assert!(
            inserted > 0,
            "the label survived only if a prompt used it: {results:?}"
        );
    } else {
        assert_eq!(inserted, 0, "prompts refer to a deleted label: {results:?}");
    }
    for r in results.into_iter().filter(|r| r.is_err()) {
        match r {
            Err(DomainError::Conflict { .. }) | Err(DomainError::NotFound { .. }) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}

/// Half the tasks add labels to a project while the other half delete it: if the project is
/// gone, so is every label, and any insert that lost reported the project as not found.
async fn a_project_deleted_while_labels_are_added_leaves_no_orphans(engine: Engine) {
    let store = open(engine).await;
    let p = new_project(&store, "doomed").await;
    let pid = p.id;
    let results = race(&store, move |s, i| async move {
        if i % 2 == 0 {
            s.insert_label(&label(pid, &format!("l{i}"), i as i64))
                .await
                .map(|()| true)
        } else {
            s.delete_project(pid).await
        }
    })
    .await;
    assert_eq!(store.get_project(p.id).await.unwrap(), None);
    assert_eq!(
        store.list_labels(p.id, Page::all()).await.unwrap().total,
        0,
        "{results:?}"
    );
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert_not_found(r, Entity::Project);
    }
}

crate::helpers::on_every_engine!(
    one_of_many_projects_with_one_name_is_created,
    many_concurrent_activations_leave_one_active_project,
    many_concurrent_activations_leave_one_active_source,
    many_concurrent_activations_leave_one_active_model,
    many_sinks_activated_at_once_all_stay_active,
    one_of_many_labels_with_one_name_is_created,
    one_of_many_models_with_one_name_is_created,
    many_labels_with_distinct_names_are_all_created,
    one_of_many_prompts_on_one_frame_is_created,
    a_label_deleted_while_prompts_start_using_it_leaves_no_dangling_reference,
    a_project_deleted_while_labels_are_added_leaves_no_orphans,
);
