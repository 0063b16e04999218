#!/usr/bin/env bash
# Chromium, the real browser of the tests that open the live view as users do (headless, e.g. a
# relay-only viewer through TURN over TCP). Idempotent: does nothing when it is installed.
set -euo pipefail

if ! command -v chromium >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
