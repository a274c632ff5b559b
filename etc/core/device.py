"""Which device a process computes on, and the process group it belongs to.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; a plain run is rank 0 of a world of 1.
"""

from __future__ import annotations

import os

import torch

from etc.core.errors import EtcError


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched by torchrun (NCCL on CUDA, gloo elsewhere)."""
    rank, world, _ = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world


def pick_device(name: str | None = None) -> torch.device:
    """``name`` when given, else this process's CUDA device when there is one, else the CPU."""
    if name:
        return checked_device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", dist_info()[2])
    return torch.device("cpu")


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work, so that wall-clock timings cover it; no-op elsewhere."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def checked_device(name: str) -> torch.device:
    """``name`` as a device this machine has: a device type torch does not know, CUDA without
    a GPU or a GPU index past the last one is an EtcError naming what there is."""
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise EtcError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise EtcError(f"--device {name}: this machine has no CUDA GPU (or torch was built without CUDA); use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise EtcError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 … cuda:{count - 1}")
    elif dev.type not in ("cpu", "mps", "xpu"):
        raise EtcError(f"--device {name!r}: etc runs on cpu or cuda")
    return dev


# CPU instruction sets that decide which kernels torch and oneDNN run, widest first: a time
# measured on one says little about another (AVX2-only machines run the same step far slower).
ISA_FLAGS = ("amx_tile", "avx512_bf16", "avx512f", "avx2")


def cpu_description() -> str:
    """The CPU a time was measured on: model, the kernels torch dispatches to (which
    ATEN_CPU_CAPABILITY can restrict), the CPU's widest instruction sets, and torch's threads."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the model from platform only
        pass
    isa = " ".join(f for f in ISA_FLAGS if f in flags) or "unknown"
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA")
    kernels = torch.backends.cpu.get_cpu_capability() + (f", oneDNN ≤ {onednn}" if onednn else "")
    return f"{model}; torch kernels {kernels}, CPU {isa}; {torch.get_num_threads()} threads"
