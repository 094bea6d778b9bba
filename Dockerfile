# syntax=docker/dockerfile:1
#
# netpol-guard container image.
#
#   docker build -t netpol-guard .
#
# Build stage: the official Rust image, pinned to the toolchain the project is
# developed and tested with (rustc 1.95.0). It is the Debian 12 (bookworm)
# variant on purpose: the binary links against the builder's glibc, and the
# runtime image below is Debian 12 too, so the glibc the binary needs is the
# glibc it gets. (A trixie builder would need a newer glibc than
# distroless/cc-debian12 has.) The slim variant still ships gcc and libc6-dev,
# which is all ring's C/assembly parts need; there is no OpenSSL anywhere.
#
# Only what cargo needs to load the manifest and compile the binary is copied:
# the manifest and lock file, src/ (which also holds default-config.yaml, read
# by include_str!), and benches/ (Cargo.toml declares [[bench]] engine, and
# cargo refuses to load a manifest whose declared targets are missing).
# .ci/docker-context-build reproduces this stage without Docker to prove the
# list is enough; keep the two in step.
FROM rust:1.95.0-slim-bookworm AS build

WORKDIR /src

COPY Cargo.toml Cargo.lock ./
COPY src/ src/
COPY benches/ benches/

# The registry and target caches persist between builds (BuildKit), so a
# source change recompiles netpol-guard only, not its ~240 dependencies. A
# cache mount is not part of the image, so the binary is copied out of it in
# the same step.
RUN --mount=type=cache,id=netpol-guard-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=netpol-guard-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=netpol-guard-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bin netpol-guard \
    && cp target/release/netpol-guard /usr/local/bin/netpol-guard

# Runtime stage: glibc, libgcc and CA certificates, no shell, no package
# manager; the :nonroot tag already runs as 65532, set again below so that
# Kubernetes' runAsNonRoot can check a numeric user.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="netpol-guard" \
      org.opencontainers.image.description="Kubernetes admission webhook that keeps namespaces segmented by NetworkPolicy" \
      org.opencontainers.image.source="https://example.invalid/netpol-guard" \
      org.opencontainers.image.licenses="NOASSERTION"

COPY --from=build /usr/local/bin/netpol-guard /netpol-guard

USER 65532:65532

# 8443: admission webhook, HTTPS (serve --addr, the default).
# 9090: plain-HTTP /metrics, /healthz, /readyz (serve --metrics-addr).
EXPOSE 8443 9090

ENTRYPOINT ["/netpol-guard"]
CMD ["serve"]
