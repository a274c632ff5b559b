#!/usr/bin/env bash
# Download, on a machine with pip access, the wheels that the GPU machine lacks for
# scripts/gpu_check.sh, into .whl/ (ignored by git; name it in the device call's `carry`).
# The GPU image (Python 3.12, x86-64, torch 2.11) has torch, timm, h5py, opencv, pandas, click,
# tqdm, pyyaml and attrs, but not jsonschema (config validation) and its dependencies, nor
# cityscapesScripts (the label table; installed without its own dependencies, which the
# table does not import). The paper benchmark needs neither ptlflow nor its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
exclude=$(git rev-parse --git-path info/exclude)
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
mkdir -p .whl
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 \
  cityscapesScripts==2.3.0
ls -la .whl
