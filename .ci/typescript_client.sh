#!/usr/bin/env bash
# The TypeScript example: types generated from openapi/openapi.json (openapi-typescript),
# compiled with `tsc --strict` (a response or error typed `any` does not compile), then run
# against a server on SQLite + memory: guest → context → signup with the guest → chat → rename →
# list. Installs Node with apt-get if it is missing.
#
#   .ci/typescript_client.sh BINARY
set -euo pipefail
BIN=$(realpath "$1")
cd "$(dirname "$0")/../examples/typescript"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent generate
npx tsc -p . --strict
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GENESIS__DATA_DIR="$WORK/data" GENESIS__SERVER__BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
GENESIS_URL="http://127.0.0.1:$PORT" node dist/flow.js
