//! The images-folder source opened through the factory, on real files of every supported format
//! in a temporary media root.

use std::path::Path;

use image::ImageFormat as Codec;
use visprompt_domain::{MediaRoots, SourceConfig};
use visprompt_media::MediaSourceFactory;
use visprompt_runtime::{FrameSource, SourceError, SourceFactory, SourceMode};

/// A solid image whose red channel tells which one it is.
fn write_image(path: &Path, tag: u8, width: u32, height: u32, codec: Codec) {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([tag, 100, 200]));
    img.save_with_format(path, codec).unwrap();
}

fn factory(root: &Path) -> MediaSourceFactory {
    MediaSourceFactory::new(MediaRoots::new(vec![root.to_path_buf()]).unwrap())
}

async fn open(root: &Path, folder: &Path) -> Result<Box<dyn FrameSource>, SourceError> {
    factory(root)
        .open(&SourceConfig::ImagesFolder {
            images_folder_path: folder.display().to_string(),
        })
        .await
}

fn assert_close(got: [u8; 3], want: [u8; 3]) {
    let close = got
        .iter()
        .zip(want)
        .all(|(&g, w)| (i16::from(g) - i16::from(w)).abs() <= 6);
    assert!(close, "pixel {got:?}, expected about {want:?}");
}

#[tokio::test]
async fn every_format_is_listed_in_natural_order_and_decoded() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    write_image(&dir.join("img_10.webp"), 100, 8, 6, Codec::WebP);
    write_image(&dir.join("img_2.PNG"), 20, 8, 6, Codec::Png);
    write_image(&dir.join("img_1.jpg"), 10, 16, 12, Codec::Jpeg);
    write_image(&dir.join("img_3.bmp"), 30, 8, 6, Codec::Bmp);
    write_image(&dir.join("img_4.TIF"), 40, 8, 6, Codec::Tiff);
    write_image(&dir.join("img_5.jpeg"), 50, 8, 6, Codec::Jpeg);
    write_image(&dir.join("img_6.tiff"), 60, 8, 6, Codec::Tiff);
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    write_image(&dir.join(".hidden.png"), 1, 4, 4, Codec::Png);

    let mut source = open(dir, dir).await.unwrap();
    assert_eq!(source.mode(), SourceMode::Manual);
    let nav = source.navigation().expect("a folder is navigable");
    assert_eq!(nav.len(), 7);
    assert_eq!(nav.position(), 0);

    for (index, tag) in [10u8, 20, 30, 40, 50, 60, 100].into_iter().enumerate() {
        source.navigation().unwrap().seek(index).unwrap();
        let frame = source.next_frame().await.unwrap().expect("a frame");
        assert_close(frame.pixel(1, 1), [tag, 100, 200]);
        // A manual source shows the same position until told to move.
        let again = source.next_frame().await.unwrap().unwrap();
        assert_eq!(frame, again);
    }
}

