//! Renders the bundled sample dataset ("shapes": eight 320x240 PNG frames) into
//! `adapters/media/assets/sample/shapes/`. The frames are the synthetic scene the detector is
//! tested on (`SyntheticScene`: textured shapes over a textured background), sampled at times far
//! enough apart that every frame shows the shapes somewhere new.
//! The frames are checked in; run this (through `tools/make-sample-dataset.sh`) only to change
//! them. Everything is computed, so the images carry no outside copyright.

use std::path::PathBuf;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use visprompt_media::SyntheticScene;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FRAMES: u64 = 8;
/// Fixed, so that regenerating gives the same frames.
const SEED: u64 = 2024;
/// Frames of the scene between two dataset frames: the shapes' paths take a radian in 20 to 50
/// frames, so 40 apart puts each shape well away from where it was.
const STEP: u64 = 40;
/// Half the scene's default sensor noise: noise is what a lossless PNG cannot compress, and at
/// the full amplitude the eight frames would pass 1 MB of program size; at half they take about
/// 830 kB and still look like a camera's rather than flat.
const NOISE: u8 = SyntheticScene::DEFAULT_NOISE / 2;

fn main() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/sample/shapes");
    std::fs::create_dir_all(&out).expect("create the output folder");
    let scene = SyntheticScene::new(WIDTH, HEIGHT, SEED).with_sensor_noise(NOISE, SEED);
    for k in 0..FRAMES {
        let frame = scene.render(k * STEP);
        let path = out.join(format!("frame_{k:02}.png"));
        let file = std::fs::File::create(&path).expect("create a frame file");
        // The frames are embedded in the program, so they get the strongest compression.
        let encoder = PngEncoder::new_with_quality(
            std::io::BufWriter::new(file),
            CompressionType::Best,
            FilterType::Adaptive,
        );
        encoder
            .write_image(frame.as_raw(), WIDTH, HEIGHT, ExtendedColorType::Rgb8)
            .expect("write a frame");
        println!("{}", path.display());
    }
}
