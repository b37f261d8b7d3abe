# glassbox and its load generator in one small image.
#   docker build -t glassbox .
# The runtime runs as an unprivileged user; certificates, data and logs live on volumes.

FROM rust:1.90.0-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Every workspace member, so cargo can read the workspace; only glassbox and loadgen are built.
COPY app app
COPY bench bench
COPY loadgen loadgen
COPY reference reference
COPY testkit testkit
RUN cargo build --release --locked -p glassbox -p loadgen \
    && mkdir -p /out \
    && cp target/release/glassbox target/release/loadgen /out/

FROM debian:bookworm-20241111-slim AS runtime
# curl is for health checks; versions follow the pinned base image's Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 glassbox \
    && useradd --system --uid 10001 --gid glassbox --home-dir /nonexistent --shell /usr/sbin/nologin glassbox \
    && mkdir -p /certs /data /logs \
    && chown glassbox:glassbox /certs /data /logs
COPY --from=build /out/glassbox /out/loadgen /usr/local/bin/
USER 10001:10001
ENV GLASSBOX_BIND=0.0.0.0:8443 \
    GLASSBOX_CERTS_DIR=/certs \
    GLASSBOX_DATA_DIR=/data \
    GLASSBOX_LOG_DIR=/logs
VOLUME ["/certs", "/data", "/logs"]
EXPOSE 8443
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "-fsS", "--cacert", "/certs/ca.crt", "https://localhost:8443/health"]
ENTRYPOINT ["glassbox"]
CMD ["serve"]
