#!/usr/bin/env bash
# The Slurm backend's tests (tests/slurm/) start a real slurmctld, two slurmd and munged:
# Debian's slurm-wlm and munge packages. The fixture writes its own slurm.conf and munge key.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
    exit 0
fi
apt-get update -qq
apt-get install -y -qq slurm-wlm munge >/dev/null
for tool in slurmctld slurmd sbatch squeue scontrol scancel sinfo srun munged; do
    command -v "$tool" >/dev/null || { echo "30-slurm.sh: $tool is still missing after installing slurm-wlm" >&2; exit 1; }
done
