//! Segmenter rows of `just bench-models` (SAM-HQ tiny image encoder at 1024 px, its decoder on a
//! batch of 40 point prompts). A placeholder until the segmenter benchmark lands: it reports
//! that those rows are not measured yet.

use crate::{Context, Row};

/// The segmenter rows.
pub(crate) fn run(_ctx: &Context) -> Vec<Row> {
    vec![Row {
        name: "SAM-HQ tiny".into(),
        precision: "-".into(),
        ours_ms: None,
        torch_ms: None,
        gflop: 0.0,
        max_abs_err: None,
        note: "segmenter benchmark not built yet".into(),
    }]
}
