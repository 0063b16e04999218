# syntax=docker/dockerfile:1
# The visprompt server as a container image. Build and run it with `just build-image` and
# `just run-image` (see docs/deployment.md); building needs a Docker engine with BuildKit.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- builder: the release binary ---------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# The cargo registry and the target directory are cache mounts: a rebuild after a source change
# reuses downloaded crates and compiled dependencies. The binary is copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p visprompt-server \
    && install -D -m 0755 target/release/visprompt-server /out/visprompt-server

# ---- ui: the browser UI's static files ----------------------------------------------------------
FROM node:20-${DEBIAN_RELEASE}-slim AS ui
WORKDIR /src/apps/ui
COPY apps/ui/package.json apps/ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY openapi /src/openapi
COPY apps/ui ./
RUN npm run build

# ---- runtime: the binary, the UI, curl for the health check, nothing else ----------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: model downloads from the Hugging Face hub; curl: HEALTHCHECK. Versions are
# those of the Debian release (security updates included), not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed non-root user (UID/GID 10001), in group video for USB cameras (--device /dev/video0).
RUN groupadd --gid 10001 visprompt \
    && useradd --uid 10001 --gid 10001 --groups video --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin visprompt \
    && mkdir -p /data /media \
    && chown visprompt:visprompt /data

COPY --from=builder /out/visprompt-server /usr/local/bin/visprompt-server
COPY --from=ui /src/apps/ui/dist /usr/share/visprompt/ui

# Listen on every interface of the container (the default is loopback only); database and
# captured frames in the /data volume; media files (videos, image folders) mounted under /media.
# WEBRTC_ADVERTISE_IP / ICE_SERVERS / TURN_* are given at `docker run` (see docs/deployment.md).
ENV HOST=0.0.0.0 \
    PORT=9100 \
    DB_DATA_DIR=/data \
    MEDIA_ROOTS=/media \
    UI_DIR=/usr/share/visprompt/ui \
    WEBRTC_PORT_RANGE=50000-50050

VOLUME ["/data"]
WORKDIR /data
USER 10001

# HTTP API and UI; WebRTC media (UDP), published one to one: -p 50000-50050:50000-50050/udp.
EXPOSE 9100/tcp
EXPOSE 50000-50050/udp

# Shell form so that a PORT given at `docker run` is followed.
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT}/health" || exit 1

ENTRYPOINT ["visprompt-server"]
CMD ["serve"]
