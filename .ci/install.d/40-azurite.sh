#!/usr/bin/env bash
# Azurite, Microsoft's Azure Storage emulator, for the Blob datastore tests (tests/storage/).
set -euo pipefail
if command -v azurite-blob >/dev/null; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi
npm install --global --silent --no-audit --no-fund azurite@3 >/dev/null
command -v azurite-blob >/dev/null || { echo "azurite-blob is not on PATH after npm install -g azurite@3" >&2; exit 1; }
