#!/usr/bin/env bash
# API benchmark: cold start to a healthy /health, idle RSS, and wrk (2 threads, 32 connections,
# 20 s) on GET /health and on GET /api/v1/projects with 3 projects. Release build, on-disk
# database in a fresh directory. Prints the figures and their ratios to the reference system's,
# measured on the same machine kind (figures in the issue that asked for this benchmark).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)"
    (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
duration="${BENCH_DURATION:-20s}"

cargo build -q --release -p visprompt-server
bin=target/release/visprompt-server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
base="http://127.0.0.1:$port"

start=$(date +%s%N)
# No demo project: its live pipeline would share the two cores with the server under test.
HOST=127.0.0.1 PORT="$port" DB_DATA_DIR="$data" LOG_LEVEL=warn MEDIA_ROOTS="$data" DEMO_PROJECT=false "$bin" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
until curl -fsS "$base/health" >/dev/null 2>&1; do
    kill -0 $server 2>/dev/null || { echo "the server exited"; exit 1; }
    sleep 0.005
done
ready=$(date +%s%N)
start_ms=$(( (ready - start) / 1000000 ))

sleep 2
rss_kb=$(awk '/VmRSS/ { print $2 }' "/proc/$server/status")
anon_kb=$(awk '/RssAnon/ { print $2 }' "/proc/$server/status")
# How much of the start-up layout (apps/server/build.rs) this binary got: names the list gives
# that the binary defines. Few matches mean the list is stale: `just startup-order`.
listed=$(grep -c . apps/server/startup-order.txt || true)
matched=$(nm --defined-only "$bin" | awk '{ print $3 }' | sort -u \
    | comm -12 - <(sort -u apps/server/startup-order.txt) | wc -l)

for name in alpha beta gamma; do
    curl -fsS -o /dev/null -X POST "$base/api/v1/projects" -H 'content-type: application/json' \
        -d "{\"name\": \"$name\"}"
done

run_wrk() {
    wrk -t2 -c32 -d"$duration" --latency "$1" > "$data/wrk.txt"
    local rps p99
    rps=$(awk '/Requests\/sec/ { print $2 }' "$data/wrk.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$data/wrk.txt")
    local errors
    errors=$(awk '/Non-2xx/ { print $NF }' "$data/wrk.txt")
    [ -z "$errors" ] || { echo "non-2xx responses during $1: $errors"; exit 1; }
    echo "$rps $p99"
}
read -r health_rps health_p99 < <(run_wrk "$base/health")
read -r list_rps list_p99 < <(run_wrk "$base/api/v1/projects")

python3 - "$start_ms" "$rss_kb" "$health_rps" "$health_p99" "$list_rps" "$list_p99" "$anon_kb" "$matched" "$listed" <<'PY'
import sys
start_ms, rss_kb = int(sys.argv[1]), int(sys.argv[2])
h_rps, h_p99, l_rps, l_p99 = float(sys.argv[3]), sys.argv[4], float(sys.argv[5]), sys.argv[6]
anon_kb, matched, listed = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])

def ms(text):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * f
    return float(text)

rows = [
    ("cold start to healthy /health", f"{start_ms / 1000:.3f} s", "17.9 s", 17900 / start_ms, "<= 0.5 s"),
    ("idle RSS", f"{rss_kb / 1024:.1f} MB", "980 MB", 980 * 1024 / rss_kb, "<= 50 MB"),
    ("GET /health req/s", f"{h_rps:,.0f}", "1,179", h_rps / 1179, ">= 20x"),
    ("GET /health p99", f"{ms(h_p99):.2f} ms", "312 ms", 312 / ms(h_p99), "<= 10 ms"),
    ("GET /api/v1/projects req/s (3 projects)", f"{l_rps:,.0f}", "341", l_rps / 341, ">= 20x"),
    ("GET /api/v1/projects p99", f"{ms(l_p99):.2f} ms", "192 ms", 192 / ms(l_p99), "<= 10 ms"),
]
print(f"{'measure':42} {'visprompt':>12} {'reference':>10} {'better by':>10}  target")
for name, ours, ref, ratio, target in rows:
    print(f"{name:42} {ours:>12} {ref:>10} {ratio:>9.1f}x  {target}")
print(f"idle RSS: {anon_kb / 1024:.1f} MB anonymous, {(rss_kb - anon_kb) / 1024:.1f} MB mapped from files")
print(f"start-up layout: {matched} of the {listed} functions in apps/server/startup-order.txt are in this binary")
PY
