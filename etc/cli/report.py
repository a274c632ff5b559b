"""The reporting commands: the results table and figures, the two studies' reports, the demo
video."""

from __future__ import annotations

from pathlib import Path

import click

from etc.cli.options import (
    ExistingDir,
    ExistingFile,
    PathArg,
    config_file_option,
    config_option,
    given_options,
)


class NamedPaths(click.ParamType):
    """Comma-separated NAME=PATH (or PATH: the name is its stem), as name → path; an empty
    entry (a doubled or trailing comma) or a name given twice is refused, naming the option."""

    name = "name=file,..."

    def convert(self, value, param, ctx):
        if isinstance(value, dict):
            return value
        named: dict[str, Path] = {}
        for i, item in enumerate(value.split(","), 1):
            name, _, path = item.strip().rpartition("=")
            if not path:
                self.fail(f"entry {i} of '{value}' is {'empty' if not item.strip() else 'without a path'}; "
                          f"give NAME=FILE entries separated by single commas, without a trailing comma",
                          param, ctx)
            name = name or Path(path).stem
            if name in named:
                self.fail(f"two models are named '{name}' ({named[name]} and {path}); give each its own "
                          f"NAME=FILE", param, ctx)
            named[name] = Path(path)
        return named


@click.command("report", short_help="Results table and figures.")
@config_file_option
@click.option("--metrics-dir", required=True, type=ExistingDir,
              help="Folder of `etc evaluate` JSONs (teacher.json, <student>/<ablation>.json).")
@click.option("--curves-dir", type=ExistingDir, default=None,
              help="Folder of the training CSVs (same naming). Without it, or with no CSV in it, the "
                   "training-curves figure says so and the rest of the report is written.")
@click.option("--table", required=True, type=PathArg,
              help="Results table CSV (a .md twin is written beside it).")
@click.option("--out-dir", required=True, type=PathArg,
              help="Folder for the figures (PNG + SVG).")
@click.option("--keyframe-dir", type=ExistingDir, default=None,
              help="Folder of `etc keyframe-score` rows: keyframe rows and streaming latency join "
                   "the table and figures.")
@click.option("--latency", type=ExistingFile, default=None,
              help="`etc latency`'s JSON: every row's streamed ms per frame (with --keyframe-dir).")
def report_cmd(config_path, metrics_dir, curves_dir, table, out_dir, keyframe_dir, latency):
    """The paper-style results table and the seaborn figures of the report."""
    from etc.core.config import command_config
    from etc.report.build import build_report

    info = build_report(command_config(config_path), metrics_dir, curves_dir, table, out_dir,
                        keyframe_dir, latency)
    click.echo(f"{info['rows']} rows -> {info['table']}")


@click.command("flow-study-report", short_help="Table, summary and plots of the flow study.")
@config_file_option
@click.option("--metrics-dir", required=True, type=ExistingDir,
              help="Folder of the study's `etc evaluate` JSONs "
                   "(<measuring flow>/<student>/<ablation>[.<training flow>].json).")
@click.option("--flow-dir", required=True, type=ExistingDir,
              help="Folder of the flow stores and their `etc flow-quality` JSONs "
                   "(<pairs>/<split>.<estimator>.quality.json).")
@click.option("--out-dir", required=True, type=PathArg,
              help="Folder for table.csv, table.md, summary.json and the plots.")
def flow_study_report_cmd(config_path, metrics_dir, flow_dir, out_dir):
    """How good must the training flow be, and how much does the measuring flow bias TC
    (flow_study in the config)."""
    from etc.core.config import command_config
    from etc.report.flow_study import flow_study_report

    info = flow_study_report(command_config(config_path), metrics_dir, flow_dir, out_dir)
    base = info["summary"]["bias_tc"]["baseline"]
    shown = ", ".join(f"{m} {'–' if v is None else format(v, '+.2f')}" for m, v in base.items())
    click.echo(f"{info['rows']} rows -> {info['table']}; baseline TC bias against the exact "
               f"flow: {shown}")


@click.command("seed-study-report",
               short_help="Mean ± std over student seeds of every results column.")
@config_file_option
@click.option("--results", "results_dir", required=True, type=ExistingDir,
              help="The results folder: the default run's metrics/ and seed_study/seed<N>/metrics/ "
                   "beneath it.")
@click.option("--out-dir", required=True, type=PathArg,
              help="Folder for table.csv, summary.csv, table.md and the figure.")
def seed_study_report_cmd(config_path, results_dir, out_dir):
    """How far do the ablations' differences exceed the spread over seeds (seed_study in the
    config)."""
    from etc.core.config import command_config
    from etc.report.seed_study import seed_study_report

    info = seed_study_report(command_config(config_path), results_dir, out_dir)
    seeds = ", ".join(map(str, info["seeds"]))
    click.echo(f"{info['rows']} rows over seeds {seeds} -> {info['table']}")


@click.command("demo-video", short_help="Baseline vs ETC video with flicker maps.")
@config_file_option
@click.option("--clip", "clip_name", default=None, help="Validation clip name (see the manifest).")
@click.option("--clip-index", type=click.IntRange(0), default=0, show_default=True,
              help="Without --clip: the index of the clip in the sorted validation split.")
@click.option("--models", "named", required=True, type=NamedPaths(),
              help="Comma-separated NAME=PREDICTIONS.h5 (or just PREDICTIONS.h5; the name is then "
                   "the file's stem).")
@click.option("--flow", required=True, type=ExistingFile,
              help="Flow store of the validation split.")
@click.option("--out", required=True, type=PathArg, help="MP4 (H.264) to write.")
@click.option("--gif", type=PathArg, default=None,
              help="Also write a small animated GIF (for the report).")
@config_option("--fps", key="report.fps", type=float, help="Frame rate")
def demo_video_cmd(config_path, clip_name, clip_index, named, flow, out, gif, **_options):
    """Baseline vs ETC side by side: overlays, flicker maps and running TC per model."""
    from etc.core.config import command_config
    from etc.report.video import demo_video

    config = command_config(config_path, given_options())
    info = demo_video(config, clip_name if clip_name else clip_index, named, flow, out, gif=gif)
    click.echo(f"{info['frames']} frames of {info['size'][0]}×{info['size'][1]} -> {info['out']}")


COMMANDS = [report_cmd, flow_study_report_cmd, seed_study_report_cmd, demo_video_cmd]
