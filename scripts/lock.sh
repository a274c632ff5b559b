#!/usr/bin/env bash
# Refresh constraints.txt, the pinned environment the README's install and CI use: every
# dependency of the package and of its test, onnx and slurm extras, resolved by uv for
# CPython 3.11 on x86_64 Linux (manylinux_2_28). Run from anywhere; review the diff, rerun the
# tests and the default workflow before committing a refreshed file.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/uv" && "$tmp/uv/bin/pip" install --quiet uv
"$tmp/uv/bin/uv" pip compile pyproject.toml --extra test --extra onnx --extra slurm \
  --constraint scripts/lock-overrides.txt \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --custom-compile-command "scripts/lock.sh" --output-file constraints.txt
