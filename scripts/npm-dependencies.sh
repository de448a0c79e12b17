#!/usr/bin/env bash
# Installs node_modules exactly as package-lock.json pins them (npm ci) when
# they are missing or were installed from another package-lock.json; a no-op
# otherwise. `npm test` and the quickstart start with it, so a fresh clone
# needs no step of its own before them.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.cvm-package-lock.sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "npm dependencies: node_modules does not match package-lock.json, running npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$wanted" >"$stamp"
fi
