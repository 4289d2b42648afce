#!/usr/bin/env bash
# The JupyterLab panel's tests: Debian's chromium (driven by Playwright), Node.js for the build, the
# panel's npm dependencies (locked), a fresh build of the prebuilt bundle, and a reinstall so the
# bundle's copy under share/jupyter/labextensions is the one just built.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v chromium >/dev/null || { echo "40-lab.sh: chromium did not install" >&2; exit 1; }

cd labextension
# The bundle users get from `pip install .` is the committed one: it must be built from these sources.
python sources_digest.py check
jlpm install --immutable >/tmp/batchai-lab-install.log 2>&1 || { cat /tmp/batchai-lab-install.log >&2; exit 1; }
jlpm build >/tmp/batchai-lab-build.log 2>&1 || { cat /tmp/batchai-lab-build.log >&2; exit 1; }
cd ..
python -m pip install -q --no-deps -e .
