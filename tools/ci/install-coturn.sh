#!/usr/bin/env bash
# coturn, the TURN server: `just run-coturn` starts it for relayed WebRTC (TCP, port 443 by
# default) and the relay-only WebRTC tests start their own on a loopback port. Idempotent: does
# nothing when it is already installed.
set -euo pipefail

if ! command -v turnserver >/dev/null && ! [ -x /usr/bin/turnserver ]; then
    apt-get update -qq
    # Where an init system runs, the package would start a system-wide turnserver on port 3478;
    # a temporary policy-rc.d keeps it from doing so (ours run in the foreground when needed).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends coturn >/dev/null
fi
