#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine (Debian packages, the
# real kubectl/helm, the rendering tools). Idempotent: quick when done before.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== install tools"
command -v cargo >/dev/null || { echo "cargo is required"; exit 1; }
if ! command -v npm >/dev/null || ! command -v python3 >/dev/null || ! command -v unzip >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq npm python3 unzip >/dev/null
fi
# A real OCI registry for the pre-flight registry-check tests (tests/all/preflight.rs),
# and a real Prometheus for the metric-gate tests (tests/all/analysis.rs).
if [ ! -x /usr/bin/docker-registry ] || [ ! -x /usr/bin/prometheus ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry prometheus >/dev/null
fi
# The container image step (.ci/image.sh): buildah, podman (image size), skopeo
# and umoci, and the Debian packages its local base images are assembled from.
image_pkgs="buildah podman skopeo umoci busybox-static tzdata netbase media-types ca-certificates"
# shellcheck disable=SC2086
if ! dpkg-query -W -f='${Status}\n' $image_pkgs 2>/dev/null | grep -c 'ok installed' | grep -qx "$(wc -w <<<"$image_pkgs")"; then
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $image_pkgs >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
bash .ci/install-tools.sh
# Headless Chromium with marked + mermaid for the rendering tests (tests/all/render.rs).
bash .ci/install-render-tools.sh