#[tokio::test]
async fn seeking_past_the_end_is_out_of_range_and_keeps_the_position() {
    let root = tempfile::tempdir().unwrap();
    write_image(&root.path().join("a.png"), 1, 4, 4, Codec::Png);
    write_image(&root.path().join("b.png"), 2, 4, 4, Codec::Png);
    let mut source = open(root.path(), root.path()).await.unwrap();
    let nav = source.navigation().unwrap();
    nav.seek(1).unwrap();
    match nav.seek(2) {
        Err(SourceError::OutOfRange { index: 2, len: 2 }) => {}
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert_eq!(nav.position(), 1);
}

#[tokio::test]
async fn a_corrupt_file_is_reported_by_name_and_the_source_goes_on() {
    let root = tempfile::tempdir().unwrap();
    write_image(&root.path().join("1.png"), 1, 4, 4, Codec::Png);
    std::fs::write(
        root.path().join("2.jpg"),
        b"\xff\xd8\xff\xe0 truncated jpeg",
    )
    .unwrap();
    write_image(&root.path().join("3.png"), 3, 4, 4, Codec::Png);
    let mut source = open(root.path(), root.path()).await.unwrap();

    source.navigation().unwrap().seek(1).unwrap();
    match source.next_frame().await {
        Err(SourceError::Corrupt(msg)) => assert!(msg.contains("2.jpg"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    source.navigation().unwrap().seek(2).unwrap();
    let frame = source.next_frame().await.unwrap().unwrap();
    assert_eq!(frame.pixel(0, 0), [3, 100, 200]);

    // The page of thumbnails has a gap where the corrupt file is, and the good ones around it.
    let thumbs = source.navigation().unwrap().thumbnails(0, 3, 8).unwrap();
    assert_eq!(thumbs.iter().map(|t| t.index).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(thumbs[1].image.pixel(0, 0), [3, 100, 200]);
}

#[tokio::test]
async fn thumbnails_cover_the_asked_range_within_the_size() {
    let root = tempfile::tempdir().unwrap();
    for i in 0..5u8 {
        write_image(
            &root.path().join(format!("f{i}.png")),
            i,
            200,
            100,
            Codec::Png,
        );
    }
    let mut source = open(root.path(), root.path()).await.unwrap();
    let nav = source.navigation().unwrap();
    let thumbs = nav.thumbnails(3, 10, 50).unwrap();
    assert_eq!(thumbs.iter().map(|t| t.index).collect::<Vec<_>>(), [3, 4]);
    for t in &thumbs {
        assert_eq!((t.image.width(), t.image.height()), (50, 25));
        assert_eq!(t.image.pixel(10, 10), [t.index as u8, 100, 200]);
    }
    assert!(nav.thumbnails(5, 3, 50).unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_or_empty_folder_is_unavailable_and_named() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("missing");
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("readme.txt"), "no images here").unwrap();
    for folder in [missing, empty] {
        match open(root.path(), &folder).await {
            Err(SourceError::Unavailable(msg)) => {
                assert!(msg.contains(&folder.display().to_string()), "{msg}")
            }
            Err(other) => panic!("expected Unavailable, got {other:?}"),
            Ok(_) => panic!("{} opened", folder.display()),
        }
    }
}

fn assert_outside(result: Result<Box<dyn FrameSource>, SourceError>) {
    match result {
        Err(SourceError::Unavailable(msg)) => {
            assert!(msg.contains("outside the media roots"), "{msg}")
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("a folder outside the media roots was opened"),
    }
}

#[tokio::test]
async fn folders_outside_the_roots_are_refused_even_through_dot_dot_or_a_symlink() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("media");
    let private = outer.path().join("private");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&private).unwrap();
    write_image(&private.join("secret.png"), 9, 4, 4, Codec::Png);
    std::os::unix::fs::symlink(&private, root.join("link")).unwrap();

    assert_outside(open(&root, &root.join("../private")).await);
    assert_outside(open(&root, &root.join("link")).await);
    assert_outside(open(&root, &private).await);
}

#[tokio::test]
async fn an_image_linked_from_outside_the_roots_is_left_out_of_the_folder() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("media");
    std::fs::create_dir(&root).unwrap();
    write_image(&outer.path().join("secret.png"), 9, 4, 4, Codec::Png);
    write_image(&root.join("a.png"), 1, 4, 4, Codec::Png);
    std::os::unix::fs::symlink(outer.path().join("secret.png"), root.join("b.png")).unwrap();
    // A link that stays inside the root is followed.
    std::os::unix::fs::symlink(root.join("a.png"), root.join("c.png")).unwrap();

    let mut source = open(&root, &root).await.unwrap();
    assert_eq!(source.navigation().unwrap().len(), 2);
    source.navigation().unwrap().seek(1).unwrap();
    let frame = source.next_frame().await.unwrap().unwrap();
    assert_eq!(frame.pixel(0, 0), [1, 100, 200]);
}

#[tokio::test]
async fn an_image_swapped_for_an_outside_link_after_listing_is_not_read() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("media");
    std::fs::create_dir(&root).unwrap();
    write_image(&outer.path().join("secret.png"), 9, 4, 4, Codec::Png);
    write_image(&root.join("a.png"), 1, 4, 4, Codec::Png);
    let mut source = open(&root, &root).await.unwrap();

    std::fs::remove_file(root.join("a.png")).unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.png"), root.join("a.png")).unwrap();
    match source.next_frame().await {
        Err(SourceError::Unavailable(msg)) => {
            assert!(msg.contains("outside the media roots"), "{msg}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(source.navigation().unwrap().thumbnails(0, 1, 8).is_err());
}
