"""The dataset's commands: write the synthetic set, check a dataset tree."""

from __future__ import annotations

from pathlib import Path

import click

from etc.cli.options import (
    PathArg,
    config_file_option,
    config_option,
    dataset_option,
    given_options,
    root_option,
)
from etc.data.sets.folder import LAYOUT as FOLDER_LAYOUT


@click.command("make-synthetic", short_help="Generate the synthetic driving-video dataset.")
@config_file_option
@config_option("--out", key="dataset.root", type=click.Path(),
               help="Dataset root to write (Cityscapes layout)")
@config_option("--clips", key="dataset.synthetic.train_clips", type=int, help="Training clips")
@config_option("--val-clips", key="dataset.synthetic.val_clips", type=int,
               help="Validation clips")
@config_option("--frames", key="dataset.synthetic.frames", type=int, help="Frames per clip")
@config_option("--height", key="dataset.synthetic.height", type=int,
               help="Frame height in pixels")
@config_option("--width", key="dataset.synthetic.width", type=int, help="Frame width in pixels")
@config_option("--seed", key="dataset.synthetic.seed", type=int, help="Same seed, identical files")
def make_synthetic_cmd(config_path, **_options):
    """Generate the synthetic driving-video dataset with exact labels, flow and occlusion."""
    from etc.core.config import command_config
    from etc.data.synthetic import make_synthetic

    config = command_config(config_path, given_options())
    click.echo(make_synthetic(Path(config["dataset"]["root"]), **config["dataset"]["synthetic"]))


@click.command("check-data", short_help="Verify a dataset tree and write its manifest.",
               epilog=f"Your own data (--dataset folder): {FOLDER_LAYOUT}. Every problem of such a "
                      "tree is listed with its file and fix (docs/own-data.md).")
@config_file_option
@dataset_option
@root_option
@click.option("--manifest", type=PathArg, default=None,
              help="Write the manifest (JSON): what was found and checked, the record of this "
                   "check.")
@click.option("--splits", default=None,
              help="Comma-separated splits to check [dataset.train_split,dataset.val_split].")
@click.option("--deep/--shallow", default=True, show_default=True,
              help="Decode every image (finds corrupt files) or only read PNG headers "
                   "(labels are always decoded).")
def check_data_cmd(config_path, manifest, splits, deep, **_options):
    """Verify a dataset tree (folders, counts, sizes, label ids, frame continuity).

    Exits with code 2 and a one-line message naming the first offending path (and, for a
    missing dataset, how to obtain it and the expected layout).
    """
    from etc.core.config import command_config
    from etc.data.check import check_dataset

    config = command_config(config_path, given_options())
    ds = config["dataset"]
    if splits is not None:
        chosen = [s.strip() for s in splits.split(",") if s.strip()]
    else:
        chosen = [ds["train_split"], ds["val_split"]]
    report = check_dataset(ds["name"], Path(ds["root"]), splits=chosen, manifest=manifest,
                           deep=deep, window=ds["window"])
    click.echo(report.summary())


COMMANDS = [make_synthetic_cmd, check_data_cmd]
