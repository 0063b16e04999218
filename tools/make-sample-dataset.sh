#!/usr/bin/env bash
# Regenerates the bundled sample dataset (adapters/media/assets/sample/) from its generator,
# adapters/media/examples/make_sample_dataset.rs. The frames are checked in; CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -p visprompt-media --example make_sample_dataset
