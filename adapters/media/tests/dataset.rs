//! The bundled sample dataset opened through the factory.

use visprompt_domain::{MediaRoots, SourceConfig};
use visprompt_media::{MediaSourceFactory, SAMPLE_DATASETS, SyntheticScene};
use visprompt_runtime::{FrameSource, SourceError, SourceFactory, SourceMode};

#[tokio::test]
async fn no_id_opens_the_first_dataset_and_every_frame_decodes() {
    let factory = MediaSourceFactory::new(MediaRoots::default());
    let mut source = factory
        .open(&SourceConfig::SampleDataset { dataset_id: None })
        .await
        .unwrap();
    assert_eq!(source.mode(), SourceMode::Manual);
    let len = source.navigation().unwrap().len();
    assert_eq!(len, SAMPLE_DATASETS[0].len());
    assert!(len >= 8);
    let mut previous = None;
    for index in 0..len {
        source.navigation().unwrap().seek(index).unwrap();
        let frame = source.next_frame().await.unwrap().unwrap();
        assert_eq!((frame.width(), frame.height()), (320, 240));
        // The shapes move, so no two consecutive frames are equal.
        assert_ne!(Some(&frame), previous.as_ref());
        previous = Some(frame);
    }
    let thumbs = source.navigation().unwrap().thumbnails(0, 2, 64).unwrap();
    assert_eq!(
        (thumbs[1].image.width(), thumbs[1].image.height()),
        (64, 48)
    );
}

#[tokio::test]
async fn a_dataset_is_found_by_its_id_and_an_unknown_id_is_unavailable() {
    let factory = MediaSourceFactory::new(MediaRoots::default());
    let id = SAMPLE_DATASETS[0].id;
    let mut source = factory
        .open(&SourceConfig::SampleDataset {
            dataset_id: Some(id),
        })
        .await
        .unwrap();
    assert_eq!(source.navigation().unwrap().len(), SAMPLE_DATASETS[0].len());

    let unknown = uuid::Uuid::from_u128(42);
    match factory
        .open(&SourceConfig::SampleDataset {
            dataset_id: Some(unknown),
        })
        .await
    {
        Err(SourceError::Unavailable(msg)) => assert!(msg.contains(&unknown.to_string()), "{msg}"),
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("an unknown dataset opened"),
    }
}

#[tokio::test]
async fn the_bundled_frames_are_renders_of_the_synthetic_scene() {
    // The settings of examples/make_sample_dataset.rs: a checked-in frame that differs was not
    // made by it (or the scene changed since, and the frames need regenerating).
    let (seed, step) = (2024, 40);
    let scene = SyntheticScene::new(320, 240, seed)
        .with_sensor_noise(SyntheticScene::DEFAULT_NOISE / 2, seed);
    let mut source = visprompt_media::open_sample_dataset(None).unwrap();
    for k in 0..source.navigation().unwrap().len() {
        source.navigation().unwrap().seek(k).unwrap();
        let frame = source.next_frame().await.unwrap().unwrap();
        assert!(frame == scene.render(k as u64 * step), "frame {k}");
    }
}
