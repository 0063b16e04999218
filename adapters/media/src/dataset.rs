//! The sample datasets built into the program, so a new installation has something to show
//! without any media of its own. A dataset behaves like an images folder (manual navigation).
//! The frames are PNGs rendered by `examples/make_sample_dataset.rs` (see
//! `tools/make-sample-dataset.sh`) and embedded at compile time; nothing is read from disk.

use uuid::Uuid;
use visprompt_runtime::SourceError;

use crate::folder::{ImagesFolderSource, Still};

/// A bundled dataset: a fixed id, a name, and its frames in order.
#[derive(Debug)]
pub struct SampleDataset {
    pub id: Uuid,
    pub name: &'static str,
    frames: &'static [(&'static str, &'static [u8])],
}

impl SampleDataset {
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

macro_rules! frames {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_bytes!(concat!("../assets/sample/", $dir, "/", $file)))),+]
    };
}

/// Every bundled dataset; the first one is what `dataset_id: None` opens.
/// Ids are fixed forever: stored source configurations refer to them.
pub static SAMPLE_DATASETS: [SampleDataset; 1] = [SampleDataset {
    id: Uuid::from_u128(0x5a3f_1e2d_0c4b_4a69_8d7e_6f50_4132_0001),
    name: "shapes",
    frames: frames!("shapes":
        "frame_00.png", "frame_01.png", "frame_02.png", "frame_03.png",
        "frame_04.png", "frame_05.png", "frame_06.png", "frame_07.png",
    ),
}];

/// Opens the dataset with `id`, or the first one for `None`.
/// Returns `Unavailable` naming the id when no bundled dataset has it.
pub fn open_sample_dataset(id: Option<Uuid>) -> Result<ImagesFolderSource, SourceError> {
    let dataset = match id {
        None => &SAMPLE_DATASETS[0],
        Some(id) => SAMPLE_DATASETS
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| SourceError::Unavailable(format!("no sample dataset has id {id}")))?,
    };
    let stills = dataset
        .frames
        .iter()
        .map(|&(name, bytes)| Still::Embedded { name, bytes })
        .collect();
    Ok(ImagesFolderSource::from_stills(
        format!("sample dataset {}", dataset.name),
        stills,
    ))
}
