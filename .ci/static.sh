# Sourced by .ci/run and .ci/test: builds the static release binary and
# exports ROLLGUARD_STATIC_BIN (tests/all/ship.rs, the image, the benchmark).
echo "== static release binary"
# The Docker image builds a static musl binary (see Dockerfile); the musl
# Rust target is not installable here, so CI builds the same [profile.release]
# as static glibc, in its own target dir (the dev build cache stays warm).
# tests/all/ship.rs runs it with an empty environment (ROLLGUARD_STATIC_BIN).
host=$(rustc -vV | sed -n 's/^host: //p')
static_start=$(date +%s)
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$host" --bin rollguard --target-dir target/static
static_bin="$PWD/target/static/$host/release/rollguard"
if command -v file >/dev/null; then linkage=$(file -b "$static_bin"); else linkage=$(ldd "$static_bin" 2>&1 || true); fi
case "$linkage" in
  *"statically linked"* | *"static-pie linked"* | *"not a dynamic executable"*) ;;
  *) echo "rollguard is not statically linked: $linkage"; exit 1 ;;
esac
static_size=$(stat -c %s "$static_bin")
echo "static binary: $static_bin: $static_size bytes ($((static_size / 1024)) KiB), built in $(($(date +%s) - static_start))s"
[ "$static_size" -le $((12 * 1000 * 1000)) ] || { echo "static binary is over 12 MB"; exit 1; }
export ROLLGUARD_STATIC_BIN="$static_bin"

