"""The CPU a time was measured on is named with every time: model, kernels, instruction sets."""

from __future__ import annotations

import os
import subprocess
import sys


def test_cpu_description_names_the_kernels_torch_runs():
    code = "from etc.core.device import cpu_description; print(cpu_description())"
    native = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=env).stdout
    assert "torch kernels DEFAULT, oneDNN ≤ SSE41" in plain, plain  # the restriction is recorded
    assert native.rstrip().endswith("threads") and "CPU " in native
