#!/usr/bin/env bash
# The MQTT sink tests (adapters/sinks/tests) start their own Mosquitto broker on a loopback port
# and make throw-away TLS certificates with openssl; this puts both on a fresh machine. Idempotent.
set -euo pipefail

if ! command -v mosquitto >/dev/null && ! [ -x /usr/sbin/mosquitto ] || ! command -v openssl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients openssl >/dev/null
fi
