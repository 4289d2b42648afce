#!/usr/bin/env bash
# The local backend's task sandbox (batchai_jupyter/backends/local_sandbox.py, tests/security/test_job_sandbox.py):
# Debian's bubblewrap, whose bwrap runs unprivileged where user namespaces are allowed (and as root anyway).
set -euo pipefail
if command -v bwrap >/dev/null; then
    exit 0
fi
apt-get update -qq
apt-get install -y -qq bubblewrap >/dev/null
