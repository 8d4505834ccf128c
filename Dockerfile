# syntax=docker/dockerfile:1.7
# upgate container image.
#
#   docker build -t upgate:0.1.0 .
#   docker run --rm -p 9000:9000 -p 9091:9091 -v upgate-data:/var/lib/upgate \
#     -e UPGATE_ROOT_ACCESS_KEY=... -e UPGATE_ROOT_SECRET_KEY=... upgate:0.1.0
#
# Needs BuildKit (the default builder of current Docker), for the cache mounts and the heredoc.
#
# Runtime base: debian:bookworm-slim rather than distroless/cc. The binary links only glibc,
# libgcc_s and libm, so both would run it; slim costs ~30 MB more but has bash, which gives a
# real HTTP health check without installing curl (upgate has no `health` subcommand and
# distroless has no shell), and `sleep`, which the Helm chart's preStop hook uses. Nothing is
# installed except CA certificates (HTTPS to an S3 backend, TLS to PostgreSQL/Redis).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The whole context minus .dockerignore: the manifest names bench targets, and sqlx/include_str!
# read files outside src/, so an allowlist of paths would break silently as the crate grows.
COPY . .
# Registry and target dir live in cache mounts (fast rebuilds, nothing of them in a layer), so
# the binary is copied out in the same step. --locked: build exactly Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin upgate \
 && install -D -m 0755 target/release/upgate /out/upgate
# Fail the build, not the rollout, if the shipped config and the container environment below
# do not validate with this binary (e.g. a renamed setting).
RUN UPGATE__SERVER__LISTEN=0.0.0.0:9000 \
    UPGATE__ADMIN__LISTEN=0.0.0.0:9091 \
    UPGATE__STORAGE__DATA_DIR=/var/lib/upgate \
    UPGATE__LOG__FORMAT=json \
    /out/upgate check-config --config config/upgate.toml

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# ca-certificates unpinned on purpose: the CA bundle should be the distribution's current one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 upgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/upgate --no-create-home \
      --shell /usr/sbin/nologin upgate \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/upgate

COPY --from=build /out/upgate /usr/local/bin/upgate
# The documented defaults, so the file operators edit or mount over is the real reference. It
# equals the embedded defaults, so on its own it changes nothing.
COPY config/upgate.toml /etc/upgate/upgate.toml

# Docker health check (Kubernetes ignores HEALTHCHECK and uses the chart's probes instead).
# HTTP/1.0 GET /healthz over bash's /dev/tcp, on the port of UPGATE__SERVER__LISTEN. With TLS
# on the main listener bash cannot speak it, so an accepted connection is the signal; that
# relies on TLS being switched on through UPGATE__TLS__ENABLED (as the Helm chart does).
COPY --chmod=0755 <<'EOF' /usr/local/bin/upgate-healthcheck
#!/bin/bash
set -euo pipefail
listen="${UPGATE__SERVER__LISTEN:-127.0.0.1:9000}"
exec 3<>"/dev/tcp/127.0.0.1/${listen##*:}"
if [ "${UPGATE__TLS__ENABLED:-false}" = "true" ]; then
  exit 0
fi
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
status=""
IFS=$' \r' read -r -t 4 _ status _ <&3 || true
if [ "$status" = "200" ]; then
  exit 0
fi
echo "GET /healthz: status ${status:-none}" >&2
exit 1
EOF

# Container defaults. These environment overrides win over any --config file (see
# config/upgate.toml), so change them with -e / the chart's env, not in the file.
ENV UPGATE__SERVER__LISTEN=0.0.0.0:9000 \
    UPGATE__ADMIN__LISTEN=0.0.0.0:9091 \
    UPGATE__STORAGE__DATA_DIR=/var/lib/upgate \
    UPGATE__LOG__FORMAT=json

# Numeric ids so Kubernetes runAsNonRoot can verify them without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/upgate
# Objects (local backend), the SQLite database and generated root credentials. The only
# writable path besides /tmp: the image runs with a read-only root filesystem.
VOLUME ["/var/lib/upgate"]
# 9000: S3 API, /healthz, /readyz. 9091: admin listener, Prometheus /metrics.
EXPOSE 9000 9091
# upgate drains in-flight requests on SIGTERM for [server] shutdown_grace_secs (default 30 s):
# give `docker stop` more than that (docker stop -t 40).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/upgate-healthcheck"]
ENTRYPOINT ["/usr/local/bin/upgate"]
CMD ["serve", "--config", "/etc/upgate/upgate.toml"]
