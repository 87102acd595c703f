# Static rollguard image: a musl binary (rustls + ring, LTO, one codegen unit,
# stripped, panic=abort as in [profile.release]) on distroless/static, which
# carries a CA bundle. Runs as root by default, as GitHub container actions
# require; for an in-cluster CronJob set `runAsUser: 65532` (the image's
# `nonroot` user) in the pod's securityContext.
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rollguard \
 && cp target/release/rollguard /rollguard

FROM gcr.io/distroless/static-debian12
COPY --from=build /rollguard /usr/local/bin/rollguard
ENTRYPOINT ["/usr/local/bin/rollguard"]
