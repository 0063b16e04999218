//! The video-file source on real H.264 MP4 files: one encoded here by OpenH264 and muxed by the
//! `mp4` crate from frames whose content is known exactly, and one written by x264 and
//! GStreamer's mp4mux (High profile, B-frames) checked in under `tests/fixtures/`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{assert_smpte_bars, near};
use mp4::{
    AvcConfig, FourCC, MediaConfig, Mp4Config, Mp4Sample, Mp4Writer, TrackConfig, TrackType,
};
use openh264::OpenH264API;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, IntraFramePeriod};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use visprompt_domain::{MediaRoots, SourceConfig};
use visprompt_media::{MediaSourceFactory, VideoFileSource, VideoOptions};
use visprompt_runtime::{FrameSource, RgbImage, SourceError, SourceFactory};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FRAMES: u32 = 30;
const KEY_EVERY: u32 = 10;
/// 25 frames a second, in a 1 kHz timescale.
const FRAME_MS: u32 = 40;

/// The left edge of the block in frame `i`: it moves 8 pixels a frame and wraps before it would
/// leave the frame (or leave no grey to its right).
fn block_x(i: u32) -> u32 {
    8 * (i % 34)
}

/// Frame `i`: red, green and blue bars over the top half, and a white 32x32 block on grey in the
/// bottom half whose left edge is at [`block_x`].
fn pattern(i: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((WIDTH * HEIGHT * 3) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let px = if y < HEIGHT / 2 {
                [[200, 30, 30], [30, 200, 30], [30, 30, 200]][(x * 3 / WIDTH) as usize]
            } else if (140..172).contains(&y) && (block_x(i)..block_x(i) + 32).contains(&x) {
                [240, 240, 240]
            } else {
                [110, 110, 110]
            };
            rgb.extend_from_slice(&px);
        }
    }
    rgb
}

/// NAL units of an Annex B stream without their start codes.
fn units(annex_b: &[u8]) -> Vec<Vec<u8>> {
    openh264::nal_units(annex_b)
        .map(|unit| {
            let body = unit.iter().position(|&b| b != 0).unwrap_or(unit.len());
            unit[body + 1..].to_vec()
        })
        .collect()
}

/// Encodes the pattern into an H.264 MP4 at `path`; the slice data of frame `damaged`, if any, is
/// overwritten with noise (its NAL headers and lengths stay intact, as in a damaged file).
fn write_pattern_video(path: &Path, damaged: Option<u32>) {
    write_video(path, FRAMES, KEY_EVERY, damaged);
}

/// [`write_pattern_video`] with `frames` frames and a key frame every `key_every`.
fn write_video(path: &Path, frames: u32, key_every: u32, damaged: Option<u32>) {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(3_000_000))
        .intra_frame_period(IntraFramePeriod::from_num_frames(key_every));
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
    let (mut sps, mut pps) = (None, None);
    let mut samples = Vec::new();
    for i in 0..frames {
        let rgb = pattern(i);
        let yuv =
            YUVBuffer::from_rgb8_source(RgbSliceU8::new(&rgb, (WIDTH as usize, HEIGHT as usize)));
        let stream = encoder.encode(&yuv).unwrap().to_vec();
        let mut sample = Vec::new();
        let mut is_sync = false;
        for unit in units(&stream) {
            match unit[0] & 0x1f {
                7 => sps = Some(unit),
                8 => pps = Some(unit),
                kind => {
                    is_sync |= kind == 5;
                    let mut unit = unit;
                    if damaged == Some(i) {
                        let mut x = 0x9e37_79b9_u32;
                        for byte in &mut unit[1..] {
                            x ^= x << 13;
                            x ^= x >> 17;
                            x ^= x << 5;
                            *byte = x as u8;
                        }
                    }
                    sample.extend_from_slice(&(unit.len() as u32).to_be_bytes());
                    sample.extend_from_slice(&unit);
                }
            }
        }
        samples.push((sample, is_sync));
    }
    assert_eq!(
        samples.iter().filter(|(_, sync)| *sync).count(),
        frames.div_ceil(key_every) as usize,
        "key frames"
    );

    let file = std::fs::File::create(path).unwrap();
    let brand = |s: &str| s.parse::<FourCC>().unwrap();
    let mut writer = Mp4Writer::write_start(
        file,
        &Mp4Config {
            major_brand: brand("isom"),
            minor_version: 512,
            compatible_brands: vec![brand("isom"), brand("avc1")],
            timescale: 1000,
        },
    )
    .unwrap();
    writer
        .add_track(&TrackConfig {
            track_type: TrackType::Video,
            timescale: 1000,
            language: "und".into(),
            media_conf: MediaConfig::AvcConfig(AvcConfig {
                width: WIDTH as u16,
                height: HEIGHT as u16,
                seq_param_set: sps.unwrap(),
                pic_param_set: pps.unwrap(),
            }),
        })
        .unwrap();
    for (i, (bytes, is_sync)) in samples.into_iter().enumerate() {
        writer
            .write_sample(
                1,
                &Mp4Sample {
                    start_time: u64::from(FRAME_MS) * i as u64,
                    duration: FRAME_MS,
                    rendering_offset: 0,
                    is_sync,
                    bytes: bytes.into(),
                },
            )
            .unwrap();
    }
    writer.write_end().unwrap();
}

