#!/usr/bin/env bash
# The RTSP test server for visprompt-media's RTSP source tests (tools/rtsp-server.py) and the
# encoder behind its video fixture: GStreamer's RTSP server through Python, x264 and the test
# pattern source. Idempotent: does nothing when everything is already installed.
set -euo pipefail

packages=(
    python3-gi
    gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-ugly
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
