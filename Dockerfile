# sealwatch container image.
#
# Targets:
#   runtime  (default) builds sealwatch from source in a Rust image, ships a static binary FROM scratch:
#              podman build --format docker -t sealwatch .
#   prebuilt packages a static binary already built on the host; needs no base image at all, so it
#            builds with no registry reachable:
#              scripts/build-static.sh --locked
#              podman build --pull=never --format docker --target prebuilt -t sealwatch .
#
# `--format docker` keeps the HEALTHCHECK (the OCI image format has no healthcheck field).
#
# Stage order matters: `prebuilt` comes before `build`, so building it never reaches (or pulls) the
# Rust image even with a builder that does not skip unused stages.

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm

# ---------------------------------------------------------------------------------------------
# Image settings shared by both final targets.
FROM scratch AS base
# Override at build time: --build-arg VERSION=$(git describe) --build-arg SOURCE=<repository URL>
ARG VERSION=dev
ARG SOURCE=https://github.com/sealwatch/sealwatch
LABEL org.opencontainers.image.title="sealwatch" \
      org.opencontainers.image.description="Event-driven Prometheus exporter and inventory sidecar for Podman" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Podman's rootful API socket (/run/podman/podman.sock) is owned by root with mode 0600/0660, so
# the exporter has to run as root inside the container to connect to it (the container's root is
# unprivileged on the host when Podman runs rootless). Numeric, because scratch has no /etc/passwd.
USER 0:0
EXPOSE 9882
# sealwatch is PID 1 here and handles SIGTERM itself, so `podman stop` returns at once.
STOPSIGNAL SIGTERM
# `sealwatch healthcheck` GETs its own /-/ready on the listen address and exits 0 when ready, 1
# otherwise: no curl needed in a scratch image. The check runs as a separate process that sees the
# container's environment but not its command-line arguments, so change the port with
# SEALWATCH_WEB_LISTEN_ADDRESS (not --web.listen-address) or the check probes the default :9882.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/sealwatch", "healthcheck"]
ENTRYPOINT ["/sealwatch"]

# ---------------------------------------------------------------------------------------------
# Host-built binary: target/x86_64-unknown-linux-gnu/release/sealwatch (see .dockerignore).
FROM base AS prebuilt
COPY target/x86_64-unknown-linux-gnu/release/sealwatch /sealwatch

# ---------------------------------------------------------------------------------------------
# Build from source, as scripts/build-static.sh does on a host: the explicit --target keeps build
# scripts and proc macros dynamic while the final binary links glibc statically, so it runs FROM
# scratch, and its hot functions are linked side by side (less of its code resident).
FROM ${RUST_IMAGE} AS build
# .git is not in the build context: pass the revision for sealwatch_build_info and --version,
# e.g. --build-arg SEALWATCH_REVISION=$(git rev-parse --short=12 HEAD) (build.rs reads it).
ARG SEALWATCH_REVISION=unknown
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bin=$(scripts/build-static.sh --locked | tail -n 1) \
    && mkdir -p /out && cp "$bin" /out/sealwatch

# ---------------------------------------------------------------------------------------------
FROM base AS runtime
COPY --from=build /out/sealwatch /sealwatch
