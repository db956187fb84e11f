# syntax=docker/dockerfile:1
# tributary container image.
#   docker build -t tributary .
#   docker run -v $PWD/tributary.toml:/etc/tributary/tributary.toml:ro -p 9187:9187 tributary
# The config must set api.listen = "0.0.0.0:9187" for the published port to answer.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/tributary /usr/local/bin/tributary

FROM debian:bookworm-slim
# ca-certificates: https:// targets and TLS sources.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tributary \
    && mkdir -p /etc/tributary
COPY --from=build /usr/local/bin/tributary /usr/local/bin/tributary
USER tributary:tributary
EXPOSE 9187
# SIGTERM: the pipes flush their current batch, checkpoint and exit 0 (allow ~30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tributary"]
CMD ["run", "--config", "/etc/tributary/tributary.toml"]
