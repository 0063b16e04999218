//! Writes the frames `just bench-algorithms` times (tools/bench-algorithms), so that other
//! programs can be timed on exactly the same input (tools/parity/bench_reference.py):
//!
//!     <dir>/reference.png       frame 0 of the default `SyntheticScene` (640x480), the image fitted on
//!     <dir>/reference_mask.png  8-bit grey 0/255: the first object of frame 0's ground truth
//!     <dir>/target.png          frame 25, the frame predicted on
//!
//! Usage: `cargo run -p visprompt-media --example bench_frames -- <dir>`

use std::path::PathBuf;

use image::{GrayImage, RgbImage};
use visprompt_media::SyntheticScene;

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: bench_frames <output folder>"),
    );
    std::fs::create_dir_all(&dir).expect("create the output folder");
    // The same calls as tools/bench-algorithms/src/main.rs `child`.
    let scene = SyntheticScene::default();
    let reference = scene.render(0);
    let truth = scene.ground_truth(0);
    let target = scene.render(25);
    let (kind, mask) = &truth[0];
    let grey: Vec<u8> = mask
        .as_bytes()
        .iter()
        .map(|&v| if v != 0 { 255 } else { 0 })
        .collect();
    let grey = GrayImage::from_raw(mask.width(), mask.height(), grey).expect("a mask-sized buffer");
    let rgb = |frame: &visprompt_runtime::RgbImage| {
        RgbImage::from_raw(frame.width(), frame.height(), frame.as_raw().to_vec())
            .expect("a frame-sized buffer")
    };
    rgb(&reference)
        .save(dir.join("reference.png"))
        .expect("write reference.png");
    grey.save(dir.join("reference_mask.png"))
        .expect("write reference_mask.png");
    rgb(&target)
        .save(dir.join("target.png"))
        .expect("write target.png");
    println!(
        "{}: reference frame 0 ({}, {} px), target frame 25, {}x{}",
        dir.display(),
        kind.name(),
        mask.as_bytes().iter().filter(|&&v| v != 0).count(),
        reference.width(),
        reference.height()
    );
}
