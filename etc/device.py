"""Which device a process computes on, and the process group it belongs to.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; a plain run is rank 0 of a world of 1.
"""

from __future__ import annotations

import os

import torch


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
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", dist_info()[2])
    return torch.device("cpu")


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work, so that wall-clock timings cover it; no-op elsewhere."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
