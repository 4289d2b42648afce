#!/usr/bin/env bash
# podman with runc (Debian's default crun fails on hosts whose cgroups run in hybrid mode), and Debian's
# docker-registry for the private registry of tests/containers/.
set -euo pipefail
if command -v podman >/dev/null && command -v runc >/dev/null && command -v docker-registry >/dev/null; then
    exit 0
fi
apt-get update -qq
apt-get install -y -qq podman runc docker-registry >/dev/null