/// Checks that `frame` is pattern frame `i`: its bars, and its block where it should be.
fn assert_is_pattern_frame(frame: &RgbImage, i: u32) {
    assert_eq!((frame.width(), frame.height()), (WIDTH, HEIGHT));
    for (x, bar) in [
        (50, [200, 30, 30]),
        (160, [30, 200, 30]),
        (270, [30, 30, 200]),
    ] {
        assert!(
            near(frame.pixel(x, 60), bar, 24),
            "frame {i}: bar at {x}: {:?}",
            frame.pixel(x, 60)
        );
    }
    let inside = frame.pixel(block_x(i) + 16, 156);
    assert!(
        near(inside, [240, 240, 240], 24),
        "frame {i}: block {inside:?}"
    );
    let beside = frame.pixel(block_x(i) + 48, 156);
    assert!(
        near(beside, [110, 110, 110], 24),
        "frame {i}: right of the block {beside:?}"
    );
}

fn pattern_video() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pattern.mp4");
    write_pattern_video(&path, None);
    (dir, path)
}

#[tokio::test]
async fn every_frame_decodes_to_the_pattern_in_order_then_the_video_ends() {
    let (_dir, path) = pattern_video();
    let mut source = VideoFileSource::open(&path, VideoOptions { looping: false }).unwrap();
    assert_eq!(source.navigation().unwrap().len(), FRAMES as usize);
    let started = Instant::now();
    for i in 0..FRAMES {
        let frame = source.next_frame().await.unwrap().expect("a frame");
        assert_is_pattern_frame(&frame, i);
    }
    // Paced at 25 frames a second: 30 frames take at least 29 frame intervals.
    assert!(started.elapsed() >= Duration::from_millis(u64::from(FRAME_MS) * 29 - 20));
    assert!(source.next_frame().await.unwrap().is_none());
    assert!(source.next_frame().await.unwrap().is_none());
}

/// Plays a video that does not loop to its end; damage must be skipped, never reported.
async fn play_to_the_end(source: &mut VideoFileSource) -> Vec<RgbImage> {
    let mut frames = Vec::new();
    while let Some(frame) = source
        .next_frame()
        .await
        .expect("damage is skipped, not reported")
    {
        frames.push(frame);
    }
    frames
}

/// Checks that `frames` are exactly the pattern frames `expected`, in order.
fn assert_frames(frames: &[RgbImage], expected: &[u32]) {
    assert_eq!(frames.len(), expected.len(), "frames {expected:?}");
    for (frame, &i) in frames.iter().zip(expected) {
        assert_is_pattern_frame(frame, i);
    }
}

