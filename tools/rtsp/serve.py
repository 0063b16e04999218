#!/usr/bin/python3
"""A test RTSP server: GStreamer's RTSP server streaming the SMPTE 75 % colour bars as H.264.

Usage: serve.py PORT [WIDTH HEIGHT FPS]. Serves rtsp://127.0.0.1:PORT/bars on the loopback
interface only, prints READY on stdout once it listens, and runs until killed. visprompt-media's
RTSP tests start it; tools/ci/install-rtsp.sh installs what it needs (Debian's python3-gi,
gir1.2-gst-rtsp-server-1.0 and the base/good/ugly GStreamer plugins for x264).
"""

import sys

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
except (ImportError, ValueError) as error:
    sys.stderr.write(f"GStreamer's RTSP server is missing ({error}); run tools/ci/install-rtsp.sh\n")
    sys.exit(3)


def main() -> None:
    port = sys.argv[1]
    width, height, fps = (sys.argv[2:5] + ["320", "240", "15"][len(sys.argv[2:5]):])
    Gst.init(None)
    for element in ("videotestsrc", "x264enc", "rtph264pay"):
        if Gst.ElementFactory.find(element) is None:
            sys.stderr.write(f"GStreamer element {element} is missing; run tools/ci/install-rtsp.sh\n")
            sys.exit(3)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=smpte75 "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/bars", factory)
    if server.attach(None) == 0:
        sys.stderr.write(f"cannot listen on 127.0.0.1:{port}\n")
        sys.exit(2)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
