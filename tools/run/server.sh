#!/usr/bin/env bash
# `just run [key=value...] [NAME=value...] [server args...]`: the release server with its embedded
# defaults, plus the WebRTC networking of docs/deployment.md:
#
#   webrtc-advertise-ip=IP    address written into our ICE host candidates (NAT 1:1)
#   enable-stun=true          discover the public address through public STUN servers
#   stun-urls=URL[,URL]       other STUN servers for enable-stun
#   enable-coturn=true        relay through the coturn of `just run-coturn` (TURN over TCP)
#   coturn-port=PORT          its port (443)
#   coturn-host=HOST          its address as browsers reach it (default: the advertise IP, else
#                             this machine's outbound address)
#   coturn-user=USER:PASSWORD static TURN credentials instead of TURN REST ones
#   coturn-secret=SECRET      TURN REST shared secret (default TURN_SHARED_SECRET, else the
#                             generated .data/coturn/turn-secret that `just run-coturn` uses too)
#   webrtc-ports=MIN-MAX      UDP media ports (50000-50050)
#   dry-run=true              print the environment and command, start nothing
#
# NAME=value arguments (upper case) are set in the server's environment (HOST=0.0.0.0, ...);
# anything else is passed to the server binary (`just run openapi`).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tools/run/common.sh
source tools/run/common.sh

parse_args "${WEBRTC_KEYS[@]}" dry-run -- "$@"
build_webrtc_env ""

shown=()
for name in "${WEBRTC_ENV_NAMES[@]}"; do
    shown+=("$(sh_assignment "$name=$(shown_value "$name")")")
done
for assignment in ${ENV_ASSIGN[@]+"${ENV_ASSIGN[@]}"}; do
    export "${assignment?}"
    shown+=("$(sh_assignment "$assignment")")
done
command=(cargo run --release -p visprompt-server -- ${PASS[@]+"${PASS[@]}"})
note "${shown[*]} ${command[*]}"

if flag dry-run; then
    exit 0
fi
# The browser UI the server serves at / (built only when its sources changed). Without it the
# API still runs, and / says how to build the UI.
if ! tools/ui/build.sh; then
    note "the browser UI could not be built (see above); starting the API without it"
fi
exec "${command[@]}"
