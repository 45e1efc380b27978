# One image per binary, from one recipe: BIN is coordinator, worker, analyzer or endpoint.
#   docker build --build-arg BIN=worker -t cloudbench-worker .
#   docker build --build-arg BIN=endpoint -t cloudbench-endpoint .
# The endpoint image is what SageMaker (bring your own container: `docker run IMAGE serve`, port 8080,
# the model artifact unpacked into /opt/ml/model) and Azure App Service (WEBSITES_PORT=8080) run.
ARG BIN=worker

FROM rust:1.95-slim-bookworm AS build
ARG BIN
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p "${BIN}" && cp "target/release/${BIN}" /app

FROM debian:bookworm-slim
ARG BIN
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home cloudbench \
 && mkdir -p /opt/ml/model /data \
 && chown 10001 /data
COPY --from=build /app /usr/local/bin/app
LABEL org.opencontainers.image.title="cloudbench-${BIN}"
USER 10001
WORKDIR /data
ENV RUST_LOG=info
ENTRYPOINT ["/usr/local/bin/app"]
