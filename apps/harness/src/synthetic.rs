//! A synthetic dataset in PerSeg layout: one class per object kind of the built-in synthetic
//! scene (textured shapes), each image a frame of a scene with its own seed (so backgrounds and
//! positions vary), each mask the exact pixels of that class's object.

use std::path::Path;

use visprompt_media::SyntheticScene;

/// Writes `images_per_class` images per class under `root` (`Images/<class>/<n>.png`,
/// `Annotations/<class>/<n>.png`); `seed` makes it reproducible.
pub fn write_synthetic(
    root: &Path,
    images_per_class: usize,
    (width, height): (u32, u32),
    seed: u64,
) -> std::io::Result<()> {
    let probe = SyntheticScene::new(width, height, seed);
    for &kind in probe.kinds() {
        let class = kind.name().replace(' ', "_");
        let images = root.join("Images").join(&class);
        let masks = root.join("Annotations").join(&class);
        std::fs::create_dir_all(&images)?;
        std::fs::create_dir_all(&masks)?;
        for n in 0..images_per_class {
            let scene = SyntheticScene::new(width, height, seed.wrapping_add(1 + n as u64 * 7919));
            // A different moment of each scene: the objects sit elsewhere.
            let t = (n as u64 * 37) % 240;
            let frame = scene.render(t);
            let truth = scene.ground_truth(t);
            let mask = &truth
                .iter()
                .find(|(k, _)| *k == kind)
                .expect("every kind is drawn")
                .1;
            let img = image::RgbImage::from_raw(width, height, frame.as_raw().to_vec())
                .expect("a frame of the stated size");
            img.save(images.join(format!("{n}.png")))
                .map_err(std::io::Error::other)?;
            let m = image::GrayImage::from_fn(width, height, |x, y| {
                image::Luma([if mask.get(x, y) { 255 } else { 0 }])
            });
            m.save(masks.join(format!("{n}.png")))
                .map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::{Dataset, Layout};

    #[test]
    fn the_synthetic_dataset_reads_back_with_exact_non_empty_masks() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(dir.path(), 3, (96, 64), 5).unwrap();
        let d = Dataset::open(dir.path()).unwrap();
        assert_eq!(d.layout, Layout::PerSeg);
        assert_eq!(d.classes.len(), 3);
        for class in &d.classes {
            assert_eq!(class.samples.len(), 3);
            for s in &class.samples {
                let img = image::open(&s.image).unwrap();
                let mask = s.mask.load().unwrap();
                assert_eq!((img.width(), img.height()), (96, 64));
                assert_eq!((mask.width(), mask.height()), (96, 64));
                let set = mask.area();
                assert!(
                    set > 0 && set < 96 * 64,
                    "{}: {set} mask pixels",
                    s.mask.describe()
                );
            }
        }
        // The same seed writes the same dataset.
        let again = tempfile::tempdir().unwrap();
        write_synthetic(again.path(), 3, (96, 64), 5).unwrap();
        let a = std::fs::read(dir.path().join("Images/striped_disc/2.png")).unwrap();
        let b = std::fs::read(again.path().join("Images/striped_disc/2.png")).unwrap();
        assert_eq!(a, b);
    }
}
