#!/bin/sh
# Builds the AssemblyScript waPC guest into $1 with the compiler and the
# guest library pinned in package-lock.json (installed from the npm
# registry on first use).
set -eu
out=${1:?usage: build.sh OUT.wasm}
cd "$(dirname "$0")"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
./node_modules/.bin/asc assembly/index.ts --use abort=assembly/index/abort \
  --optimize -o "$out"
