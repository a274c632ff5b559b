"""The scoring commands: the metrics of one model's predictions, of any method's label maps, and
a keyframe run's row."""

from __future__ import annotations

import click

from etc.cli.options import (
    DATASETS,
    ExistingDir,
    ExistingFile,
    PathArg,
    config_file_option,
    config_option,
    given_options,
)


@click.command("evaluate", short_help="mIoU, TC, TC-occ, mVC, cost of one model.")
@config_file_option
@click.option("--predictions", required=True, type=ExistingFile, help="Output of `etc infer`.")
@click.option("--flow", required=True, type=ExistingFile,
              help="Flow store of the same split (consecutive pairs).")
@click.option("--model", "model_ckpt", type=ExistingFile, default=None,
              help="Checkpoint, for parameters and GFLOPs.")
@click.option("--timing", type=ExistingFile, default=None,
              help="Timing JSON of `etc infer`, for FPS.")
@config_option("--flow-estimator", key="evaluate.flow_estimator",
               help="The estimator --flow must hold: TC is measured with it")
@config_option("--train-estimator", key="flow.estimator",
               help="The flow the model was trained with, recorded in the JSON")
@config_option("--workers", key="evaluate.num_workers", type=click.IntRange(min=0),
               help="Processes evaluating shards of the clips; same JSON as one")
@config_option("--device", key="evaluate.device",
               help="auto, cpu, cuda: where the pairs are counted; same JSON")
@click.option("--out", required=True, type=PathArg, help="Metrics JSON.")
def evaluate_cmd(config_path, predictions, flow, model_ckpt, timing, out, **_options):
    """mIoU, per-class IoU, TC (two class averagings), TC-occ, mVC_n, parameters, GFLOPs and FPS
    of one model."""
    from etc.core.config import command_config
    from etc.evaluate.evaluate import evaluate

    config = command_config(config_path, given_options())
    r = evaluate(config, predictions, flow, out, model_ckpt=model_ckpt, timing=timing)
    shown = {"mIoU": r["miou"], "TC": r["tc"], "TC (all classes)": r["tc_all"],
             "TC-occ": r["tc_occ"]}
    click.echo("  ".join(f"{k} {'–' if v is None else format(v, '.2f')}"
                         for k, v in shown.items()))


@click.command("score", short_help="The metrics of `etc evaluate` for any method's label-map PNGs.")
@config_file_option
@click.option("--predictions", required=True, type=ExistingDir,
              help="Label maps PREDICTIONS/<clip>/<frame>.png holding train ids 0..K-1 of "
                   "--dataset.")
@click.option("--frames", required=True, type=ExistingDir,
              help="The frames they were made from, FRAMES/<clip>/<frame>.(png|jpg), same names "
                   "(for the flow).")
@click.option("--labels", type=ExistingDir, default=None,
              help="Ground truth LABELS/<clip>/<frame>.png in the dataset's stored values, any "
                   "subset of the frames: adds mIoU, and mVC where every frame of a clip is "
                   "labelled.")
@click.option("--flow", type=ExistingFile, default=None,
              help="Flow store of these clips (`etc precompute-flow`), instead of computing it.")
@click.option("--flow-estimator", default="dis", show_default=True,
              help="Estimator of the flow TC is measured with when --flow is not given (dis, "
                   "dis:fast, ptlflow:<model>).")
@config_option("--dataset", key="dataset.name", type=click.Choice(DATASETS),
               help="Whose classes the ids are (class count, names, label values)")
@click.option("--device", default=None, help="Device of a ptlflow estimator (default: cpu).")
@click.option("--out", required=True, type=PathArg,
              help="Metrics JSON (a Markdown row is written beside it, .md).")
def score_cmd(config_path, predictions, frames, labels, flow, flow_estimator, device, out,
              **_options):
    """mIoU, TC (two class averagings), TC-occ, flicker share and mVC of another method's
    predictions, computed by the same metric objects as `etc evaluate`."""
    from etc.core.config import command_config
    from etc.evaluate.score import score

    config = command_config(config_path, given_options())
    r = score(config, predictions, frames, out, labels=labels, flow=flow,
              estimator=flow_estimator, device=device)
    click.echo(r["markdown"])


@click.command("keyframe-score",
               short_help="A keyframe run's row: mIoU every frame / every offset.")
@config_file_option
@click.option("--predictions", "predictions", multiple=True, required=True, type=ExistingFile,
              help="`etc infer` output; on a sparse-label set K of them, from --keyframe-offset "
                   "0 … K−1 in order.")
@click.option("--interval", type=click.IntRange(min=1), required=True,
              help="The runs' --keyframe-interval (1: a per-frame model).")
@click.option("--metrics", type=ExistingFile, required=True,
              help="`etc evaluate`'s JSON of the (first) run: TC, mVC, cost.")
@click.option("--timing", type=ExistingFile, default=None,
              help="Per-frame latency to add: `etc latency`'s JSON (the entry --run) or a streaming "
                   "`etc infer` timing JSON (the workflow adds it at `etc report --latency`).")
@click.option("--run", "run_name", required=True,
              help="The row's name, e.g. 'teacher · keyframe 5 · score propagation · dis'.")
@click.option("--out", required=True, type=PathArg,
              help="Row JSON (the metrics JSON plus the protocol's mIoU and latency).")
def keyframe_score_cmd(config_path, predictions, interval, metrics, timing, run_name, out):
    """mIoU as keyframe methods are scored (every frame where all are labelled, else the labelled
    frame at every offset from its keyframe, averaged), beside TC and the latency per frame."""
    from etc.core.config import command_config
    from etc.evaluate.keyframe_score import keyframe_row

    row = keyframe_row(command_config(config_path), list(predictions), interval, metrics, timing,
                       run_name, out)
    speed = (f", {row['ms_per_frame_mean']:.2f} ms/frame mean, {row['ms_per_frame_p99']:.2f} p99"
             if row.get("ms_per_frame_mean") is not None else "")
    click.echo(f"{run_name}: mIoU {row['miou_protocol']:.2f} ({row['keyframe_protocol']}){speed}")


COMMANDS = [evaluate_cmd, score_cmd, keyframe_score_cmd]
