"""The optical flow's commands: compute the flow stores, judge one against a reference."""

from __future__ import annotations

import click

from etc.cli.options import (
    ExistingFile,
    PathArg,
    config_file_option,
    config_option,
    dataset_option,
    device_option,
    given_options,
    root_option,
)


class IntList(click.ParamType):
    """Comma-separated integers (-2,-1,1,2,3)."""

    name = "ints"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            self.fail(f"expected comma-separated integers such as -2,-1,1,2,3, got '{value}'",
                      param, ctx)


@click.command("precompute-flow", short_help="Flow + occlusion of every needed pair (HDF5).")
@config_file_option
@dataset_option
@root_option
@config_option("--window", key="dataset.window", type=IntList(),
               help="Neighbour offsets, e.g. -2,-1,1,2,3")
@click.option("--split", required=True, help="Split whose pairs to compute (e.g. train, val).")
@click.option("--out", required=True, type=PathArg,
              help="HDF5 store to write (NAME.partial.h5 beside it until every pair is in).")
@config_option("--estimator", key="flow.estimator", help="dis | dis:fast | gt | ptlflow:<model>")
@config_option("--ckpt", key="flow.ckpt", type=click.Path(),
               help="Local checkpoint of a ptlflow model, never downloaded")
@click.option("--pairs", type=click.Choice(["training", "consecutive", "both"]), default=None,
              help="Labelled frame × window, consecutive frames, or both (default: training for "
                   "the training split, else consecutive).")
@config_option("--scale", key="flow.scale", type=float,
               help="Store flow at this fraction of the resolution")
@config_option("--dtype", key="flow.dtype", type=click.Choice(["float16", "float32"]),
               help="Stored precision")
@click.option("--compression", type=click.Choice(["lzf", "gzip", "none"]), default="lzf",
              show_default=True, help="HDF5 filter (gzip: smaller, slower to write).")
@config_option("--batch-size", key="flow.batch_size", type=int, help="Pairs per estimator call")
@device_option(" for ptlflow models")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Stop after N new pairs (rerun to continue).")
def precompute_flow_cmd(config_path, split, out, pairs, compression, device, limit, **_options):
    """Forward/backward flow and occlusion for every needed pair, in HDF5; resumable."""
    from etc.core.config import command_config
    from etc.flow.precompute import precompute_flow

    config = command_config(config_path, given_options())
    r = precompute_flow(config, split, out, pairs=pairs, compression=compression, device=device,
                        limit=limit)
    if r.get("skipped"):
        click.echo(f"{r['out']} is complete; nothing to do")
    else:
        click.echo(f"{r['done']}/{r['pairs']} pairs ({r['computed']} computed, "
                   f"{r['pairs_per_s']:.1f} pairs/s) -> {r['out']}")


@click.command("flow-quality",
               short_help="End-point error and occlusion agreement against a reference flow.")
@click.option("--flow", required=True, type=ExistingFile,
              help="Flow store to judge (etc precompute-flow).")
@click.option("--reference", required=True, type=ExistingFile,
              help="Reference store of the same split and pairs (on the synthetic set: "
                   "--estimator gt).")
@click.option("--out", type=PathArg, default=None,
              help="Summary JSON (default: FLOW with .quality.json).")
@click.option("--csv", type=PathArg, default=None, help="Per-pair CSV (both directions).")
def flow_quality_cmd(flow, reference, out, csv):
    """EPE (all visible pixels, share over 1 and 3 px) and occlusion IoU/agreement, pooled and
    per pair."""
    from etc.flow.quality import flow_quality

    out = out or flow.with_name(flow.stem + ".quality.json")
    r = flow_quality(flow, reference, out, csv)
    click.echo(f"{r['estimator']} vs {r['reference_estimator']}: EPE {r['epe']:.3f} px, "
               f">3 px {100 * r['over_3px']:.2f} %, occlusion IoU {r['occ_iou']:.3f} "
               f"over {r['pairs']} pairs -> {out}")


COMMANDS = [precompute_flow_cmd, flow_quality_cmd]
