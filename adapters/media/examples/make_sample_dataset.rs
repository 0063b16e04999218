//! Renders the bundled sample dataset ("shapes": eight 320x240 PNG frames of coloured shapes
//! moving over a textured background) into `adapters/media/assets/sample/shapes/`.
//! The frames are checked in; run this (through `tools/make-sample-dataset.sh`) only to change
//! them. Everything is drawn here from arithmetic, so the images carry no outside copyright.

use std::path::PathBuf;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FRAMES: u32 = 8;

/// The background: a soft gradient under a coarse checkerboard, textured enough for a detector to
/// tell it from the shapes, smooth enough to compress well.
fn background(x: u32, y: u32) -> [u8; 3] {
    let checker = if ((x / 20) + (y / 20)).is_multiple_of(2) {
        12
    } else {
        0
    };
    let g = (x * 40 / WIDTH + y * 40 / HEIGHT) as u8;
    [
        90 + g / 2 + checker,
        110 + g / 2 + checker,
        100 + g + checker,
    ]
}

fn main() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/sample/shapes");
    std::fs::create_dir_all(&out).expect("create the output folder");
    for t in 0..FRAMES {
        let t = t as i32;
        // Two red discs and one blue square, each moving along its own straight line.
        let discs = [(60 + 20 * t, 80, 24), (250 - 12 * t, 170 - 6 * t, 18)];
        let square = (140 + 6 * t, 40 + 10 * t, 40);
        let img = image::RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
            let (xi, yi) = (x as i32, y as i32);
            let in_disc = discs.iter().any(|&(cx, cy, r)| {
                let (dx, dy) = (xi - cx, yi - cy);
                dx * dx + dy * dy <= r * r
            });
            let (sx, sy, side) = square;
            let in_square = xi >= sx && xi < sx + side && yi >= sy && yi < sy + side;
            if in_disc {
                image::Rgb([210, 40, 40])
            } else if in_square {
                image::Rgb([40, 60, 200])
            } else {
                image::Rgb(background(x, y))
            }
        });
        let path = out.join(format!("frame_{t:02}.png"));
        img.save(&path).expect("write a frame");
        println!("{}", path.display());
    }
}
