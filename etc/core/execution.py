"""How a process computes: decode workers and the per-device execution options behind the
config's ``auto`` values (``train.*`` schedules and ``infer``).

``auto`` resolves by device type. The CPU values are the ones `etc bench` found fastest on the
CPU the pipeline was tuned on (docs/performance.md); the CUDA values are the usual choices
for tensor-core GPUs and await the GPU benchmark (``scripts/gpu_check.sh``), which measures
each of them. An explicit true/false in the config always wins.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

AUTO = "auto"

# Decode workers on an accelerator: every CPU the process may use but one (which launches the
# kernels and copies batches), at most this many (each training worker is a process holding
# its batches: past this, more workers cost memory and start-up, not speed); on CPU none.
MAX_AUTO_WORKERS = 16

# What ``auto`` means, per use and device type (other device types take the CPU column).
# infer, CPU: channels_last is far faster than NCHW (docs/performance.md); bf16 and
# compile gave no further gain there. train, CPU: NCHW fp32 as ever (changing it would change
# every number a CPU run produces). CUDA: channels_last + bf16 autocast + cudnn.benchmark,
# compile off; on a GPU, without cudnn.benchmark, the CPU-tuned inference path ran slower with
# channels_last, + bf16 and + compile than in plain NCHW fp32, so these are not settled:
# the GPU benchmark decides.
DEFAULTS = {
    "infer": {
        "cpu": {"channels_last": True, "bf16": False, "cudnn_benchmark": False, "compile": False,
                "fused_labels": True},
        "cuda": {"channels_last": True, "bf16": True, "cudnn_benchmark": True, "compile": False,
                 "fused_labels": False},
    },
    "train": {
        "cpu": {"channels_last": False, "bf16": False, "cudnn_benchmark": False, "compile": False},
        "cuda": {"channels_last": True, "bf16": True, "cudnn_benchmark": True, "compile": False},
    },
}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: what a SLURM/Kubernetes job was given,
    not the machine's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cpus_per_process() -> int:
    """This process's share of the usable CPUs when torchrun starts several on one node: of the
    job's threads where the environment names them (Snakemake sets OMP_NUM_THREADS to a rule's
    threads, and torchrun keeps a value it finds), else of the affinity mask."""
    cpus = usable_cpus()
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        cpus = min(cpus, int(given))
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


def auto_workers(device: torch.device | str, use: str = "train") -> int:
    """Decode workers for ``num_workers: auto``.

    CUDA: ``min(MAX_AUTO_WORKERS, cpus_per_process() - 1)``, at least 1: the GPU waits on
    decoding otherwise (decoding a PNG on the main thread takes longer than the forward pass
    on that frame). CPU, ``infer``: torch's thread count (at most MAX_AUTO_WORKERS;
    0 when it is 1), each batch's frames decoded at once between forward passes, on the cores
    the network uses while it runs: faster than one decoding thread at large frames and as
    fast at small ones (docs/performance.md); a thread decoding ahead *beside* the network was
    slower, as the network already uses every core. CPU,
    ``train``: 0 — DataLoader processes would run beside the network, which keeps every core
    busy through the step.
    """
    if torch.device(device).type == "cuda":
        return max(1, min(MAX_AUTO_WORKERS, cpus_per_process() - 1))
    if use != "infer":
        return 0
    return thread_share_workers(MAX_AUTO_WORKERS)


def thread_share_workers(cap: int | None = None) -> int:
    """Workers that take turns with the network on the cores torch was given (at most ``cap``):
    torch's thread count, or none when that is 1 — Snakemake sets it to a rule's threads, so
    its jobs running side by side are not multiplied."""
    threads = torch.get_num_threads() if cap is None else min(cap, torch.get_num_threads())
    return threads if threads >= 2 else 0


def resolve_workers(value, device: torch.device | str, use: str = "train") -> int:
    return auto_workers(device, use) if value == AUTO else int(value)


@dataclass(frozen=True)
class Execution:
    """The resolved execution options of one command on one device."""

    channels_last: bool
    bf16: bool
    cudnn_benchmark: bool
    compile: bool
    num_workers: int
    fused_labels: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def apply(self, device: torch.device) -> None:
        """Process-wide settings: cudnn's autotuner (CUDA only; it is process-wide in torch)."""
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def describe(self) -> dict:
        return asdict(self)


def resolve_execution(section: dict, device: torch.device | str, use: str) -> Execution:
    """``section``'s channels_last / bf16 / cudnn_benchmark / compile / num_workers with every
    ``auto`` (or absent key) replaced by the DEFAULTS of ``use`` ('infer' or 'train') on
    ``device``."""
    dev = torch.device(device)
    defaults = DEFAULTS[use]["cuda" if dev.type == "cuda" else "cpu"]
    chosen = {k: bool(default if section.get(k, AUTO) == AUTO else section[k]) for k, default in defaults.items()}
    return Execution(**chosen, num_workers=resolve_workers(section.get("num_workers", AUTO), dev, use))
