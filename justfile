# Every routine command of visprompt. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Start the server with its embedded defaults (on-disk database under ./.data).
run *ARGS:
    cargo run --release -p visprompt-server -- {{ARGS}}

# Every test: unit, integration (embedded and remote database), API, OpenAPI drift, contract fuzzing.
test: build-test-tools
    cargo test --workspace --all-targets
    just fuzz-api

# The SurrealDB server binary that the remote-mode store tests start.
build-test-tools:
    cargo build -p visprompt-surrealdb-server

# Regenerate the checked-in OpenAPI document.
openapi:
    cargo run -q -p visprompt-server -- openapi > openapi/openapi.json

# Contract fuzzing: schemathesis with all its checks against the running server.
fuzz-api EXAMPLES="60":
    tools/fuzz/run.sh {{EXAMPLES}}

# Start-up time, idle memory and throughput of the API (release build, wrk).
bench-api:
    tools/bench/api.sh

# Frames/s and per-stage latency of the live pipeline (release): classical and pass-through
# detectors, each against the same detector in a bare loop. SECONDS per run.
bench-pipeline SECONDS="5":
    cargo run -q --release -p visprompt-bench-pipeline -- {{SECONDS}}

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
