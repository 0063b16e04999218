//! The database schema as an ordered list of SurrealQL migrations, and the migrator that applies
//! the missing ones at start-up. Each migration runs in one transaction together with the bump of
//! the `schema_version:current` record, so a crash never leaves a half-applied schema and a restart
//! (or a second server starting at the same moment) applies nothing twice.
//!
//! Migrations are append-only: a released script is never edited, a change is a new script.

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use crate::StoreError;
use crate::exec::primary_error;

/// The version the last migration brings the database to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` (1-based) brings the schema from version `i - 1` to `i`.
const MIGRATIONS: &[&str] = &[V1_INITIAL, V2_DETECTOR_AND_MQTT_PARAMS, V3_VIDEO_LOOPING];

/// Tables, fields and indexes of the first release.
///
/// Why the schema looks like this:
/// - Record keys are the domain's UUIDs (`project:u'…'`); the `table:key` form never leaves the
///   adapter.
/// - "One active" rules are single slots, never flags to keep in step: `active_project:slot`
///   points at the active project, `project.active_source` / `project.active_model` at the
///   project's active source and model configuration. Activating overwrites the slot, so two
///   concurrent activations write the same record and one of them has to retry: under snapshot
///   isolation, flags on separate records could both end up set (write skew).
/// - `revision` counters on projects, labels and frames are bumped by every write that adds
///   something depending on them (a label in a project, a prompt using a label or frame). Deleting
///   the project, label or frame writes the same record, so the two conflict instead of leaving
///   an orphan behind, whichever commits first.
/// - Frame images live in `frame_image`, keyed like their frame: reading or listing frames never
///   loads the image bytes, and the two are written and deleted in one transaction.
/// - Nested configurations are typed as unions of literal objects, so the database refuses a
///   source, sink, model or prompt of a shape the adapter does not write.
const V1_INITIAL: &str = r#"
DEFINE TABLE IF NOT EXISTS project SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS name ON project TYPE string
    ASSERT string::len($value) >= 1 AND string::len($value) <= 100;
DEFINE FIELD IF NOT EXISTS active_source ON project TYPE option<record<source>>;
DEFINE FIELD IF NOT EXISTS active_model ON project TYPE option<record<model>>;
DEFINE FIELD IF NOT EXISTS revision ON project TYPE int DEFAULT 0;
DEFINE FIELD IF NOT EXISTS created_at ON project TYPE datetime;
DEFINE FIELD IF NOT EXISTS updated_at ON project TYPE datetime;
DEFINE INDEX IF NOT EXISTS project_name ON project FIELDS name UNIQUE;

DEFINE TABLE IF NOT EXISTS active_project SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON active_project TYPE option<record<project>>;

DEFINE TABLE IF NOT EXISTS label SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON label TYPE record<project>;
DEFINE FIELD IF NOT EXISTS name ON label TYPE string
    ASSERT string::len($value) >= 1 AND string::len($value) <= 100;
DEFINE FIELD IF NOT EXISTS color ON label TYPE string
    ASSERT string::matches($value, '^#[0-9A-F]{6}$');
DEFINE FIELD IF NOT EXISTS revision ON label TYPE int DEFAULT 0;
DEFINE FIELD IF NOT EXISTS created_at ON label TYPE datetime;
DEFINE FIELD IF NOT EXISTS updated_at ON label TYPE datetime;
DEFINE INDEX IF NOT EXISTS label_project ON label FIELDS project;
DEFINE INDEX IF NOT EXISTS label_name ON label FIELDS project, name UNIQUE;

DEFINE TABLE IF NOT EXISTS frame SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON frame TYPE record<project>;
DEFINE FIELD IF NOT EXISTS format ON frame TYPE 'jpeg' | 'png';
DEFINE FIELD IF NOT EXISTS width ON frame TYPE int ASSERT $value >= 1 AND $value <= 16384;
DEFINE FIELD IF NOT EXISTS height ON frame TYPE int ASSERT $value >= 1 AND $value <= 16384;
DEFINE FIELD IF NOT EXISTS byte_len ON frame TYPE int ASSERT $value >= 0;
DEFINE FIELD IF NOT EXISTS revision ON frame TYPE int DEFAULT 0;
DEFINE FIELD IF NOT EXISTS created_at ON frame TYPE datetime;
DEFINE INDEX IF NOT EXISTS frame_project ON frame FIELDS project;