#[tokio::test]
async fn a_damaged_frame_loses_the_rest_of_its_group_and_playback_goes_on_at_the_next_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.mp4");
    write_pattern_video(&path, Some(4));
    let mut source = VideoFileSource::open(&path, VideoOptions { looping: false }).unwrap();
    let frames = play_to_the_end(&mut source).await;
    // Frames 5 to 9 reference frame 4; the group ends at key frame 10.
    let expected: Vec<u32> = (0..4).chain(KEY_EVERY..FRAMES).collect();
    assert_frames(&frames, &expected);
    // Frames after the next key frame are whole again when sought, too.
    source.navigation().unwrap().seek(12).unwrap();
    assert_is_pattern_frame(&source.next_frame().await.unwrap().unwrap(), 12);
    // Thumbnails leave out the same frames rather than failing the page.
    let thumbs = source.navigation().unwrap().thumbnails(2, 10, 80).unwrap();
    let indices: Vec<usize> = thumbs.iter().map(|t| t.index).collect();
    assert_eq!(indices, [2, 3, 10, 11]);
}

#[tokio::test]
async fn damage_early_in_a_group_longer_than_the_skip_limit_is_passed_in_one_step() {
    // 115 frames depend on the damaged one, more than the number of skips in a row that count as
    // a file damaged throughout.
    let (frames, key_every) = (130, 120);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long-group.mp4");
    write_video(&path, frames, key_every, Some(4));
    let mut source = VideoFileSource::open(&path, VideoOptions { looping: false }).unwrap();
    let played = play_to_the_end(&mut source).await;
    let expected: Vec<u32> = (0..4).chain(key_every..frames).collect();
    assert_frames(&played, &expected);
}

#[tokio::test]
async fn a_looping_video_starts_again_after_its_last_frame() {
    let (_dir, path) = pattern_video();
    let mut source = VideoFileSource::open(&path, VideoOptions::default()).unwrap();
    source
        .navigation()
        .unwrap()
        .seek(FRAMES as usize - 2)
        .unwrap();
    for i in [FRAMES - 2, FRAMES - 1, 0, 1] {
        let frame = source
            .next_frame()
            .await
            .unwrap()
            .expect("a looping video never ends");
        assert_is_pattern_frame(&frame, i);
    }
}

#[tokio::test]
async fn a_seek_decodes_from_the_preceding_key_frame() {
    let (_dir, path) = pattern_video();
    let mut source = VideoFileSource::open(&path, VideoOptions::default()).unwrap();
    // Between key frames, on a key frame, backwards, and out of range.
    for i in [17, 20, 3, 29, 0] {
        source.navigation().unwrap().seek(i as usize).unwrap();
        assert_eq!(source.navigation().unwrap().position(), i as usize);
        let frame = source.next_frame().await.unwrap().unwrap();
        assert_is_pattern_frame(&frame, i);
        assert_eq!(
            source.navigation().unwrap().position(),
            (i as usize + 1) % FRAMES as usize
        );
    }
    match source.navigation().unwrap().seek(FRAMES as usize) {
        Err(SourceError::OutOfRange { index: 30, len: 30 }) => {}
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    let thumbs = source.navigation().unwrap().thumbnails(12, 2, 80).unwrap();
    assert_eq!(thumbs.len(), 2);
    assert_eq!(
        (thumbs[0].image.width(), thumbs[0].image.height()),
        (80, 60)
    );
    // The block of frame 13 sits at x = 104..136, a quarter of that in the thumbnail.
    assert!(near(thumbs[1].image.pixel(30, 39), [240, 240, 240], 40));
}

#[tokio::test]
async fn a_video_from_x264_and_mp4mux_decodes_to_colour_bars() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smpte-high.mp4");
    let mut source = VideoFileSource::open(&path, VideoOptions { looping: false }).unwrap();
    assert_eq!(source.navigation().unwrap().len(), 30);
    let mut frames = 0;
    while let Some(frame) = source.next_frame().await.unwrap() {
        assert_smpte_bars(&frame, 16);
        frames += 1;
    }
    assert_eq!(frames, 30);
}

