#!/usr/bin/env bash
# Records which functions of the release server run at start-up and writes their symbol names
# to apps/server/startup-order.txt, which the server's build script hands to the linker so that
# they sit together in the binary (see apps/server/build.rs for why).
#
# The server runs under valgrind's callgrind (Debian package, installed when missing) twice with
# a fresh data directory: as `just bench-api` starts it (no demo project) until /health and a
# project list have answered, then as `just run` does (demo project live) for a few seconds.
# The first run's functions come first in the list, the second's after them.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v valgrind >/dev/null; then
    echo "installing valgrind (Debian package)"
    (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null
fi

cargo build -q --release -p visprompt-server
bin=target/release/visprompt-server
work=$(mktemp -d)
trap 'pkill -INT -f "callgrind.*$work" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# record NAME DEMO SECONDS: runs the server under callgrind until it answers, then SECONDS more.
record() {
    local name=$1 demo=$2 seconds=$3
    mkdir -p "$work/$name-data"
    HOST=127.0.0.1 PORT="$port" DB_DATA_DIR="$work/$name-data" LOG_LEVEL=warn \
        MEDIA_ROOTS="$work/$name-data" DEMO_PROJECT="$demo" \
        valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$name.out" \
        "$bin" >"$work/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 600); do
        curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        kill -0 $pid 2>/dev/null || { cat "$work/$name.log"; echo "the server exited"; exit 1; }
        sleep 0.5
    done
    curl -fsS "http://127.0.0.1:$port/api/v1/projects" >/dev/null
    sleep "$seconds"
    kill -INT $pid
    wait $pid || true
    echo "recorded $name"
}
record idle false 2
record demo true 10

nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $3 }' >"$work/symbols.txt"
python3 - "$work" apps/server/startup-order.txt <<'PY'
import re, sys
work, out = sys.argv[1], sys.argv[2]
defined = set(open(f"{work}/symbols.txt").read().split())

def executed(name):
    names = set()
    for line in open(f"{work}/{name}.out", errors="replace"):
        m = re.match(r"^c?fn=\(\d+\) (\S+)", line)
        if m and m.group(1) in defined:
            names.add(m.group(1))
    return names

idle = executed("idle")
demo = executed("demo") - idle
with open(out, "w") as f:
    f.write("\n".join(sorted(idle) + sorted(demo)) + "\n")
print(f"{out}: {len(idle)} start-up functions, then {len(demo)} more for the demo project")
PY
