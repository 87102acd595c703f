# syntax=docker/dockerfile:1
#
# rollguard's image: one static binary on distroless/static (≈ 2 MB: a CA
# bundle and SSL_CERT_FILE naming it, /etc/passwd with root and nonroot, a
# world-writable /tmp, tzdata; no shell, no libc).
#
# The binary is a static musl build (rust:alpine's native target) with the
# root [profile.release]: rustls + ring (no OpenSSL), lto = true,
# codegen-units = 1, strip, panic = "abort", opt-level = "z". The image stays
# under 12 MB.
#
# Targets:
#   release (default, last stage): distroless/static, runs as root, as GitHub
#     container actions require (they write to /github/file_commands, which
#     belongs to the runner's user). For an in-cluster CronJob run it as the
#     image's `nonroot` user: securityContext: {runAsNonRoot: true,
#     runAsUser: 65532} (see examples/cronjob/); rollguard needs no writable
#     filesystem.
#   shell: the same binary on distroless/static:debug, which adds a busybox
#     shell in /busybox (on PATH), because GitLab CI runs `script:` lines with
#     a shell. Published as :vX-shell.
#
#   docker build -t rollguard .                  # release
#   docker build --target shell -t rollguard:shell .
#
# Every base is a build argument with the public default, so a builder that
# cannot pull them can substitute local images with the same contents.
# Our own CI (.ci/image.sh) does that: it cannot pull images nor install the
# musl Rust target, so it builds the same [profile.release] as a static glibc
# binary, passes an image carrying it as BINARY_FROM (the compile stage is
# then skipped), assembles distroless-equivalent bases from Debian's packages
# (CA bundle, base-files, netbase, tzdata, busybox-static), builds both
# targets with buildah, checks the size, and runs the images as GitHub
# Actions, GitLab CI and Cloud Build run them (tests/image.rs).
ARG RUST_IMAGE=rust:1.95-alpine
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12
ARG SHELL_RUNTIME_IMAGE=gcr.io/distroless/static-debian12:debug
# The stage or image that has the binary at /rollguard.
ARG BINARY_FROM=compile

FROM ${RUST_IMAGE} AS compile
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rollguard \
 && cp target/release/rollguard /rollguard

FROM ${BINARY_FROM} AS binary
# The binary must start on its own: static, for this platform.
RUN ["/rollguard", "--version"]

FROM ${SHELL_RUNTIME_IMAGE} AS shell
COPY --from=binary /rollguard /usr/local/bin/rollguard
ENTRYPOINT ["/usr/local/bin/rollguard"]

FROM ${RUNTIME_IMAGE} AS release
COPY --from=binary /rollguard /usr/local/bin/rollguard
ENTRYPOINT ["/usr/local/bin/rollguard"]
