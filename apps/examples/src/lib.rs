//! visprompt as a library, in programs of one's own. The examples are the content:
//!
//! - `cargo run --example detect_synthetic [-- FRAMES]`: the synthetic scene as source, the
//!   classical detector fitted from one reference image and its mask, and a callback sink that
//!   prints each frame's detections.
//! - `cargo run --example serve_results [-- SECONDS [PORT]]`: the same pipeline, its results
//!   served over HTTP (`GET /latest`) by a sink written for the purpose.
//!
//! Both build the pipeline with `visprompt_runtime::embedded::LivePipeline` (see that crate's
//! docs); `tests/examples.rs` runs them.
