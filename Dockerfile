# One image for every iiot service: `iiot module` by default; `twin-api`, `vault`, `plc-sim` (or
# any other command) as the container's command. Configure it by environment: every flag has an
# IIOT_* variable (README, "Configuration by environment").
#
#   podman build --format docker -t iiot .                       # compiles from source
#   OPENSSL_STATIC=1 OPENSSL_LIB_DIR=/usr/lib/x86_64-linux-gnu OPENSSL_INCLUDE_DIR=/usr/include \
#     cargo build --profile container --features compressed-docs --bin iiot && \
#   scripts/container-image.sh target/container/iiot iiot:latest     # host binary
#
# The runtime stage is `scratch` plus the binary and the few shared libraries it loads: no shell,
# no package manager, nothing else to patch.

ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
COPY . .
# OpenSSL linked statically (only what the vault uses; openssl-sys links it so when pointed at
# the directory of libssl.a), Swagger UI's assets compressed.
RUN OPENSSL_STATIC=1 OPENSSL_LIB_DIR="/usr/lib/$(gcc -dumpmachine)" OPENSSL_INCLUDE_DIR=/usr/include \
    cargo build --profile container --features compressed-docs --locked --bin iiot \
 && bash scripts/container-rootfs.sh target/container/iiot /out

# What every final stage shares: configuration, user, health check, ports, signal.
FROM scratch AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="iiot" \
      org.opencontainers.image.description="OPC UA industrial gateway: edge module (OPC Publisher 2.9 API), twin API, certificate vault, PLC simulator" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
ENV IIOT_DATA_DIR=/data \
    IIOT_HTTP_HOST=0.0.0.0 \
    IIOT_HTTP_PORT=8082
USER 65532:65532
WORKDIR /data
EXPOSE 8082
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/iiot", "health"]
ENTRYPOINT ["/usr/local/bin/iiot"]
CMD ["module"]

# The runtime stage built from a binary compiled on the host (CI's way: no builder image needed).
# Its build context is the folder scripts/container-rootfs.sh filled.
FROM runtime AS host-binary
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
VOLUME ["/data"]

# The default target: the runtime stage with the binary the builder stage compiled.
FROM runtime AS image
COPY --from=builder /out/rootfs/ /
COPY --from=builder --chown=65532:65532 /out/data/ /data/
VOLUME ["/data"]
