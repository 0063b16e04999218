#!/usr/bin/env bash
# `just run-image [key=value...] [NAME=value...] [server args...]`: the container image of
# `just build-image` with the port mappings of docs/deployment.md (HTTP 9100, UDP media range
# mapped one to one) and the same WebRTC arguments as `just run` (see tools/run/server.sh), plus
#
#   image=NAME[:TAG]       the image (visprompt:latest)
#   data-volume=VOLUME     named volume or host directory mounted at /data (visprompt-data)
#   http-port=PORT         host port for the HTTP API (9100)
#   dry-run=true           print the docker command, start nothing
#
# Without webrtc-advertise-ip and without enable-stun=true, the container advertises this
# machine's outbound address: its own (Docker bridge) address is unreachable for browsers.
# NAME=value arguments (upper case) are set in the container's environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tools/run/common.sh
source tools/run/common.sh

parse_args "${WEBRTC_KEYS[@]}" image data-volume http-port dry-run -- "$@"
build_webrtc_env "$(outbound_ip)"

image="${OPT[image]:-visprompt:latest}"
volume="${OPT[data-volume]:-visprompt-data}"
http_port="${OPT[http-port]:-9100}"
[[ "$http_port" =~ ^[0-9]+$ ]] || die "http-port must be a port number, not '$http_port'"
ports="$WEBRTC_PORT_RANGE"

command=(docker run --rm --name visprompt
    -p "$http_port:9100"
    -p "$ports:$ports/udp"
    -v "$volume:/data")
[ -t 0 ] && [ -t 1 ] && command+=(-it)
shown=("${command[@]}")
# Values travel through the environment (-e NAME), so no secret shows on the command line.
for name in "${WEBRTC_ENV_NAMES[@]}"; do
    command+=(-e "$name")
    shown+=(-e "$(sh_assignment "$name=$(shown_value "$name")")")
done
for assignment in ${ENV_ASSIGN[@]+"${ENV_ASSIGN[@]}"}; do
    export "${assignment?}"
    command+=(-e "${assignment%%=*}")
    shown+=(-e "$(sh_assignment "$assignment")")
done
command+=("$image" ${PASS[@]+"${PASS[@]}"})
shown+=("$image" ${PASS[@]+"${PASS[@]}"})
note "${shown[*]}"

if flag dry-run; then
    exit 0
fi
command -v docker >/dev/null || die "docker is not installed; running the image needs a Docker engine"
exec "${command[@]}"
