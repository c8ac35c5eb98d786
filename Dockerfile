# spikeserve image: build stage (Debian 12 + build deps, builds, runs the unit tests), then a
# slim runtime stage holding the server, the CLI and the shipped models, running as a
# non-root user on 0.0.0.0: HTTP on 8080, gRPC (HTTP/2 cleartext) on 8081.
#   make docker                     # build (../shared/docker-build.sh build)
#   docker run -p 8080:8080 -p 8081:8081 -v spikeserve-state:/var/lib/spikeserve spikeserve
FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libmicrohttpd-dev \
      libjansson-dev libprotobuf-c-dev libcurl4-openssl-dev zlib1g-dev libnghttp2-dev \
      dataset-fashion-mnist python3 python3-grpcio python3-h2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# the fast tests (unit tier, which also checks each shipped model's accuracy on the
# Fashion-MNIST test set against its card) must pass for the image to exist
RUN mkdir -p models/zoo && make -j2 all && tests/run.sh build /usr/bin/python3 unit

FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmicrohttpd12 libjansson4 libprotobuf-c1 \
      libcurl4 zlib1g libnghttp2-14 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && groupadd --system --gid 10001 spikeserve \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/spikeserve --no-create-home \
      --shell /usr/sbin/nologin spikeserve \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/spikeserve
COPY --from=build /src/build/spikeserve /src/build/spikectl /usr/local/bin/
COPY --from=build /src/models/zoo/ /usr/share/spikeserve/models/
ENV SPIKESERVE_BIND=0.0.0.0 \
    SPIKESERVE_PORT=8080 \
    SPIKESERVE_GRPC_PORT=8081 \
    SPIKESERVE_MODEL_DIR=/usr/share/spikeserve/models \
    SPIKESERVE_STATE_DIR=/var/lib/spikeserve
VOLUME ["/var/lib/spikeserve"]
# 8080: HTTP (v1 API, /metrics, the raster page); 8081: gRPC (spikeserve.v1.Spikeserve,
# grpc.health.v1 for Kubernetes gRPC probes)
EXPOSE 8080 8081
USER 10001:10001
WORKDIR /var/lib/spikeserve
# spikectl health: GET http://127.0.0.1:$SPIKESERVE_PORT/healthz, exit 0 when it answers 200
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/spikectl", "-t", "2000", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/spikeserve"]
