//! The USB-camera source on a machine that may have no camera: a missing device is reported by
//! name, and discovery lists only devices that exist. (Frame conversion is unit-tested in the
//! module on synthetic buffers.)
#![cfg(all(target_os = "linux", target_pointer_width = "64"))]

use std::path::Path;

use visprompt_domain::{MediaRoots, SourceConfig};
use visprompt_media::{MediaSourceFactory, discover_cameras};
use visprompt_runtime::{SourceError, SourceFactory};

#[tokio::test]
async fn a_missing_camera_is_unavailable_and_named() {
    // The domain allows ids up to 255; no machine has this many cameras.
    let device_id = 250;
    assert!(!Path::new("/dev/video250").exists());
    let factory = MediaSourceFactory::new(MediaRoots::default());
    match factory.open(&SourceConfig::UsbCamera { device_id }).await {
        Err(SourceError::Unavailable(msg)) => {
            assert!(msg.contains("/dev/video250"), "{msg}");
            assert!(msg.contains("no such device"), "{msg}");
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("a camera that does not exist opened"),
    }
}

#[test]
fn discovery_lists_only_devices_that_exist() {
    let cameras = discover_cameras();
    for camera in &cameras {
        let node = format!("/dev/video{}", camera.device_id);
        assert!(Path::new(&node).exists(), "{camera:?}");
        assert!(!camera.name.is_empty(), "{camera:?}");
    }
    let mut ids: Vec<_> = cameras.iter().map(|c| c.device_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), cameras.len(), "ids are listed once, in order");
    if !Path::new("/dev")
        .read_dir()
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("video"))
    {
        assert!(cameras.is_empty());
    }
}
