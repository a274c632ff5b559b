"""Training steps with etc's upsampling gradient (etc.models.layers.upsample_bilinear) against
plain ``F.interpolate``, alternated in one process: the step time's ratio per run.

    python benchmarks/bench_upsample_grad.py [--config config.yaml] [--results results]
                                             [--rounds 6] [--steps 4] [RUN ...]

Reads the default run's data, training flow store and teacher under ``--results`` (as
benchmarks/bench_train_step.py does). Each round times ``--steps`` steps of each path on the
same batches (after one untimed step); the medians over rounds and their ratio are printed.
Both paths give bitwise the same gradients (tests/test_models.py), so the ratio is pure speed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))  # bench_train_step's lookup of the default run


@click.command()
@click.option("--config", "config_path", default="config.yaml", show_default=True, type=click.Path(exists=True))
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--rounds", default=6, show_default=True, type=click.IntRange(1))
@click.option("--steps", default=4, show_default=True, type=click.IntRange(1))
@click.argument("runs", nargs=-1)
def main(config_path, results, rounds, steps, runs):
    import torch
    import torch.nn.functional as F
    from bench_train_step import default_run_inputs

    import etc.models.layers as layers
    from etc.core.config import load_config
    from etc.core.device import cpu_description
    from etc.plan.runs import TEACHER, resolve_run, student_run_names
    from etc.train.loop import build_run, train_step

    torch.set_num_threads(1)
    cfg = load_config(config_path, {})
    flow, teacher = default_run_inputs(cfg, results)
    ours = layers._BilinearUp
    plain = type("Plain", (), {"apply": staticmethod(
        lambda x, size: F.interpolate(x, size, mode="bilinear", align_corners=False))})
    print(f"{cpu_description()}, 1 torch thread")
    try:
        for run in runs or [TEACHER, *student_run_names(cfg)]:
            training = build_run(cfg, resolve_run(cfg, run), Path("/nonexistent/none.last.pt"), flow=flow,
                                 teacher=teacher, device="cpu")
            batches = iter(training.loader)
            batches = [next(batches) for _ in range(steps)]
            ms = {"plain": [], "etc": []}
            for _ in range(rounds):
                for name, path in (("plain", plain), ("etc", ours)):
                    layers._BilinearUp = path
                    train_step(training, batches[0])
                    t0 = time.perf_counter()
                    for batch in batches:
                        train_step(training, batch)
                    ms[name].append((time.perf_counter() - t0) / steps * 1000)
            p, o = statistics.median(ms["plain"]), statistics.median(ms["etc"])
            print(f"{run}: F.interpolate {p:.0f} ms/step, etc {o:.0f} ms/step, ratio {o / p:.3f}", flush=True)
    finally:
        layers._BilinearUp = ours


if __name__ == "__main__":
    main()
