# gene-api container image.
#
#   docker build -t gene-api .
#   docker run --rm -e REDIS_IP=<redis host> -p 5000:5000 gene-api          # serve (API + workers)
#   docker run --rm -e REDIS_IP=<redis host> gene-api worker                 # workers only
#
# Two stages: the pinned official Rust image compiles a release binary, and the
# official slim Debian image runs it. The runtime stage installs nothing: the
# binary embeds its font (no fontconfig) and config/default.toml, fetches over
# rustls with bundled webpki roots (no ca-certificates) and checks its own
# health (`gene-api healthcheck`, no curl).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependencies in their own layer: build them against stub targets, so this
# layer is rebuilt only when Cargo.toml or Cargo.lock change, not on every
# source edit. (If Cargo.toml ever declares [[bench]], [[example]] or [[test]]
# targets explicitly, stub their files here too: cargo checks that they exist.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/gene-api* target/release/deps/gene_api-* \
        target/release/deps/libgene_api-* target/release/.fingerprint/gene-api-*

# The crate itself. assets/ holds the embedded font, config/ the embedded defaults.
COPY src ./src
COPY assets ./assets
COPY config ./config
RUN cargo build --release --locked \
    && ./target/release/gene-api --help > /dev/null

FROM debian:bookworm-slim

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 gene-api \
    && useradd --system --uid 10001 --gid gene-api --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin gene-api

WORKDIR /app
# config/ for optional config/$APP_ENV.toml overlays (default.toml is also compiled in).
COPY config ./config
# The 1.3 MB HGNC sample, so a cluster without internet can load data with
# GENE_API__DATA__SOURCE=/app/data/hgnc_sample.json; mount a volume on /app/data
# for the full set.
COPY data/hgnc_sample.json ./data/hgnc_sample.json
COPY --from=build /src/target/release/gene-api /usr/local/bin/gene-api

ENV GENE_API_CONFIG_DIR=/app/config
USER 10001:10001

# 5000: HTTP API (`serve`, `api`); 5001: /health and /ready of `worker`.
EXPOSE 5000 5001
# Probes /health on 5000 or 5001 (GENE_API__HTTP__PORT / GENE_API__WORKERS__HEALTH_PORT),
# so the same check fits every subcommand.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["gene-api", "healthcheck"]

ENTRYPOINT ["gene-api"]
CMD ["serve"]
