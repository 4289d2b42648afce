#!/usr/bin/env bash
# Jobs in images (tests/containers/, tests/notebook/test_magics_images.py): podman with runc (Debian's
# default crun fails on hosts whose cgroups run in hybrid mode) and catatonit (podman's --init, which passes
# a terminate on to the task), Debian's docker-registry for the tests' private registry, and skopeo (a node
# asks the registry whether a job may use an image the node has by its manifest only).
set -euo pipefail
if command -v podman >/dev/null && command -v runc >/dev/null && command -v catatonit >/dev/null \
    && command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
    exit 0
fi
apt-get update -qq
apt-get install -y -qq podman runc catatonit docker-registry skopeo >/dev/null
