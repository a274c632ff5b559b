"""The timing every benchmark shares: one row format, medians, models timed in turns."""

from __future__ import annotations

import logging
import statistics
import time

import torch

from etc.core.device import sync

log = logging.getLogger(__name__)


class Rows:
    def __init__(self, device: str):
        self.rows: list[dict] = []
        self.device = device

    def add(self, benchmark: str, metric: str, value: float, unit: str) -> None:
        self.rows.append({"benchmark": benchmark, "metric": metric, "value": float(value), "unit": unit, "device": self.device})
        log.info("%s %s = %.4g %s", benchmark, metric, value, unit)


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_ms(models: dict, h: int, w: int, device, repeats: int, warmup: int = 2) -> dict:
    """Best ms per forward of each model, the models taking turns forward by forward so that
    drift (thermal, other processes, allocator state) hits all of them alike. The minimum, not
    the median: the work is deterministic and noise only adds (even medians of two identical
    networks differ)."""
    x = torch.randn(1, 3, h, w, device=device)
    times: dict = {name: [] for name in models}
    with torch.no_grad():
        for _ in range(warmup):
            for m in models.values():
                m(x)
        for _ in range(repeats):
            for name, m in models.items():
                sync(device)
                t0 = time.perf_counter()
                m(x)
                sync(device)
                times[name].append(time.perf_counter() - t0)
    return {name: 1000.0 * min(v) for name, v in times.items()}
