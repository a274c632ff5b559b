"""Where a training step's time goes: data, device copy, student forward, teacher, loss terms,
backward, optimiser — per ablation, with and without the teacher's table (etc.train.teacher_cache).

    python benchmarks/bench_train_step.py [--config config.yaml] [--results results] [--steps 30]
                                       [--threads 1] [--device cpu] [--out results/bench_train_step.csv]

Reads the default run's data, training flow store and teacher checkpoint under ``--results``
(run `snakemake --cores all train_teacher` or the default run first). Each run is built as
`etc train` builds it (etc.train.loop.build_run) and stepped through etc.train.loop.train_step with a
timer around each part (the device synchronised at each boundary); the first
``--warmup`` steps are left out and the median of the rest is printed, in ms per step, with
the table build's own seconds, and each run's network arithmetic per second of step as a ratio
to the teacher's (``rate_vs_teacher``: how much of a step its convolutions fill, a figure that
holds across machines). One process, runs in turn: ratios are of one machine state.
About 3 minutes on one CPU core at the default config.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python benchmarks/bench_train_step.py` from a checkout imports its etc

PHASES = ("data", "device", "student", "teacher", "loss", "backward", "optimizer")


def default_run_inputs(cfg: dict, results) -> tuple[Path, Path]:
    """The training flow store and the teacher checkpoint of the default run under ``results``."""
    from etc.plan.layout import PAIRS, run_path, store_path
    from etc.plan.runs import TEACHER

    ds = cfg["dataset"]
    flow = store_path(Path(results, "flow"), PAIRS["train"], ds["train_split"], cfg["flow"]["estimator"])
    teacher = run_path(results, "models", TEACHER)
    for path in (flow, teacher):
        if not path.is_file():
            raise click.ClickException(f"{path} is missing: run the default workflow (snakemake --cores all) first")
    return flow, teacher


def time_steps(training, steps: int, warmup: int) -> dict[str, float]:
    """Median ms per step of each phase over ``steps`` steps after ``warmup``."""
    from etc.core.device import sync
    from etc.train.loop import train_step

    times: dict[str, list[float]] = {p: [] for p in PHASES}
    current: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(name):
        sync(training.device)
        t0 = time.perf_counter()
        yield
        sync(training.device)
        current[name] = current.get(name, 0.0) + time.perf_counter() - t0

    batches = iter(training.loader)
    for i in range(warmup + steps):
        current.clear()
        with phase("data"):
            batch = next(batches)
        train_step(training, batch, phase=phase)
        if i >= warmup:
            for p in PHASES:
                times[p].append(1000 * current.get(p, 0.0))
    out = {p: statistics.median(v) for p, v in times.items()}
    out["total"] = sum(out.values())
    return out


def step_gflop(training, batch: dict, student_gflops: float, teacher_gflops: float) -> float:
    """The network arithmetic of one step, in GFLOP: the student's forward on every frame of the
    step, its backward (taken as twice the forward) where the frame has gradients, and the
    teacher's forward on every frame when it runs online (its table needs none)."""
    b = int(batch["image_t"].shape[0])
    if training.run.name == "teacher":
        return 3 * student_gflops * b
    frames = 1 + int(training.run.needs("needs_neighbour")) + int("image_third" in batch)
    student = student_gflops * b * (3 + (frames - 1) * (3 if training.neighbour_grad else 1))
    teacher = teacher_gflops * b * frames if training.teacher is not None and training.teacher_cache is None else 0
    return student + teacher


@click.command()
@click.option("--config", "config_path", default="config.yaml", show_default=True, type=click.Path(exists=True))
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="The run whose teacher checkpoint and training flow store to use.")
@click.option("--steps", default=30, show_default=True, type=click.IntRange(1))
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1),
              help="torch threads (the default run's training jobs have 1).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", default="results/bench_train_step.csv", show_default=True, type=click.Path(dir_okay=False))
def main(config_path, results, steps, warmup, threads, device, out):
    import pandas as pd
    import torch

    from etc.core.config import load_config
    from etc.core.device import checked_device
    from etc.plan.runs import TEACHER, resolve_run, student_run_names
    from etc.train.loop import build_run

    torch.set_num_threads(threads)
    dev = checked_device(device)
    cfg = load_config(config_path, {})
    flow, teacher = default_run_inputs(cfg, results)
    rows = []
    for run in [TEACHER, *student_run_names(cfg)]:
        spec = resolve_run(cfg, run)
        for cache in ((True, False) if spec.needs("needs_teacher") else (False,)):
            mb = spec.schedule["teacher_cache_mb"] if cache else 0
            c = load_config(config_path, {"train": {"student": {"teacher_cache_mb": mb}}})
            t0 = time.perf_counter()
            training = build_run(c, resolve_run(c, run), Path("/nonexistent/none.last.pt"), flow=flow, teacher=teacher,
                                 device=str(dev))
            build_s = time.perf_counter() - t0
            ms = time_steps(training, steps, warmup)
            sample = next(iter(training.loader))
            gflop = step_gflop(training, sample, model_gflops(training.model, sample),
                               model_gflops(training.teacher, sample) if training.teacher is not None else 0)
            rows.append({"run": run, "teacher_cache": cache, **{k: round(v, 2) for k, v in ms.items()},
                         "gflop_per_s": round(gflop / (ms["total"] / 1000), 2),
                         "build_s": round(build_s, 2),
                         "run_s": round(build_s + ms["total"] * int(spec.schedule["iterations"]) / 1000, 1)})
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    df = pd.DataFrame(rows)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    print(f"\nms per step (median of {steps} after {warmup} warm-up steps, {threads} thread(s), {dev}); "
          f"run_s = build + total × iterations\n")
    df["rate_vs_teacher"] = (df.gflop_per_s / df.gflop_per_s[df.run == TEACHER].iloc[0]).round(3)
    print(df.to_markdown(index=False))
    print("\nrate_vs_teacher: the run's network GFLOP per second of step over the teacher's in this "
          "process; 1 = a step as bound by its convolutions as the teacher's, lower = overhead")
    cached = df[df.teacher_cache].set_index("run")
    online = df[(~df.teacher_cache) & df.run.isin(cached.index)].set_index("run")
    if len(cached):
        print("\nteacher table over online teacher, step time: "
              + ", ".join(f"{r} {cached.total[r] / online.total[r]:.2f}" for r in cached.index))
    print(f"\nwritten: {out}")


def model_gflops(model, batch: dict) -> float:
    """Forward GFLOP of one frame of the batch's size (etc.models.info.gflops)."""
    from etc.models.info import gflops

    h, w = batch["image_t"].shape[-2:]
    return gflops(model, int(h), int(w))


if __name__ == "__main__":
    main()
