# syntax=docker/dockerfile:1
#
# rollguard's image: one static binary on distroless/static (≈ 2 MB: a CA
# bundle, /etc/passwd with root and nonroot, tzdata; no shell, no libc).
#
# The binary is a static musl build (rust:alpine's native target) with the
# root [profile.release]: rustls + ring (no OpenSSL), lto = true,
# codegen-units = 1, strip, panic = "abort", opt-level = "z". The image stays
# under 12 MB.
#
# Our own CI (.ci/run) cannot run Docker and cannot install the musl Rust
# target, so it verifies the same profile as a *static glibc* binary
# (RUSTFLAGS="-C target-feature=+crt-static", target/static/...), checks it
# is statically linked, prints its size, and tests/ship.rs runs it with an
# empty environment against kubesim. The musl build here works on GitHub's
# builders (release.yml builds each architecture natively).
#
# Targets:
#   release (default, last stage): distroless/static, runs as root, as GitHub
#     container actions require (they write to /github/file_commands).
#     For an in-cluster CronJob run it as the image's `nonroot` user:
#     securityContext: {runAsNonRoot: true, runAsUser: 65532} (see
#     examples/cronjob/); rollguard needs no writable filesystem.
#   shell: the same binary on distroless/static:debug, which adds a busybox
#     shell, because GitLab CI runs `script:` lines with a shell. Published as
#     :vX-shell.
#
#   docker build -t rollguard .                  # release
#   docker build --target shell -t rollguard:shell .

FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rollguard \
 && cp target/release/rollguard /rollguard \
 && /rollguard --version

FROM gcr.io/distroless/static-debian12:debug AS shell
COPY --from=build /rollguard /usr/local/bin/rollguard
ENTRYPOINT ["/usr/local/bin/rollguard"]

FROM gcr.io/distroless/static-debian12 AS release
COPY --from=build /rollguard /usr/local/bin/rollguard
ENTRYPOINT ["/usr/local/bin/rollguard"]
