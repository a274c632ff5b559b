#!/usr/bin/env bash
# The GPU check of issue 14, run once from the repository root on a machine with one CUDA GPU
# (≤ 6 minutes on an H100, set generation included):
#
#   bash scripts/fetch_gpu_wheels.sh          # first, where pip works: fills .whl/
#   bash scripts/gpu_check.sh                 # on the GPU machine (device tool: carry .whl)
#
# It installs the wheels from .whl/ when the Python lacks them (into a private folder: the machine's
# Python is left alone), runs `etc bench --device cuda --scale paper` with the Cityscapes
# preset's networks, and writes bench.csv, bench.md, bench.log and env.txt to $OUT (default
# results/gpu_check). What each figure means: etc/bench/paper.py. A dry run of the same path on
# a CPU, at 64×128: DEVICE=cpu QUICK=1 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
# only where the Python lacks them: the wheels are built for the GPU image's Python 3.12
if compgen -G ".whl/*.whl" > /dev/null && ! "$PY" -c "import jsonschema, cityscapesscripts" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/etc-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/etc-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
{
  "$PY" - <<'PYEOF'
import os, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version())
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
print("cpus (affinity)", len(os.sched_getaffinity(0)), "of", os.cpu_count())
from etc.core.execution import DEFAULTS, auto_workers
print("auto workers on cuda:", auto_workers("cuda"), "| auto options:", DEFAULTS)
PYEOF
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
start=$(date +%s)
timeout "${BENCH_TIMEOUT:-450}" "$PY" -m etc -v bench --device "${DEVICE:-cuda}" --scale paper ${QUICK:+--quick} \
  --config "${CONFIG:-workflow/configs/cityscapes.yaml}" --out "$OUT/bench.csv" 2>&1 | tee "$OUT/bench.log"
rc=${PIPESTATUS[0]}
echo "gpu_check: etc bench exited $rc after $(( $(date +%s) - start )) s" | tee -a "$OUT/bench.log"
exit "$rc"