#[tokio::test(start_paused = true)]
async fn the_factory_honours_the_stored_looping_setting() {
    let (dir, path) = pattern_video();
    let factory = MediaSourceFactory::new(MediaRoots::new(vec![dir.path().to_path_buf()]).unwrap());
    for looping in [false, true] {
        let config = SourceConfig::VideoFile {
            video_path: path.display().to_string(),
            looping,
        };
        let mut source = factory.open(&config).await.unwrap();
        let mut frames = 0;
        while frames < 2 * FRAMES {
            match source.next_frame().await.unwrap() {
                Some(_) => frames += 1,
                None => break,
            }
        }
        let expected = if looping { 2 * FRAMES } else { FRAMES };
        assert_eq!(frames, expected, "looping {looping}");
    }
}

#[tokio::test]
async fn the_factory_opens_videos_inside_the_roots_and_names_bad_ones() {
    let (dir, path) = pattern_video();
    let factory = MediaSourceFactory::new(MediaRoots::new(vec![dir.path().to_path_buf()]).unwrap());
    let open = |p: &Path| {
        let config = SourceConfig::VideoFile {
            video_path: p.display().to_string(),
            looping: true,
        };
        let factory = factory.clone();
        async move { factory.open(&config).await }
    };
    let mut source = open(&path).await.unwrap();
    assert_is_pattern_frame(&source.next_frame().await.unwrap().unwrap(), 0);

    let not_video = dir.path().join("notes.mp4");
    std::fs::write(&not_video, b"this is not an MP4 file at all").unwrap();
    for bad in [not_video, dir.path().join("missing.mp4")] {
        match open(&bad).await {
            Err(SourceError::Unavailable(msg)) => {
                assert!(msg.contains(&bad.display().to_string()), "{msg}")
            }
            Err(other) => panic!("expected Unavailable, got {other:?}"),
            Ok(_) => panic!("{} opened", bad.display()),
        }
    }
    let outside = tempfile::tempdir().unwrap();
    let elsewhere = outside.path().join("pattern.mp4");
    std::fs::copy(&path, &elsewhere).unwrap();
    match open(&elsewhere).await {
        Err(SourceError::Unavailable(msg)) => {
            assert!(msg.contains("outside the media roots"), "{msg}")
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("a video outside the roots opened"),
    }
}

/// The offset of the box at `path` (such as `moov/trak/mdia/mdhd`) in an MP4 file, found by
/// walking the box tree, so that patches land on the field they mean and never in frame data.
fn find_box(data: &[u8], path: &[&[u8; 4]]) -> usize {
    let (mut start, mut end, mut found) = (0, data.len(), 0);
    for name in path {
        let mut at = start;
        loop {
            assert!(at + 8 <= end, "no {} box", String::from_utf8_lossy(*name));
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            assert!(size >= 8, "a box of {size} bytes");
            if &data[at + 4..at + 8] == *name {
                (found, start, end) = (at, at + 8, at + size);
                break;
            }
            at += size;
        }
    }
    found
}

const STBL: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

fn put_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// The pattern video with `patch` applied to its bytes, written next to the original.
fn patched_video(patch: impl FnOnce(&mut Vec<u8>)) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path) = pattern_video();
    let mut data = std::fs::read(&path).unwrap();
    patch(&mut data);
    let patched = dir.path().join("patched.mp4");
    std::fs::write(&patched, data).unwrap();
    (dir, patched)
}

/// Renames the sync-sample table so that readers skip it: every sample is then a key frame.
fn drop_sync_table(data: &mut [u8]) {
    let stss = find_box(data, &[STBL.as_slice(), &[b"stss"]].concat());
    data[stss + 4..stss + 8].copy_from_slice(b"free");
}

