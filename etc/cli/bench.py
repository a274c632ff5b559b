"""What the models cost: the benchmark suite, every model's streaming latency, parameters and
GFLOPs."""

from __future__ import annotations

from pathlib import Path

import click

from etc.cli.options import ExistingDir, PathArg, config_file_option, device_option
from etc.core.errors import EtcError


@click.command("bench", short_help="Measured speed, overhead and memory ratios.")
@config_file_option
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--quick", is_flag=True,
              help="Small sizes and few repeats: a short check, fit for a CPU.")
@click.option("--scale", type=click.Choice(["small", "paper"]), default="small", show_default=True,
              help="paper: the config's networks at 1024×2048 (pass "
                   "workflow/configs/cityscapes.yaml; a short GPU check, scripts/gpu_check.sh): "
                   "infer vs bare forward, training vs loader-free steps, peak GPU memory and the "
                   "preset's estimated wall time. With --quick: 64×128 frames.")
@click.option("--out", type=PathArg, default=Path("results/bench.csv"), show_default=True,
              help="CSV of (benchmark, metric, value, unit, device); a .md twin is written "
                   "beside it.")
@click.option("--results", "results_dir", type=PathArg, default=None,
              help="Results folder whose Snakemake benchmark TSVs to gather (default: OUT's "
                   "folder).")
def bench_cmd(config_path, device, quick, scale, out, results_dir):
    """Inference parity, pipeline efficiency, training overhead, flow stage, memory."""
    from etc.bench.suite import run_bench
    from etc.core.config import command_config

    rows, lines = run_bench(command_config(config_path), out, device=device, quick=quick,
                            results_dir=results_dir, scale=scale)
    for line in lines:
        click.echo(line)
    click.echo(f"{len(rows)} figures -> {out}")


@click.command("latency",
               short_help="Every model's latency per frame, timed in turns in one process.")
@config_file_option
@click.option("--models", "models_dir", required=True, type=ExistingDir,
              help="Folder of the checkpoints (<run>.pt: teacher.pt, <student>/<ablation>.pt).")
@click.option("--split", default=None,
              help="Split whose frames are streamed (default: dataset.val_split).")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Stream the first whole clips holding at least this many frames "
                   "(default: keyframe.latency_frames).")
@click.option("--out", required=True, type=PathArg,
              help="JSON: per run its frame_ms and their mean, p50, p95, max.")
@device_option()
def latency_cmd(config_path, models_dir, split, frames, out, device):
    """Stream the comparison's models (every per-frame model, keyframe.model at every interval ×
    propagation) through the same frames, each frame through every model in turn, so that the
    machine's drift hits all alike; the rows' ms/frame stream columns come from here."""
    from etc.bench.latency import comparison_runs, stream_latency
    from etc.core.config import command_config

    config = command_config(config_path)
    runs = comparison_runs(config, models_dir)
    missing = [str(ckpt) for ckpt, _ in runs.values() if not Path(ckpt).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise EtcError(f"--models {models_dir}: no checkpoint {missing[0]}{more}"
                       "; train the config's runs first (snakemake does)")
    record = stream_latency(config, runs, split or config["dataset"]["val_split"], out,
                            frames=frames or config["keyframe"]["latency_frames"], device=device)
    for name, r in record["runs"].items():
        click.echo(f"{name}: {r['ms_per_frame_mean']:.2f} ms/frame mean, "
                   f"{r['ms_per_frame_max']:.2f} max")


@click.command("model-info", short_help="Parameters and GFLOPs of every model.")
@config_file_option
@click.option("--height", type=click.IntRange(8), default=1024, show_default=True,
              help="Frame height for GFLOPs.")
@click.option("--width", type=click.IntRange(8), default=2048, show_default=True,
              help="Frame width for GFLOPs.")
@click.option("--all", "every", is_flag=True,
              help="Every registered architecture × backbone (schema defaults) instead of the "
                   "config's models.")
def model_info_cmd(config_path, height, width, every):
    """Parameters and GFLOPs (FLOPs = 2 × multiply-adds) of the teacher and every student.

    smp architectures pad a frame to a multiple of their stride (32; DeepLabV3+ 16): GFLOPs
    are those of the padded frame.
    """
    from etc.core.config import command_config, load_config
    from etc.data.labels import num_classes
    from etc.models import model_summary, registered_models

    config = command_config(config_path)
    k = num_classes(config["dataset"]["name"])
    if every:
        specs = {f"{a}-{b}": {"arch": a, "backbone": b} for a, b in registered_models()}
        defaults = load_config(None, {"students": specs})["students"]  # the schema's defaults
        models = [("", m) for m in defaults.values()]
    else:
        models = [("teacher: ", config["teacher"]),
                  *((f"student/{s}: ", m) for s, m in config["students"].items())]
    for label, spec in models:
        r = model_summary(spec, k, height, width)
        click.echo(f"{label}{r['model']}, {r['params']:,} parameters ({r['params_with_aux']:,} "
                   f"with the aux head), {r['gflops']:.2f} GFLOPs at {height}×{width}")


COMMANDS = [bench_cmd, latency_cmd, model_info_cmd]
