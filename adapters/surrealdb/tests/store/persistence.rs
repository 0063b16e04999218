//! What is stored survives closing and reopening the database, and opening it again migrates
//! nothing twice.

use visprompt_domain::*;
use visprompt_surrealdb::{SCHEMA_VERSION, StoreLocation, SurrealRepository};

use crate::helpers::*;

async fn connect(location: &StoreLocation, database: &str) -> SurrealRepository {
    SurrealRepository::connect(location.clone(), NAMESPACE, database)
        .await
        .expect("opening the store")
}

mod disk {
    use super::*;

    /// Close the only connection, open the directory again (twice), find everything there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_survives_closing_and_reopening_the_directory() {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Disk(dir.path().join("nested").join("db"));
        let store = connect(&location, "main").await;
        let bundle = full_bundle("persistent", true);
        store.insert_bundle(&bundle).await.unwrap();
        let other = project("second", 10);
        store
            .insert_bundle(&crate::helpers::bundle(&other))
            .await
            .unwrap();
        let version = store.schema_version().await.unwrap();

        // Act
        store.close();
        let store = connect(&location, "main").await;
        store
            .insert_label(&label(other.id, "added after reopening", 9))
            .await
            .unwrap();
        store.close();
        let store = connect(&location, "main").await;

        // Assert
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(
            store.load_bundle(bundle.project.id).await.unwrap(),
            Some(bundle.clone())
        );
        assert_eq!(
            store.active_project().await.unwrap(),
            Some(bundle.project.clone())
        );
        let projects = store.list_projects(Page::all()).await.unwrap();
        assert_eq!(projects.items, vec![bundle.project, other.clone()]);
        assert_eq!(
            store
                .list_labels(other.id, Page::all())
                .await
                .unwrap()
                .total,
            1
        );
    }
}

mod remote {
    use super::*;

    /// A second server process (or a restart) connecting to the same database finds the schema
    /// current and the data in place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_connection_finds_the_schema_current_and_the_data() {
        let store = open(Engine::Remote).await;
        let p = new_project(&store, "kept").await;
        let second = connect(&store.location, &store.database).await;
        assert_eq!(second.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(second.get_project(p.id).await.unwrap(), Some(p));
    }

    /// Several servers starting against a fresh database at once all end up at the current
    /// version: each migration applies once, whoever wins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_starts_migrate_once() {
        let first = open(Engine::Remote).await;
        let database = format!("fresh_{}", uuid::Uuid::new_v4().simple());
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let location = first.location.clone();
            let database = database.clone();
            starts.spawn(async move { connect(&location, &database).await.schema_version().await });
        }
        for version in starts.join_all().await {
            assert_eq!(version.unwrap(), SCHEMA_VERSION);
        }
    }
}
