# syntax=docker/dockerfile:1.7
#
# Pulseboard: one image for every server role (serve, worker, scheduler, migrate).
#
#   docker build -t pulseboard .                              # target "runtime" (default, no browser)
#   docker build --target runtime-chromium -t pulseboard:chromium .   # + headless Chromium for screenshots
#   docker run --rm -p 8080:8080 pulseboard                   # `pulseboard serve`
#   docker run --rm pulseboard worker --queues email          # any subcommand works as CMD
#
# The compose stack and .github/workflows/images.yml build the same targets:
#   runtime          -> task-tracker-backend, task-tracker-scheduler, task-tracker-email-sender
#   runtime-chromium -> task-tracker-monitor (worker --queues monitor,screenshots,imports)
# The nginx web front end has its own file: deploy/frontend.Dockerfile.
#
# Build caching without cargo-chef:
#   * the "skeleton" stage keeps only Cargo.toml/Cargo.lock and stub sources, so the layer that
#     compiles the dependencies is reused for as long as no manifest or the lock file changes
#     (this also works with a layer cache such as GitHub Actions' type=gha);
#   * BuildKit cache mounts keep the crates.io registry and git checkouts between builds, so a
#     changed lock file downloads only the new crates.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

############################################################ manifests + stub sources
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS skeleton
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# Keep the workspace manifests, the lock file and build scripts; replace every target root
# (lib.rs, main.rs, src/bin/*, tests/*, benches/*, examples/*) by an empty stub.
RUN set -eu; \
    mkdir -p /skeleton; \
    find . -name Cargo.toml -not -path './target/*' -exec cp --parents {} /skeleton/ \; ; \
    cp Cargo.lock /skeleton/; \
    if [ -f rust-toolchain.toml ]; then cp rust-toolchain.toml /skeleton/; fi; \
    find . -path ./target -prune -o -name build.rs -print -exec cp --parents {} /skeleton/ \; ; \
    find . -path ./target -prune -o -type f -name '*.rs' \
        \( -path '*/src/lib.rs' -o -path '*/src/main.rs' -o -path '*/src/bin/*' \
           -o -path '*/tests/*' -o -path '*/benches/*' -o -path '*/examples/*' \) -print \
      | while read -r f; do \
          mkdir -p "/skeleton/$(dirname "$f")"; \
          case "$f" in \
            */src/lib.rs) : > "/skeleton/$f" ;; \
            *) echo 'fn main() {}' > "/skeleton/$f" ;; \
          esac; \
        done

############################################################ build
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# SQLX_OFFLINE: sqlx's compile-time checked queries use the committed .sqlx/ data, never a database.
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    SQLX_OFFLINE=true

# 1. dependencies only (cached while the manifests and Cargo.lock are unchanged)
COPY --from=skeleton /skeleton/ ./
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked -p pulseboard

# 2. the real sources (crates/, plus config.yaml and frontend/ which the binary embeds). COPY keeps
#    the files' own mtimes, which may be older than the stubs' build: touch them so cargo rebuilds
#    the workspace crates and never ships a stub.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    set -eu; \
    find crates -type f -exec touch {} +; \
    cargo build --release --locked -p pulseboard; \
    install -D -m 0755 target/release/pulseboard /out/pulseboard; \
    strip /out/pulseboard; \
    /out/pulseboard --help > /dev/null

############################################################ runtime base
FROM debian:${DEBIAN_RELEASE}-slim AS runtime-base
# ca-certificates: outgoing TLS (monitor checks, SMTP, S3); curl: the HEALTHCHECK; tzdata: digests
# at each user's midnight.
# hadolint ignore=DL3008
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl tzdata; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 pulseboard; \
    useradd --system --uid 10001 --gid pulseboard --home-dir /app --shell /usr/sbin/nologin pulseboard; \
    mkdir -p /app /data; \
    chown pulseboard:pulseboard /data

WORKDIR /app
# config.yaml: the shipped defaults (also compiled into the binary, as is the web app in frontend/),
# here as a file to read or to mount another over. PULSEBOARD_* variables override any key.
COPY --chown=root:root config.yaml /app/config.yaml
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/pulseboard-healthcheck

ENV PULSEBOARD_CONFIG=/app/config.yaml \
    PULSEBOARD_DATA_DIR=/data \
    PULSEBOARD_HTTP__HOST=0.0.0.0 \
    PULSEBOARD_HTTP__PORT=8080

EXPOSE 8080
# `serve` and `all` answer /healthz; worker, scheduler and migrate have no HTTP listener and are
# healthy while they run (see deploy/healthcheck.sh).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["pulseboard-healthcheck"]
# numeric, so that a runtime checking runAsNonRoot can see it (10001 = user pulseboard)
USER 10001:10001
ENTRYPOINT ["pulseboard"]
CMD ["serve"]

############################################################ with headless Chromium
# For the worker that captures screenshots (queue "screenshots"). Run it with `init: true`
# (or `docker run --init`) so Chromium's child processes are reaped, and give it a larger
# /dev/shm (`shm_size: 512m`).
FROM runtime-base AS runtime-chromium
USER 0
# hadolint ignore=DL3008
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends chromium fonts-liberation fonts-noto-color-emoji fonts-noto-cjk; \
    rm -rf /var/lib/apt/lists/*
# CHROME: where headless-browser crates look for the browser first.
ENV CHROME=/usr/bin/chromium
COPY --from=builder /out/pulseboard /usr/local/bin/pulseboard
USER 10001:10001

############################################################ default: no browser
FROM runtime-base AS runtime
COPY --from=builder /out/pulseboard /usr/local/bin/pulseboard
