#!/usr/bin/env bash
# The SSH backend's tests (tests/ssh/) start real OpenSSH servers, each in a network namespace of
# its own: Debian's openssh-server (sshd), openssh-client (ssh, scp, ssh-keygen; the benchmark's
# scp baseline) and iproute2 (ip netns, veth pairs). The fixture writes its own sshd_config and keys.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
have_all() {
    [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v scp >/dev/null \
        && command -v ssh-keygen >/dev/null && command -v ip >/dev/null && command -v unshare >/dev/null
}
if ! have_all; then
    apt-get update -qq
    apt-get install -y -qq openssh-server openssh-client iproute2 util-linux >/dev/null
fi
have_all || { echo "20-sshd.sh: sshd, ssh, scp, ssh-keygen, ip or unshare is still missing after installing" >&2; exit 1; }
# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd
# paramiko: the backend's SSH library (a project dependency; installed here too for older venvs).
python -c "import paramiko" 2>/dev/null || python -m pip install -q "paramiko>=3.4"
