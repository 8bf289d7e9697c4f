#!/usr/bin/env bash
# The admin dashboard (/admin) in a real browser: Debian's Chromium (apt-get, if missing) driven
# by playwright-core from npm with the system browser's path (no browser download), axe-core for
# accessibility. Screenshots of every view go to SHOT_DIR.
#
#   .ci/dashboard.sh BINARY SHOT_DIR
set -euo pipefail
BIN=$(realpath "$1")
mkdir -p "$2"
SHOTS=$(realpath "$2")
if ! command -v chromium >/dev/null; then
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
cd "$(dirname "$0")/../tests/dashboard"
npm ci --no-audit --no-fund --loglevel=error
CHROMIUM=$(command -v chromium) timeout 600 node dashboard.mjs "$BIN" "$SHOTS"
