#!/usr/bin/env bash
# Builds the browser UI into apps/ui/dist when its sources changed since the last build (or it was
# never built), installing its npm packages first when package-lock.json changed. `just run` and
# `just ui-build` call it, so the two-command promise holds on a fresh clone.
#
#   tools/ui/build.sh              build if stale
#   tools/ui/build.sh --force      build in any case
#   tools/ui/build.sh --deps-only  only install the npm packages (when the lock changed)
set -euo pipefail
cd "$(dirname "$0")/../../apps/ui"

if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing Node.js and npm (Debian packages) to build the browser UI"
        bash ../../tools/ci/install-node.sh
    else
        echo "error: npm is needed to build the browser UI (Debian: sudo apt-get install nodejs npm)" >&2
        exit 1
    fi
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "==> npm ci (apps/ui)"
    npm ci --no-audit --no-fund --loglevel=error
fi

if [ "${1:-}" = "--deps-only" ]; then
    exit 0
fi

stale=false
if [ "${1:-}" = "--force" ] || [ ! -f dist/index.html ]; then
    stale=true
elif [ -n "$(find src index.html vite.config.ts tsconfig.json package-lock.json ../../openapi/openapi.json \
        -newer dist/index.html -print -quit 2>/dev/null)" ]; then
    stale=true
fi
if $stale; then
    echo "==> building the browser UI (apps/ui/dist)"
    npm run --silent build
fi
