#!/usr/bin/env bash
# Node.js and npm, which build and test the browser UI (apps/ui). Idempotent: does nothing when
# npm is there. Debian's packages are recent enough (Vite 5 needs Node 18 or newer).
set -euo pipefail

if ! command -v npm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
