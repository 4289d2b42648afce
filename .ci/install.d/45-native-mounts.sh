#!/usr/bin/env bash
# rclone and FUSE for native Blob mounts, Samba for the SMB share they mount (tests/storage/test_native_mounts.py).
set -euo pipefail
if command -v rclone >/dev/null && command -v fusermount3 >/dev/null && command -v smbd >/dev/null; then
    exit 0
fi
apt-get update -qq
apt-get install -y -qq rclone fuse3 samba >/dev/null