DEFINE TABLE IF NOT EXISTS frame_image SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON frame_image TYPE record<project>;
DEFINE FIELD IF NOT EXISTS bytes ON frame_image TYPE bytes;
DEFINE INDEX IF NOT EXISTS frame_image_project ON frame_image FIELDS project;

DEFINE TABLE IF NOT EXISTS prompt SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON prompt TYPE record<project>;
DEFINE FIELD IF NOT EXISTS frame ON prompt TYPE option<record<frame>>;
DEFINE FIELD IF NOT EXISTS labels ON prompt TYPE array<record<label>>;
DEFINE FIELD IF NOT EXISTS content ON prompt TYPE
      { kind: 'visual', annotations: array<{ label: record<label>, shape:
            { type: 'points', points: array<{ x: float, y: float, positive: bool }> }
          | { type: 'rectangle', min: { x: float, y: float }, max: { x: float, y: float } }
          | { type: 'polygon', points: array<{ x: float, y: float }> }
          | { type: 'mask', size: { width: int, height: int }, counts: array<int> } }> }
    | { kind: 'text', phrases: array<{ label: record<label>, text: string }> };
DEFINE FIELD IF NOT EXISTS created_at ON prompt TYPE datetime;
DEFINE FIELD IF NOT EXISTS updated_at ON prompt TYPE datetime;
DEFINE INDEX IF NOT EXISTS prompt_project ON prompt FIELDS project;
DEFINE INDEX IF NOT EXISTS prompt_frame ON prompt FIELDS frame UNIQUE;

DEFINE TABLE IF NOT EXISTS source SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON source TYPE record<project>;
DEFINE FIELD IF NOT EXISTS name ON source TYPE string
    ASSERT string::len($value) >= 1 AND string::len($value) <= 100;
DEFINE FIELD IF NOT EXISTS config ON source TYPE
      { kind: 'usb_camera', device_id: int }
    | { kind: 'video_file', video_path: string }
    | { kind: 'images_folder', images_folder_path: string }
    | { kind: 'rtsp', url: string }
    | { kind: 'sample_dataset', dataset_id: option<uuid> }
    | { kind: 'synthetic' };
DEFINE FIELD IF NOT EXISTS created_at ON source TYPE datetime;
DEFINE FIELD IF NOT EXISTS updated_at ON source TYPE datetime;
DEFINE INDEX IF NOT EXISTS source_project ON source FIELDS project;

DEFINE TABLE IF NOT EXISTS sink SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON sink TYPE record<project>;
DEFINE FIELD IF NOT EXISTS name ON sink TYPE string
    ASSERT string::len($value) >= 1 AND string::len($value) <= 100;
DEFINE FIELD IF NOT EXISTS active ON sink TYPE bool;
DEFINE FIELD IF NOT EXISTS config ON sink TYPE
      { kind: 'mqtt', broker_host: string, broker_port: int, topic: string,
        username: option<string>, password: option<string> }
    | { kind: 'webhook', url: string }
    | { kind: 'file', path: string };
DEFINE FIELD IF NOT EXISTS created_at ON sink TYPE datetime;
DEFINE FIELD IF NOT EXISTS updated_at ON sink TYPE datetime;
DEFINE INDEX IF NOT EXISTS sink_project ON sink FIELDS project;

DEFINE TABLE IF NOT EXISTS model SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS project ON model TYPE record<project>;
DEFINE FIELD IF NOT EXISTS name ON model TYPE string
    ASSERT string::len($value) >= 1 AND string::len($value) <= 100;
