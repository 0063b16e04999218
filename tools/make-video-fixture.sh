#!/usr/bin/env bash
# Regenerates adapters/media/tests/fixtures/smpte-high.mp4: 30 frames (2 s at 15 fps) of the SMPTE 75 %
# colour bars, 320x240, encoded by x264 (High profile, B-frames, a key frame every 10 frames) and
# muxed by GStreamer's mp4mux. It checks that the video source reads what a common encoder and
# muxer write. Needs the packages of tools/ci/install-rtsp.sh; CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."
out=adapters/media/tests/fixtures/smpte-high.mp4
gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=smpte75 \
    ! video/x-raw,width=320,height=240,framerate=15/1,format=I420 \
    ! x264enc key-int-max=10 bframes=2 speed-preset=medium \
    ! video/x-h264,profile=high \
    ! mp4mux ! filesink location="$out"
ls -l "$out"
