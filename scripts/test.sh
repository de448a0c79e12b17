#!/usr/bin/env bash
# `npm test` and `npm run test:unit` start here because scripts/test.ts needs
# tsx from node_modules, which a fresh clone does not have yet: install the
# npm dependencies first, then hand every argument over.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/npm-dependencies.sh
exec node --import tsx scripts/test.ts "$@"