DEFINE FIELD IF NOT EXISTS device ON model TYPE string;
DEFINE FIELD IF NOT EXISTS params ON model TYPE
      { algorithm: 'matcher', sam_model: string, encoder_model: string, precision: string,
        num_foreground_points: int, num_background_points: int, confidence_threshold: float,
        use_mask_refinement: bool, similarity_threshold: option<float>, num_grid_cells: int }
    | { algorithm: 'perdino', sam_model: string, encoder_model: string, precision: string,
        num_foreground_points: int, num_background_points: int, num_grid_cells: int,
        point_selection_threshold: float, confidence_threshold: float }
    | { algorithm: 'soft_matcher', sam_model: string, encoder_model: string, precision: string,
        num_foreground_points: int, num_background_points: int, confidence_threshold: float,
        use_sampling: bool, use_spatial_sampling: bool, approximate_matching: bool,
        softmatching_score_threshold: float, softmatching_bidirectional: bool }
    | { algorithm: 'classical', confidence_threshold: float, max_detections: int };
DEFINE FIELD IF NOT EXISTS created_at ON model TYPE datetime;
DEFINE FIELD IF NOT EXISTS updated_at ON model TYPE datetime;
DEFINE INDEX IF NOT EXISTS model_project ON model FIELDS project;
DEFINE INDEX IF NOT EXISTS model_name ON model FIELDS project, name UNIQUE;
"#;

/// Adds the classical detector's `min_area` and the MQTT sink's `qos` and `tls`.
///
/// The field types are redefined first, so that each row the backfill rewrites is checked against
/// the new shape, which lists the new keys, rather than the old one, which does not. Defining a
/// field does not re-check the rows already stored; inside this one transaction nothing reads
/// them before the backfill has rewritten them. `qos` is typed as its three levels, so the
/// database refuses any other number. The backfilled values are the domain's defaults: `min_area`
/// 0.2 (the share the detector used before it was configurable), QoS 0 and no TLS (how every
/// sink connected before).
const V2_DETECTOR_AND_MQTT_PARAMS: &str = r#"
DEFINE FIELD OVERWRITE config ON sink TYPE
      { kind: 'mqtt', broker_host: string, broker_port: int, topic: string,
        username: option<string>, password: option<string>, qos: 0 | 1 | 2, tls: bool }
    | { kind: 'webhook', url: string }
    | { kind: 'file', path: string };
UPDATE sink MERGE { config: { qos: 0, tls: false } } WHERE config.kind = 'mqtt' RETURN NONE;

DEFINE FIELD OVERWRITE params ON model TYPE
      { algorithm: 'matcher', sam_model: string, encoder_model: string, precision: string,
        num_foreground_points: int, num_background_points: int, confidence_threshold: float,
        use_mask_refinement: bool, similarity_threshold: option<float>, num_grid_cells: int }
    | { algorithm: 'perdino', sam_model: string, encoder_model: string, precision: string,
        num_foreground_points: int, num_background_points: int, num_grid_cells: int,
        point_selection_threshold: float, confidence_threshold: float }
    | { algorithm: 'soft_matcher', sam_model: string, encoder_model: string, precision: string,
        num_foreground_points: int, num_background_points: int, confidence_threshold: float,
        use_sampling: bool, use_spatial_sampling: bool, approximate_matching: bool,
        softmatching_score_threshold: float, softmatching_bidirectional: bool }
    | { algorithm: 'classical', confidence_threshold: float, max_detections: int,
        min_area: float };
UPDATE model MERGE { params: { min_area: 0.2 } } WHERE params.algorithm = 'classical'
    RETURN NONE;
"#;

/// Video file sources say whether they loop; existing ones keep looping, as they always did.
const V3_VIDEO_LOOPING: &str = r#"
DEFINE FIELD OVERWRITE config ON source TYPE
      { kind: 'usb_camera', device_id: int }
    | { kind: 'video_file', video_path: string, looping: bool }
    | { kind: 'images_folder', images_folder_path: string }
    | { kind: 'rtsp', url: string }
    | { kind: 'sample_dataset', dataset_id: option<uuid> }
    | { kind: 'synthetic' };
