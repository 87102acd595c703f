#!/usr/bin/env bash
# Installs what the browser rendering tests (tests/all/render.rs) need: Debian's
# chromium, and from npm marked (GitHub-flavoured Markdown), mermaid (the
# charts GitHub draws) and playwright-core (drives the browser; it downloads
# no browser of its own). Idempotent: the npm packages go to .tools/render.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.tools/render"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
want="marked@18.2.1 mermaid@11.17.2 playwright-core@1.65.1"
stamp="$dest/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
mkdir -p "$dest"
cd "$dest"
[ -f package.json ] || echo '{"name":"rollguard-render-tools","private":true}' > package.json
# shellcheck disable=SC2086
npm install --silent --no-audit --no-fund --no-save $want >/dev/null
echo "$want" > "$stamp"
/usr/bin/chromium --version
