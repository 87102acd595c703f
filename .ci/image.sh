#!/usr/bin/env bash
# The container image, built from the real Dockerfile with buildah, as CI can
# build it: no registry is reachable, so the Dockerfile's base images (build
# arguments) are replaced by local ones assembled here from Debian's packages,
# with the contents of their public counterparts:
#   BINARY_FROM          scratch + the static release binary .ci/run built
#                        (the Dockerfile's compile stage is then skipped)
#   RUNTIME_IMAGE        distroless/static-debian12: base-files, netbase,
#                        tzdata, media-types, the CA bundle, passwd/group
#                        (root, nobody, nonroot 65532), nsswitch.conf, /tmp
#                        (1777), /home/nonroot; PATH and SSL_CERT_FILE; user 0
#   SHELL_RUNTIME_IMAGE  its :debug variant: + busybox (static) in /busybox,
#                        on PATH, entrypoint /busybox/sh
# Both targets (release, shell) are built, their sizes printed (the release
# image must be at most 12 MB, as release.yml checks on the published one),
# copied out of the container storage (skopeo) and unpacked (umoci) into
# target/image/{release,shell}/rootfs, with each image's OCI config in
# target/image/{release,shell}.config.json. tests/all/image.rs runs the unpacked
# images as GitHub Actions, GitLab CI and Cloud Build would (podman run does
# not work on these machines: crun cannot set RLIMIT_NOFILE/RLIMIT_NPROC and
# refuses hybrid cgroups).
#
# Sourced by .ci/run (it exports ROLLGUARD_IMAGE_DIR for the tests) with
# $static_bin set; standalone: bash .ci/image.sh [PATH-TO-STATIC-BINARY].
# Needs: buildah skopeo umoci busybox-static tzdata netbase media-types
# ca-certificates (Debian packages).

rollguard_ci_image() {
  local bin=$1 repo dir conf start c mnt pkg size limit=$((12 * 1000 * 1000))
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  dir="$repo/target/image"
  start=$(date +%s)
  echo "== container image (the Dockerfile with buildah on local bases; tests/all/image.rs runs it)"
  [ -x "$bin" ] || { echo "image: no static binary at $bin"; return 1; }
  for tool in buildah skopeo umoci podman; do
    command -v "$tool" >/dev/null || { echo "image: $tool is missing (apt-get install buildah podman skopeo umoci)"; return 1; }
  done
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' && [ -x /bin/busybox ] \
    || { echo "image: the static busybox is missing (apt-get install busybox-static)"; return 1; }

  # Private container storage (vfs: plain directories, no mounts left
  # behind), so each run starts empty and nothing else on the machine is
  # touched.
  rm -rf "$dir"
  mkdir -p "$dir"
  conf="$dir/storage.conf"
  printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$dir" "$dir" >"$conf"
  in_storage() { CONTAINERS_STORAGE_CONF="$conf" "$@"; }

  echo "image: local bases"
  # BINARY_FROM: just the binary, where the compile stage leaves it.
  c=$(in_storage buildah from scratch)
  in_storage buildah copy --quiet "$c" "$bin" /rollguard >/dev/null
  in_storage buildah commit --quiet --rm "$c" localhost/rollguard-ci/binary >/dev/null

  # RUNTIME_IMAGE: distroless/static's contents, from this machine's Debian
  # packages (the same packages distroless unpacks).
  c=$(in_storage buildah from scratch)
  mnt=$(in_storage buildah mount "$c")
  for pkg in base-files netbase tzdata media-types; do
    dpkg-query -L "$pkg" >/dev/null 2>&1 || { echo "image: Debian package $pkg is not installed"; return 1; }
  done
  dpkg-query -L base-files netbase tzdata media-types | grep '^/' | grep -v '^/\.$' | sed 's#^/##' | sort -u \
    | tar -C / --no-recursion -cf - -T - | tar -C "$mnt" -xf -
  install -d -m 0755 "$mnt/etc/ssl/certs"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$mnt/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$mnt/etc/group"
  printf '%s\n' 'hosts: files dns' 'networks: files' 'passwd: files' 'group: files' >"$mnt/etc/nsswitch.conf"
  install -d -m 1777 "$mnt/tmp"
  install -d -m 0700 "$mnt/root"
  install -d -m 0700 -o 65532 -g 65532 "$mnt/home/nonroot"
  in_storage buildah umount "$c" >/dev/null
  in_storage buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --user 0 --workingdir / "$c"
  in_storage buildah commit --quiet --rm "$c" localhost/rollguard-ci/static >/dev/null

  # SHELL_RUNTIME_IMAGE: the same plus busybox in /busybox, as :debug.
  c=$(in_storage buildah from --pull=never localhost/rollguard-ci/static)
  mnt=$(in_storage buildah mount "$c")
  install -d -m 0755 "$mnt/busybox"
  install -m 0755 /bin/busybox "$mnt/busybox/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$mnt/busybox/$applet"
  done
  in_storage buildah umount "$c" >/dev/null
  in_storage buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/busybox \
    --entrypoint '["/busybox/sh"]' "$c"
  in_storage buildah commit --quiet --rm "$c" localhost/rollguard-ci/static-debug >/dev/null

  local target tag
  for target in release shell; do
    tag=localhost/rollguard:ci-$target
    echo "image: buildah bud --target $target"
    # chroot isolation: the binary stage's RUN needs no OCI runtime.
    in_storage buildah bud --quiet --isolation chroot --pull=never --layers=false \
      --build-arg BINARY_FROM=localhost/rollguard-ci/binary \
      --build-arg RUNTIME_IMAGE=localhost/rollguard-ci/static \
      --build-arg SHELL_RUNTIME_IMAGE=localhost/rollguard-ci/static-debug \
      --target "$target" -t "$tag" -f "$repo/Dockerfile" "$repo" >/dev/null
    in_storage skopeo copy --quiet "containers-storage:$tag" "oci:$dir/oci:$target"
    in_storage skopeo inspect --config "oci:$dir/oci:$target" >"$dir/$target.config.json"
    umoci unpack --image "$dir/oci:$target" "$dir/$target" >/dev/null
    # Three sizes: the files' contents (hard links once), which is what
    # `docker image inspect -f '{{.Size}}'` reports and release.yml checks;
    # the uncompressed layer tars (podman's Size: tar headers and padding
    # included); the compressed layers (what a pull downloads).
    size=$(find "$dir/$target/rootfs" ! -type d -printf '%D:%i %s\n' | awk '!seen[$1]++ { s += $2 } END { print s + 0 }')
    tars=$(in_storage podman image inspect --format '{{.Size}}' "$tag")
    packed=$(in_storage skopeo inspect --raw "oci:$dir/oci:$target" \
      | python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
    echo "image size ($target): $size bytes ($((size / 1024)) KiB; layer tars $tars, compressed $packed)"
    if [ "$target" = release ] && [ "$size" -gt "$limit" ]; then
      echo "image: the release image is $size bytes, over 12 MB"
      return 1
    fi
  done
  echo "image: built and unpacked in $(($(date +%s) - start))s: $dir/{release,shell}/rootfs"
  export ROLLGUARD_IMAGE_DIR="$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  host=$(rustc -vV | sed -n 's/^host: //p')
  rollguard_ci_image "${1:-$(cd "$(dirname "$0")/.." && pwd)/target/static/$host/release/rollguard}"
  echo "run the image tests with: ROLLGUARD_IMAGE_DIR=$ROLLGUARD_IMAGE_DIR cargo test --test all image::"
else
  rollguard_ci_image "$static_bin"
fi
