"""The training command: the teacher, or one student under one ablation."""

from __future__ import annotations

import click

from etc.cli.options import (
    ExistingFile,
    PathArg,
    config_file_option,
    config_option,
    device_option,
    given_options,
)


@click.command("train", short_help="Train the teacher or one student × ablation.")
@config_file_option
@click.option("--run", required=True,
              help="'teacher' or '<student>/<ablation>' (names from the config).")
@click.option("--out", required=True, type=PathArg,
              help="Final checkpoint; FILE.last.pt holds the resumable state.")
@click.option("--flow", type=ExistingFile, default=None,
              help="Training-split flow store (needed by the temporal loss).")
@config_option("--estimator", key="flow.estimator",
               help="The estimator --flow was computed with, when not the config's "
                    "(the flow study)")
@click.option("--teacher", type=ExistingFile, default=None,
              help="Teacher checkpoint (needed by distillation terms).")
@click.option("--log-csv", type=PathArg, default=None,
              help="Per-iteration CSV (loss terms, lr, samples/s).")
@config_option("--seed", key="train.{which}.seed",
               shown="train.teacher.seed or train.student.seed, by --run",
               type=click.IntRange(0), help="Initialisation and batch-order seed")
@device_option()
def train_cmd(config_path, run, out, flow, teacher, log_csv, device, **_options):
    """Train the teacher or one student under one ablation; resumes after a kill.

    Multi-GPU / multi-node: launch with `torchrun --nproc_per_node N -m etc -- train ...`
    (DDP; gloo on CPU, NCCL + SyncBatchNorm on GPU); the global batch is split across ranks.
    """
    from etc.core.config import command_config
    from etc.flow.roles import check_training_store
    from etc.train.loop import train

    which = "teacher" if run == "teacher" else "student"
    config = command_config(config_path, given_options(which=which))
    if flow is not None:
        check_training_store(flow, config)
    summary = train(config, run, out, flow=flow, teacher=teacher, log_csv=log_csv, device=device)
    if summary.get("rank", 0) == 0:
        on = f" on {summary['processes']} processes" if summary.get("processes", 1) > 1 else ""
        click.echo(f"{summary['run']}: {summary['iterations']} iterations{on} "
                   f"(resumed from {summary['resumed_from']})")


COMMANDS = [train_cmd]
