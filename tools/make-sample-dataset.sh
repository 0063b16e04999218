#!/usr/bin/env bash
# Regenerates the bundled sample dataset (adapters/media/assets/sample/) from its generator,
# adapters/media/examples/make_sample_dataset.rs: renders of the synthetic scene. The frames are
# checked in; CI does not run this, but adapters/media/tests/dataset.rs fails when the checked-in
# frames no longer match the scene (rerun this after changing it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -p visprompt-media --example make_sample_dataset