#[tokio::test]
async fn a_sample_count_the_file_cannot_hold_is_refused_before_anything_is_sized_by_it() {
    let (_dir, original) = pattern_video();
    let file_len = std::fs::metadata(&original).unwrap().len() as u32;
    // A count just beyond the file, and the largest a table can claim; without a sync table a
    // list of every sample would take 32 GiB for the latter.
    for (sample_size, count) in [(1, file_len * 10), (1000, u32::MAX)] {
        let (_dir, path) = patched_video(|data| {
            let stsz = find_box(data, &[STBL.as_slice(), &[b"stsz"]].concat());
            put_u32(data, stsz + 12, sample_size);
            put_u32(data, stsz + 16, count);
            drop_sync_table(data);
        });
        match VideoFileSource::open(&path, VideoOptions::default()) {
            Err(SourceError::Corrupt(msg)) => {
                assert!(msg.contains("cannot fit"), "{msg}");
                assert!(msg.contains("patched.mp4"), "{msg}");
            }
            other => panic!("expected Corrupt for {count} samples, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_zero_timescale_is_refused_not_divided_by() {
    let (_dir, path) = patched_video(|data| {
        let mdhd = find_box(data, &[b"moov", b"trak", b"mdia", b"mdhd"]);
        assert_eq!(data[mdhd + 8], 0, "a version 0 mdhd");
        // Version 0: header, version and flags, creation and modification times, timescale.
        put_u32(data, mdhd + 20, 0);
    });
    match VideoFileSource::open(&path, VideoOptions::default()) {
        Err(SourceError::Corrupt(msg)) => assert!(msg.contains("timescale"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_fragmented_file_is_refused_as_unsupported() {
    // A movie fragment for track 1 whose one sample claims 1.75 GiB: the sample tables checked
    // at open say nothing about it, so it must not be read at all.
    let mut moof = Vec::new();
    let mfhd = [
        &16u32.to_be_bytes()[..],
        b"mfhd",
        &[0; 4],
        &1u32.to_be_bytes(),
    ]
    .concat();
    let tfhd = [
        &16u32.to_be_bytes()[..],
        b"tfhd",
        &[0; 4],
        &1u32.to_be_bytes(),
    ]
    .concat();
    // Flags 0x200: every sample has its size.
    let trun = [
        &20u32.to_be_bytes()[..],
        b"trun",
        &[0, 0, 2, 0],
        &1u32.to_be_bytes(),
        &0x7000_0000u32.to_be_bytes(),
    ]
    .concat();
    let traf_len = 8 + tfhd.len() + trun.len();
    let traf = [&(traf_len as u32).to_be_bytes()[..], b"traf", &tfhd, &trun].concat();
    moof.extend_from_slice(&((8 + mfhd.len() + traf.len()) as u32).to_be_bytes());
    moof.extend_from_slice(b"moof");
    moof.extend_from_slice(&mfhd);
    moof.extend_from_slice(&traf);
    let (_dir, path) = patched_video(|data| data.extend_from_slice(&moof));
    match VideoFileSource::open(&path, VideoOptions::default()) {
        Err(SourceError::Unsupported(msg)) => assert!(msg.contains("fragmented"), "{msg}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_without_a_sync_table_plays_every_frame() {
    let (_dir, path) = patched_video(|data| drop_sync_table(data));
    let mut source = VideoFileSource::open(&path, VideoOptions { looping: false }).unwrap();
    for i in 0..FRAMES {
        assert_is_pattern_frame(&source.next_frame().await.unwrap().unwrap(), i);
    }
    assert!(source.next_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn thumbnails_come_from_the_file_that_was_opened_even_after_its_path_changes() {
    let (dir, path) = pattern_video();
    let mut source = VideoFileSource::open(&path, VideoOptions::default()).unwrap();
    // The path now leads to another video; the one checked against the media roots at open
    // time is still the one read.
    let other = dir.path().join("other.mp4");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smpte-high.mp4"),
        &other,
    )
    .unwrap();
    std::fs::rename(&other, &path).unwrap();
    let thumbs = source
        .navigation()
        .unwrap()
        .thumbnails(0, 2, WIDTH)
        .unwrap();
    assert_eq!(thumbs.len(), 2);
    assert_is_pattern_frame(&thumbs[0].image, 0);
    assert_is_pattern_frame(&thumbs[1].image, 1);
}
