# syntax=docker/dockerfile:1
# tributary container image.
#   docker build -t tributary .
#   docker run -v $PWD/tributary.toml:/etc/tributary/tributary.toml:ro \
#     -v $PWD/api_token:/run/secrets/api_token:ro -p 9187:9187 tributary
# The config must set api.listen = "0.0.0.0:9187" for the published port to answer, and then
# api.token_file = "/run/secrets/api_token" (a file holding e.g. `openssl rand -hex 32`):
# `run` refuses to publish the API without a token. The probes stay open without it.
# Health: the image probes /healthz with the tributary binary itself (`tributary health`), so
# the runtime image needs no curl (and none of the libraries and CVEs it brings).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/tributary /usr/local/bin/tributary

FROM debian:bookworm-slim
# ca-certificates: the system roots that https:// targets (ClickHouse Cloud) are verified with;
# TLS sources are verified with source.ssl_ca or the roots built into the binary.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tributary \
    && mkdir -p /etc/tributary
COPY --from=build /usr/local/bin/tributary /usr/local/bin/tributary
USER tributary:tributary
EXPOSE 9187
# Liveness: /healthz answers 200 while the process serves its API. The probe reads the
# API address from the same config (and TRIBUTARY__API__LISTEN) as the daemon; `0.0.0.0` is
# probed on 127.0.0.1. Use `tributary health --ready` for readiness (every pipe Running,
# Paused or Completed) where the orchestrator has a separate readiness check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/tributary", "health", "--config", "/etc/tributary/tributary.toml"]
# SIGTERM: the pipes flush their current batch, checkpoint and exit 0 (allow ~30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tributary"]
CMD ["run", "--config", "/etc/tributary/tributary.toml"]
