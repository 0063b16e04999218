//! The file sink on a real file system: JSON Lines appended, rotation by size, and paths that
//! cannot be a file of ours.

use std::path::Path;
use std::time::Duration;

use visprompt_domain::{MediaRoots, SinkConfig};
use visprompt_runtime::{
    Confinement, ResultSink, SinkError, SinkFactory, SinkHealth, SinkHealthReporter,
};
use visprompt_sinks::{BackoffSettings, FileSettings, FileSink, Sinks};

use crate::support::{Fixture, parse};

fn sequences(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| {
            parse(line.as_bytes())["frame"]["sequence"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn roots(root: &Path) -> MediaRoots {
    MediaRoots::new(vec![root.to_owned()]).unwrap()
}

/// Sinks whose files must lie inside `root`.
fn sinks_in(root: &Path) -> Sinks {
    Sinks::default().confined_to(&roots(root))
}

async fn build(root: &Path, path: &str) -> Result<Box<dyn ResultSink>, SinkError> {
    sinks_in(root)
        .build(
            &SinkConfig::File { path: path.into() },
            SinkHealthReporter::default(),
        )
        .await
}

#[tokio::test]
async fn results_are_appended_as_json_lines_in_a_directory_created_for_them() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/sub/predictions.jsonl");
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let config = SinkConfig::File {
        path: path.to_str().unwrap().into(),
    };
    let results: Vec<_> = (1..=3).map(|seq| fixture.result(seq)).collect();

    // Act
    let mut sink = sinks_in(dir.path())
        .build(&config, health.clone())
        .await
        .unwrap();
    assert_eq!(health.get(), SinkHealth::Connected);
    for result in &results {
        sink.publish(result).await.unwrap();
    }
    sink.close().await;

    // Assert
    assert_eq!(health.get(), SinkHealth::Stopped);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for ((line, result), seq) in lines.iter().zip(&results).zip(1..) {
        assert_eq!(*line, &*result.payload_json());
        fixture.assert_payload(&parse(line.as_bytes()), seq);
    }
    assert!(text.ends_with('\n'));

    // Act: a second sink on the same file appends.
    let mut again = sinks_in(dir.path())
        .build(&config, health.clone())
        .await
        .unwrap();
    again.publish(&fixture.result(4)).await.unwrap();
    again.close().await;

    // Assert
    assert_eq!(sequences(&path), [1, 2, 3, 4]);
}

#[tokio::test]
async fn the_file_is_rotated_before_it_would_pass_the_size_limit() {
    // Arrange: room for two lines per file, two rotated files kept.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let fixture = Fixture::new();
    let results: Vec<_> = (1..=7).map(|seq| fixture.result(seq)).collect();
    let lengths: Vec<u64> = results
        .iter()
        .map(|r| r.payload_json().len() as u64 + 1)
        .collect();
    let (shortest, longest) = (
        *lengths.iter().min().unwrap(),
        *lengths.iter().max().unwrap(),
    );
    let max_bytes = 2 * longest;
    assert!(
        3 * shortest > max_bytes,
        "the lines differ too much in length for this test"
    );
    let settings = FileSettings {
        max_bytes,
        keep: 2,
        ..FileSettings::default()
    };
    let health = SinkHealthReporter::default();
    let mut sink = FileSink::start(
        path.to_str().unwrap(),
        &Confinement::new(&roots(dir.path())),
        &settings,
        BackoffSettings::default(),
        health.clone(),
    )
    .await
    .unwrap();

    // Act
    for result in &results {
        sink.publish(result).await.unwrap();
    }
    sink.close().await;

    // Assert: newest in the file itself, frames 1 and 2 rotated out of existence.
    assert_eq!(sequences(&path), [7]);
    assert_eq!(sequences(&dir.path().join("out.jsonl.1")), [5, 6]);
    assert_eq!(sequences(&dir.path().join("out.jsonl.2")), [3, 4]);
    assert!(!dir.path().join("out.jsonl.3").exists());
    for file in ["out.jsonl", "out.jsonl.1", "out.jsonl.2"] {
        let size = std::fs::metadata(dir.path().join(file)).unwrap().len();
        assert!(size <= max_bytes, "{file} has {size} bytes");
    }
    assert_eq!(sink.dropped(), 0);
}

#[tokio::test]
async fn a_line_cut_short_earlier_does_not_swallow_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    std::fs::write(&path, "{\"cut\":").unwrap();
    let fixture = Fixture::new();

    let mut sink = build(dir.path(), path.to_str().unwrap()).await.unwrap();
    sink.publish(&fixture.result(9)).await.unwrap();
    sink.close().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "{\"cut\":");
    fixture.assert_payload(&parse(lines[1].as_bytes()), 9);
}

#[tokio::test]
async fn a_linked_directory_cannot_lead_writes_out_of_the_media_roots() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
    let path = root.path().join("out/cron.d/job");
    let err = build(root.path(), path.to_str().unwrap())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, SinkError::Invalid(m) if m.contains("outside the media roots")),
        "{err:?}"
    );
    // Nothing was created behind the link.
    assert!(!outside.path().join("cron.d").exists());
}

#[tokio::test]
async fn without_media_roots_no_file_sink_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    let result = Sinks::default()
        .build(
            &SinkConfig::File {
                path: path.to_str().unwrap().into(),
            },
            SinkHealthReporter::default(),
        )
        .await;
    assert!(matches!(result, Err(SinkError::Invalid(_))));
    assert!(!path.exists());
}

#[tokio::test]
async fn directories_and_symbolic_links_out_of_the_roots_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let out_target = outside.path().join("elsewhere.jsonl");
    std::fs::write(&out_target, "").unwrap();
    let escaping = dir.path().join("escaping.jsonl");
    std::os::unix::fs::symlink(&out_target, &escaping).unwrap();
    let a_directory = dir.path().join("a-directory");
    std::fs::create_dir(&a_directory).unwrap();
    let file_as_parent = dir.path().join("plain-file");
    std::fs::write(&file_as_parent, "").unwrap();

    for path in [
        dir.path().to_str().unwrap().to_owned(),
        a_directory.to_str().unwrap().to_owned(),
        escaping.to_str().unwrap().to_owned(),
        format!("{}/..", dir.path().display()),
        format!("{}/below.jsonl", file_as_parent.display()),
        String::new(),
    ] {
        let result = build(dir.path(), &path).await;
        assert!(
            matches!(result, Err(SinkError::Invalid(_))),
            "{path:?} was accepted"
        );
    }
    assert_eq!(std::fs::read_to_string(&out_target).unwrap(), "");
}

#[tokio::test]
async fn a_symbolic_link_within_the_directory_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real.jsonl");
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::write(&target, "").unwrap();
    let fixture = Fixture::new();

    let mut sink = FileSink::start(
        link.to_str().unwrap(),
        &Confinement::new(&roots(dir.path())),
        &FileSettings::default(),
        BackoffSettings::default(),
        SinkHealthReporter::default(),
    )
    .await
    .unwrap();
    sink.publish(&fixture.result(3)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), sink.close())
        .await
        .unwrap();

    assert_eq!(sink.path(), std::fs::canonicalize(&target).unwrap());
    assert_eq!(sequences(&target), [3]);
}
