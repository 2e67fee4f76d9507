# Kintsu's image: one static binary on an empty base.
#
# Build it with scripts/image.sh, which is the build stage: it compiles
# the binary with this machine's Go toolchain (CGO_ENABLED=0, so it needs
# no libc) and hands docker a context holding only what is copied below.
# No base image is pulled, so it builds where no registry can be reached.
FROM scratch
COPY passwd group /etc/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY kintsu /usr/local/bin/kintsu
COPY --chown=65532:65532 data /data
USER 65532:65532
WORKDIR /data
# RESP (Redis clients), peer (gRPC between nodes), HTTP admin API.
EXPOSE 6379 17001 8001
ENV KINTSU_DATA_DIR=/data \
    KINTSU_RESP_ADDR=0.0.0.0:6379 \
    KINTSU_PEER_ADDR=0.0.0.0:17001 \
    KINTSU_HTTP_ADDR=0.0.0.0:8001
ENTRYPOINT ["/usr/local/bin/kintsu"]
CMD ["server"]
