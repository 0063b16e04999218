# Every routine command of visprompt. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# WebRTC networking as in docs/deployment.md. Each can be given before the recipe, as in
# `just webrtc-advertise-ip=203.0.113.10 run-image`, or after it, as in
# `just run enable-stun=true`; empty means not given.
webrtc-advertise-ip := ""
enable-stun := ""
enable-coturn := ""
coturn-port := ""
webrtc-ports := ""
# The container image of build-image and run-image.
image := "visprompt:latest"

_webrtc-args := trim(
    (if webrtc-advertise-ip != "" { "webrtc-advertise-ip=" + quote(webrtc-advertise-ip) + " " } else { "" }) +
    (if enable-stun != "" { "enable-stun=" + quote(enable-stun) + " " } else { "" }) +
    (if enable-coturn != "" { "enable-coturn=" + quote(enable-coturn) + " " } else { "" }) +
    (if coturn-port != "" { "coturn-port=" + quote(coturn-port) + " " } else { "" }) +
    (if webrtc-ports != "" { "webrtc-ports=" + quote(webrtc-ports) } else { "" })
)

# Optional webrtc-advertise-ip=IP, enable-stun=true, enable-coturn=true, webrtc-ports=MIN-MAX,
# dry-run=true (tools/run/server.sh lists all); NAME=value sets a variable; other arguments go to
# the server binary.
[doc("Start the server with its embedded defaults (on-disk database under ./.data); WebRTC key=value options as in docs/deployment.md.")]
run *ARGS:
    tools/run/server.sh {{ trim(_webrtc-args + " " + ARGS) }}

# TURN REST credentials (the shared secret that `run enable-coturn=true` uses too) unless
# coturn-user=USER:PASSWORD; tools/coturn/run.sh lists all options.
[doc("A local coturn TURN server, TCP only, on coturn-port (443), in the foreground.")]
run-coturn *ARGS:
    tools/coturn/run.sh {{ trim((if coturn-port != "" { "coturn-port=" + quote(coturn-port) + " " } else { "" }) + ARGS) }}

# The container image (needs a Docker engine with BuildKit); extra ARGS go to `docker build`.
build-image *ARGS:
    docker build {{ARGS}} -t {{image}} .

# Same WebRTC arguments as `run`; without webrtc-advertise-ip or enable-stun=true the machine's
# outbound address is advertised. tools/run/image.sh lists all options.
[doc("Run the image: -p 9100:9100 and the UDP media range one to one, data in a volume.")]
run-image *ARGS:
    tools/run/image.sh {{ trim("image=" + quote(image) + " " + trim(_webrtc-args + " " + ARGS)) }}

# Every test: unit, integration (embedded and remote database), API, OpenAPI drift, examples,
# doc tests, the UI's client drift check, type check and Vitest suite, the Playwright journey in
# Chromium, contract fuzzing.
[doc("Every test: Rust (unit, integration, API, doc tests, examples), the UI's Vitest and Playwright suites, contract fuzzing.")]
test: build-test-tools
    # The architecture test reads the whole dependency graph offline (`cargo metadata`), which
    # needs every platform's packages in the cache, not only those this machine's build compiles.
    cargo fetch --locked
    # Every package's library, binaries and integration tests, doc tests, and the examples built
    # as programs (tests/examples.rs runs them; `--all-targets` would build them as test harnesses).
    cargo test --workspace
    just ui-test
    just _e2e-run
    just fuzz-api

# The SurrealDB server binary that the remote-mode store tests start.
build-test-tools:
    cargo build -p visprompt-surrealdb-server

# Regenerate the checked-in OpenAPI document and the UI's typed client generated from it.
openapi:
    cargo run -q -p visprompt-server -- openapi > openapi/openapi.json
    tools/ui/build.sh --deps-only
    cd apps/ui && npm run --silent generate

# The UI's checks: generated client up to date, types, Vitest.
ui-test:
    tools/ui/build.sh --deps-only
    cd apps/ui && npm run --silent check-client && npm run --silent typecheck && npm test

# The browser journey (Playwright + Debian's Chromium) against the debug server binary on a random
# port; screenshots under apps/ui/e2e-screenshots/.
[doc("The browser journey in Chromium against the real server; screenshots under apps/ui/e2e-screenshots/.")]
e2e:
    cargo build -q -p visprompt-server
    just _e2e-run

# The journey against target/debug/visprompt-server as it is (`just test` has just built it with
# the workspace's features; building it alone would resolve other features and recompile).
_e2e-run:
    tools/ci/install-chromium.sh
    tools/ui/build.sh --deps-only
    cd apps/ui && VISPROMPT_SERVER_BIN="$PWD/../../target/debug/visprompt-server" npm run --silent e2e

# Build the browser UI into apps/ui/dist (only when its sources changed; --force to rebuild).
ui-build *ARGS:
    tools/ui/build.sh {{ARGS}}

# Contract fuzzing: schemathesis with all its checks against the running server.
fuzz-api EXAMPLES="60":
    tools/fuzz/run.sh {{EXAMPLES}}

# Start-up time, idle memory and throughput of the API (release build, wrk).
bench-api:
    tools/bench/api.sh

# Records which functions the release server runs at start-up (valgrind) into
# apps/server/startup-order.txt, the linker's layout list (apps/server/build.rs). Run it after a
# toolchain or dependency upgrade, when `just bench-api` reports few matches.
startup-order:
    tools/startup-order/record.sh

# Frames/s and per-stage latency of the live pipeline (release): classical and pass-through
# detectors, each against the same detector in a bare loop. SECONDS per run.
[doc("Frames/s and per-stage latency of the live pipeline (release build); SECONDS per run.")]
bench-pipeline SECONDS="5":
    cargo run -q --release -p visprompt-bench-pipeline -- {{SECONDS}}

# DINOv3-S/16 @512 and DINOv2-S/14 @224 (and the SAM-HQ-tiny segmenter) in candle against
# PyTorch on the same random weights, f32 and reduced precision, as ratios (release, 2 threads).
# Needs the parity virtualenv: tools/parity/setup.sh (or PARITY_VENV / PARITY_PYTHON).
bench-models *WHICH:
    cargo run -q --release -p visprompt-bench-models -- {{WHICH}}

# Generates the synthetic dataset (if missing) and evaluates a model on it: mIoU, FB-IoU,
# precision/recall, latency; writes target/eval/report/{report.json,summary.md}.
# Extra arguments go to `visprompt-harness eval`, e.g. `just eval --model matcher --models-dir DIR`.
eval *ARGS:
    test -d target/eval/synthetic || cargo run -q -p visprompt-harness -- generate target/eval/synthetic --per-class 8
    cargo run -q -p visprompt-harness -- eval target/eval/synthetic --out target/eval/report {{ARGS}}

# Matcher, SoftMatcher and PerDINO frames and click-to-segment (release): per stage, peak memory,
# f32 and bf16, beside the reference library's figures. RUNS frames per configuration.
bench-algorithms RUNS="7":
    cargo run -q --release -p visprompt-bench-algorithms -- {{RUNS}}

# The WebRTC live view (release): overlay + H.264 encode speed at 640x480 and 1280x720, and
# capture-to-decoded latency at a viewer peer over loopback. SECONDS per latency run.
bench-webrtc SECONDS="10":
    cargo run -q --release -p visprompt-bench-webrtc -- {{SECONDS}}

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