UPDATE source MERGE { config: { looping: true } } WHERE config.kind = 'video_file' RETURN NONE;
"#;

/// Creates the version record's table if needed; harmless to repeat.
const ENSURE_VERSION_TABLE: &str = "
DEFINE TABLE IF NOT EXISTS schema_version SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS version ON schema_version TYPE int ASSERT $value >= 0;
";

const READ_VERSION: &str = "SELECT VALUE version FROM ONLY schema_version:current;";

/// Wraps migration `$to` so that it only applies on top of version `$to - 1`: a migrator that lost
/// the race to another one finds the version moved and throws instead of re-applying.
fn migration_script(body: &str) -> String {
    format!(
        "BEGIN TRANSACTION;
LET $found = (SELECT VALUE version FROM ONLY schema_version:current) ?? 0;
IF $found != $to - 1 {{ THROW 'vp|schema_moved|' + <string> $found; }};
{body}
UPSERT schema_version:current SET version = $to RETURN NONE;
COMMIT TRANSACTION;"
    )
}

/// Reads the stored schema version; 0 for a database that was never migrated.
pub(crate) async fn current_version(db: &Surreal<Any>) -> Result<i64, StoreError> {
    let query_error = |source| StoreError::Query {
        operation: "read schema version",
        source,
    };
    let mut response = db.query(READ_VERSION).await.map_err(query_error)?;
    let version: Option<i64> = response.take(0).map_err(query_error)?;
    Ok(version.unwrap_or(0))
}

/// How often start-up retries a step that conflicted with another process migrating the same
/// database at the same moment.
const MAX_ATTEMPTS: u32 = 20;

/// Applies every migration the database has not seen, in order; returns the resulting version.
pub(crate) async fn migrate(db: &Surreal<Any>) -> Result<i64, StoreError> {
    migrate_to(db, SCHEMA_VERSION).await
}

/// Applies the missing migrations up to version `target` only. Start-up always goes to
/// [`SCHEMA_VERSION`]; a lower target lets the upgrade tests build a database as an earlier
/// release left it.
pub(crate) async fn migrate_to(db: &Surreal<Any>, target: i64) -> Result<i64, StoreError> {
    debug_assert!((0..=SCHEMA_VERSION).contains(&target));
    let mut attempt = 1;
    while let Err(source) = run(db, ENSURE_VERSION_TABLE, 0).await {
        if !is_concurrent_migration(&source) || attempt >= MAX_ATTEMPTS {
            return Err(StoreError::Migration { version: 0, source });
        }
        pause(attempt).await;
        attempt += 1;
    }
    let mut attempt = 1;
    loop {
        let found = current_version(db).await?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found >= target {
            return Ok(found);
        }
        let to = found + 1;
        match run(db, &migration_script(MIGRATIONS[found as usize]), to).await {
            Ok(()) => tracing::info!(message = "Schema migrated.", version = to),
            // Another process migrated concurrently: read the version again and go on from there.
            Err(e) if is_concurrent_migration(&e) && attempt < MAX_ATTEMPTS => {
                tracing::debug!(message = "Schema migrated concurrently.", error = %e);
                pause(attempt).await;
                attempt += 1;
            }
            Err(source) => {
                return Err(StoreError::Migration {
                    version: to,
                    source,
                });
            }
        }
    }
}

/// Runs a script and returns the error that explains its failure, if it failed.
async fn run(db: &Surreal<Any>, script: &str, to: i64) -> Result<(), surrealdb::Error> {
    let mut response = db.query(script).bind(("to", to)).await?;
    match primary_error(response.take_errors()) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

async fn pause(attempt: u32) {
    tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(attempt))).await;
}

fn is_concurrent_migration(error: &surrealdb::Error) -> bool {
    let conflict = matches!(
        error.query_details(),
        Some(surrealdb::types::QueryError::TransactionConflict)
    );
    conflict || (error.is_thrown() && error.message().contains("vp|schema_moved|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_version_counts_the_migrations() {
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
        const { assert!(SCHEMA_VERSION >= 1) };
    }
}
