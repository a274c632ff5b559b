"""The `etc` command line: a thin click layer over plain functions that tests call directly.

This is the only module that knows about click. Heavy libraries (torch, timm, ptlflow, cv2)
are imported inside the commands so that ``etc --help`` and config errors answer at once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from etc.core.errors import EtcError
from etc.core.version import __version__
from etc.data.sets import dataset_names
from etc.data.sets.folder import LAYOUT as FOLDER_LAYOUT

DATASETS = list(dataset_names())  # the registry (etc.data.sets) is the only list of names
PathArg = click.Path(path_type=Path)
ExistingFile = click.Path(exists=True, dir_okay=False, path_type=Path)
ExistingDir = click.Path(exists=True, file_okay=False, path_type=Path)


class IntList(click.ParamType):
    """Comma-separated integers (-2,-1,1,2,3)."""

    name = "ints"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            self.fail(f"expected comma-separated integers such as -2,-1,1,2,3, got '{value}'", param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="etc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Temporally consistent per-frame semantic video segmentation (ETC, ECCV 2020).

    Each subcommand is one stage of the pipeline; `snakemake --cores all` chains them.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from etc.core.malloc import keep_freed_memory

    keep_freed_memory()  # large tensors reuse freed memory instead of page-faulting anew


def config_option(*decls: str, key: str, shown: str | None = None, **kwargs):
    """A click option that overrides the dotted config key ``key`` — the one declaration of
    the pair: the help text ends in ``[key]`` (or ``[shown]``), :func:`given_options` collects
    the values given, and a bad value is reported under the option's name. ``key`` may name
    ``{fields}`` that the command fills (train's ``--seed``: ``train.{which}.seed``)."""
    help_text = kwargs.pop("help", "")
    kwargs.setdefault("default", None)

    def decorate(f):
        f = click.option(*decls, help=f"{help_text} [{shown or key}].".replace(". [", " ["), **kwargs)(f)
        f.__click_params__[-1].config_key = key
        return f

    return decorate


def config_keys(command: click.Command) -> dict[str, str]:
    """Option → dotted config key of every :func:`config_option` of ``command``."""
    return {p.opts[0]: p.config_key for p in command.params if getattr(p, "config_key", None)}


def given_options(**fields: str) -> dict[str, tuple[str, object]]:
    """The current command's config options as etc.core.config.command_config takes them: dotted
    key → (option, value or None when not given)."""
    ctx = click.get_current_context()
    return {p.config_key.format(**fields): (p.opts[0], ctx.params[p.name])
            for p in ctx.command.params if getattr(p, "config_key", None)}


ConfigOpt = click.option(
    "--config", "config_path", type=ExistingFile, default=None,
    help="Pipeline config, validated against workflow/schemas/config.schema.yaml "
         "[default: ./config.yaml when present, else the schema's defaults]. Options below override its keys.")


@cli.command("make-synthetic", short_help="Generate the synthetic driving-video dataset.")
@ConfigOpt
@config_option("--out", key="dataset.root", type=click.Path(), help="Dataset root to write (Cityscapes layout)")
@config_option("--clips", key="dataset.synthetic.train_clips", type=int, help="Training clips")
@config_option("--val-clips", key="dataset.synthetic.val_clips", type=int, help="Validation clips")
@config_option("--frames", key="dataset.synthetic.frames", type=int, help="Frames per clip")
@config_option("--height", key="dataset.synthetic.height", type=int, help="Frame height in pixels")
@config_option("--width", key="dataset.synthetic.width", type=int, help="Frame width in pixels")
@config_option("--seed", key="dataset.synthetic.seed", type=int, help="Same seed, identical files")
def make_synthetic_cmd(config_path, **_options):
    """Generate the synthetic driving-video dataset with exact labels, flow and occlusion."""
    from etc.core.config import command_config
    from etc.data.synthetic import make_synthetic

    config = command_config(config_path, given_options())
    click.echo(make_synthetic(Path(config["dataset"]["root"]), **config["dataset"]["synthetic"]))


@cli.command("check-data", short_help="Verify a dataset tree and write its manifest.",
             epilog=f"Your own data (--dataset folder): {FOLDER_LAYOUT}. Every problem of such a tree is listed "
                    "with its file and fix (docs/own-data.md).")
@ConfigOpt
@config_option("--dataset", key="dataset.name", type=click.Choice(DATASETS), help="Which loader reads ROOT")
@config_option("--root", key="dataset.root", type=click.Path(), help="Dataset root folder")
@click.option("--manifest", type=PathArg, default=None,
              help="Write the manifest (JSON): what was found and checked, the record of this check.")
@click.option("--splits", default=None, help="Comma-separated splits to check [dataset.train_split,dataset.val_split].")
@click.option("--deep/--shallow", default=True, show_default=True,
              help="Decode every image (finds corrupt files) or only read PNG headers (labels are always decoded).")
def check_data_cmd(config_path, manifest, splits, deep, **_options):
    """Verify a dataset tree (folders, counts, sizes, label ids, frame continuity).

    Exits with code 2 and a one-line message naming the first offending path (and, for a
    missing dataset, how to obtain it and the expected layout).
    """
    from etc.core.config import command_config
    from etc.data.check import check_dataset

    config = command_config(config_path, given_options())
    ds = config["dataset"]
    chosen = [s.strip() for s in splits.split(",") if s.strip()] if splits is not None else [ds["train_split"], ds["val_split"]]
    report = check_dataset(ds["name"], Path(ds["root"]), splits=chosen, manifest=manifest, deep=deep,
                           window=ds["window"])
    click.echo(report.summary())


@cli.command("train", short_help="Train the teacher or one student × ablation.")
@ConfigOpt
@click.option("--run", required=True, help="'teacher' or '<student>/<ablation>' (names from the config).")
@click.option("--out", required=True, type=PathArg, help="Final checkpoint; FILE.last.pt holds the resumable state.")
@click.option("--flow", type=ExistingFile, default=None, help="Training-split flow store (needed by the temporal loss).")
@config_option("--estimator", key="flow.estimator",
               help="The estimator --flow was computed with, when not the config's (the flow study)")
@click.option("--teacher", type=ExistingFile, default=None, help="Teacher checkpoint (needed by distillation terms).")
@click.option("--log-csv", type=PathArg, default=None, help="Per-iteration CSV (loss terms, lr, samples/s).")
@config_option("--seed", key="train.{which}.seed", shown="train.teacher.seed or train.student.seed, by --run",
               type=click.IntRange(0), help="Initialisation and batch-order seed")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 … (default: CUDA when present).")
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
        click.echo(f"{summary['run']}: {summary['iterations']} iterations{on} (resumed from {summary['resumed_from']})")


@cli.command("infer", short_help="Per-frame predictions of every clip, timed.")
@ConfigOpt
@click.option("--model", "model_ckpt", required=True, type=ExistingFile, help="Checkpoint written by `etc train`.")
@click.option("--split", default="val", show_default=True, help="Which split's clips to segment.")
@click.option("--out", required=True, type=PathArg, help="HDF5 of uint8 label maps, one dataset per clip.")
@click.option("--timing", type=PathArg, default=None, help="Timing JSON (default: OUT with .timing.json).")
@config_option("--flip/--no-flip", key="infer.flip", help="Horizontal-flip test-time augmentation")
@config_option("--batch-size", key="infer.batch_size", type=int, help="Frames per forward pass")
@config_option("--bf16/--no-bf16", key="infer.bf16", help="bfloat16 autocast")
@config_option("--compile/--no-compile", "compile_", key="infer.compile",
               help="torch.compile network + argmax; no gain measured on CPU")
@config_option("--fused-labels/--full-labels", "fused", key="infer.fused_labels",
               help="Labels from the coarse scores, blending only cells whose neighbours disagree, or "
                    "from full-resolution scores (same labels but at near-ties)")
@click.option("--device", default=None, help="cpu, cuda, … (default: CUDA when present).")
@click.option("--keyframe-interval", type=int, default=1, show_default=True,
              help="K: the network on every K-th frame, flow-propagated between (1: every frame, per-frame inference).")
@click.option("--propagate", type=click.Choice(["scores", "features"]), default="scores", show_default=True,
              help="What a keyframe run warps: the class scores, or (DFF) the backbone features, the head run on every frame.")
@config_option("--keyframe-flow", key="keyframe.estimator", help="Flow estimator of a keyframe run, timed with each frame")
@config_option("--keyframe-flow-ckpt", key="keyframe.ckpt", help="Checkpoint of a ptlflow --keyframe-flow")
@click.option("--keyframe-offset", type=int, default=None,
              help="Anchor each clip's schedule so its labelled frame lies this many frames after a keyframe "
                   "(the sparse-label protocol; default: keyframes at 0, K, 2K …).")
def infer_cmd(config_path, model_ckpt, split, out, timing, device, keyframe_interval, propagate, keyframe_offset,
              **_options):
    """Segment every frame of every clip independently (no temporal state) and time it; or, with
    --keyframe-interval K > 1, a keyframe method (etc.infer.keyframe), strictly causal."""
    from etc.core.config import command_config
    from etc.infer.keyframe import KeyframeOptions
    from etc.infer.predict import infer

    config = command_config(config_path, given_options())
    if keyframe_interval > 1:  # the keyframe section is read only when used (etc.core.reads)
        kcfg = config["keyframe"]
        options = KeyframeOptions(keyframe_interval, propagate, kcfg["estimator"], kcfg["ckpt"], keyframe_offset)
    else:
        options = KeyframeOptions(keyframe_interval, propagate, offset=keyframe_offset)
    info = infer(config, model_ckpt, split, out, timing=timing, device=device, keyframe=options)
    click.echo(f"{info['frames']} frames, {info['median_ms_per_frame']:.2f} ms/frame on {info['device']}")


@cli.command("evaluate", short_help="mIoU, TC, TC-occ, mVC, cost of one model.")
@ConfigOpt
@click.option("--predictions", required=True, type=ExistingFile, help="Output of `etc infer`.")
@click.option("--flow", required=True, type=ExistingFile, help="Flow store of the same split (consecutive pairs).")
@click.option("--model", "model_ckpt", type=ExistingFile, default=None, help="Checkpoint, for parameters and GFLOPs.")
@click.option("--timing", type=ExistingFile, default=None, help="Timing JSON of `etc infer`, for FPS.")
@config_option("--flow-estimator", key="evaluate.flow_estimator",
               help="The estimator --flow must hold: TC is measured with it")
@config_option("--train-estimator", key="flow.estimator", help="The flow the model was trained with, recorded in the JSON")
@config_option("--workers", key="evaluate.num_workers", type=click.IntRange(min=0),
               help="Processes evaluating shards of the clips; same JSON as one")
@config_option("--device", key="evaluate.device", help="auto, cpu, cuda: where the pairs are counted; same JSON")
@click.option("--out", required=True, type=PathArg, help="Metrics JSON.")
def evaluate_cmd(config_path, predictions, flow, model_ckpt, timing, out, **_options):
    """mIoU, per-class IoU, TC (two class averagings), TC-occ, mVC_n, parameters, GFLOPs and FPS of one model."""
    from etc.core.config import command_config
    from etc.evaluate.evaluate import evaluate

    config = command_config(config_path, given_options())
    r = evaluate(config, predictions, flow, out, model_ckpt=model_ckpt, timing=timing)
    shown = {"mIoU": r["miou"], "TC": r["tc"], "TC (all classes)": r["tc_all"], "TC-occ": r["tc_occ"]}
    click.echo("  ".join(f"{k} {'–' if v is None else format(v, '.2f')}" for k, v in shown.items()))


@cli.command("score", short_help="The metrics of `etc evaluate` for any method's label-map PNGs.")
@ConfigOpt
@click.option("--predictions", required=True, type=ExistingDir,
              help="Label maps PREDICTIONS/<clip>/<frame>.png holding train ids 0..K-1 of --dataset.")
@click.option("--frames", required=True, type=ExistingDir,
              help="The frames they were made from, FRAMES/<clip>/<frame>.(png|jpg), same names (for the flow).")
@click.option("--labels", type=ExistingDir, default=None,
              help="Ground truth LABELS/<clip>/<frame>.png in the dataset's stored values, any subset of the "
                   "frames: adds mIoU, and mVC where every frame of a clip is labelled.")
@click.option("--flow", type=ExistingFile, default=None,
              help="Flow store of these clips (`etc precompute-flow`), instead of computing it.")
@click.option("--flow-estimator", default="dis", show_default=True,
              help="Estimator of the flow TC is measured with when --flow is not given (dis, dis:fast, ptlflow:<model>).")
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
              help="Whose classes the ids are (class count, names, label values) [dataset.name].")
@click.option("--device", default=None, help="Device of a ptlflow estimator (default: cpu).")
@click.option("--out", required=True, type=PathArg, help="Metrics JSON (a Markdown row is written beside it, .md).")
def score_cmd(config_path, predictions, frames, labels, flow, flow_estimator, dataset, device, out):
    """mIoU, TC (two class averagings), TC-occ, flicker share and mVC of another method's
    predictions, computed by the same metric objects as `etc evaluate`."""
    from etc.core.config import command_config
    from etc.evaluate.score import score

    config = command_config(config_path, {"dataset.name": ("--dataset", dataset)})
    r = score(config, predictions, frames, out, labels=labels, flow=flow, estimator=flow_estimator, device=device)
    click.echo(r["markdown"])


@cli.command("segment-video", short_help="Segment your own video, folder of frames or camera.")
@ConfigOpt
@click.argument("source", metavar="INPUT")
@click.option("--model", "model_ckpt", required=True, type=ExistingFile, help="Checkpoint written by `etc train`.")
@click.option("--out", required=True, type=PathArg, help="MP4 (H.264) of the frames with the class colours overlaid.")
@click.option("--csv", "csv_path", type=PathArg, default=None,
              help="Per-frame CSV: latency, flicker share, class shares (default: OUT with .csv).")
@click.option("--labels-out", type=PathArg, default=None,
              help="Also write the label maps: a folder (one PNG of train ids per frame) or FILE.h5 (T×H×W).")
@click.option("--flicker", is_flag=True, help="Beside the overlay, the flicker map (red: label differs from the flow-warped previous frame).")
@click.option("--flow-estimator", default="dis", show_default=True,
              help="Flow of the flicker measure (dis, dis:fast, ptlflow:<model>); none: no flow, no flicker figures.")
@click.option("--height", type=click.IntRange(8), default=None, help="Resize frames to this height (with --width) [the input's].")
@click.option("--width", type=click.IntRange(8), default=None, help="Resize frames to this width (with --height).")
@click.option("--fps", type=float, default=None, help="Output frame rate [the input's, else report.fps].")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after N frames (a camera runs until Ctrl-C).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Frames per forward pass [infer.batch_size].")
@click.option("--device", default=None, help="cpu, cuda, … (default: CUDA when present).")
def segment_video_cmd(config_path, source, model_ckpt, out, csv_path, labels_out, flicker, flow_estimator, height,
                      width, fps, max_frames, batch_size, device):
    """Segment every frame of INPUT — a video file (mp4, avi, mkv, …), a folder of frames (in
    the order of the number in their names) or a camera index (0) — as `etc infer` would,
    streaming (memory does not grow with the length). Prints frames/s and the flicker share."""
    from etc.core.config import command_config
    from etc.deploy.segment_video import segment_video

    if (height is None) != (width is None):
        raise click.UsageError("give both --height and --width, or neither")
    config = command_config(config_path, {"infer.batch_size": ("--batch-size", batch_size)})
    r = segment_video(config, source, model_ckpt, out, csv_path=csv_path, labels_out=labels_out, flicker=flicker,
                      estimator=None if flow_estimator == "none" else flow_estimator,
                      size=(height, width) if height else None, fps=fps, max_frames=max_frames, device=device)
    share = "–" if r["flicker_pct"] is None else f"{r['flicker_pct']:.2f} %"
    click.echo(f"{r['frames']} frames of {r['size'][1]}×{r['size'][0]}, {r['fps']:.1f} frames/s on {r['device']}, "
               f"flicker {share} -> {r['out']}")


@cli.command("export", short_help="The inference network as TorchScript or ONNX, parity checked.")
@ConfigOpt
@click.option("--model", "model_ckpt", required=True, type=ExistingFile, help="Checkpoint written by `etc train`.")
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), required=True,
              help=f"onnx needs the onnx extra ({'pip install -e ' + repr('.[onnx]')}); parity through onnxruntime.")
@click.option("--out", required=True, type=PathArg, help="File to write (.pt for TorchScript, .onnx).")
@click.option("--height", type=click.IntRange(8), default=None, help="Fixed input height (with --width) [dynamic].")
@click.option("--width", type=click.IntRange(8), default=None, help="Fixed input width (with --height) [dynamic].")
@click.option("--frames", "frames_source", default=None,
              help="Video or folder of frames the parity is checked on [the first validation clip of the config's dataset].")
@click.option("--parity-frames", "n_frames", type=click.IntRange(1), default=4, show_default=True, help="How many frames.")
def export_cmd(config_path, model_ckpt, fmt, out, height, width, frames_source, n_frames):
    """Export the network `etc infer` runs (eval mode, no auxiliary head): normalised B×3×H×W
    float images (ImageNet mean/std) → B×K×H×W logits; labels are their argmax over K. Prints
    the parity against eager PyTorch on real frames; an export that disagrees is not written."""
    from etc.core.config import command_config
    from etc.deploy.export import export_model, parity_frames

    if (height is None) != (width is None):
        raise click.UsageError("give both --height and --width, or neither")
    frames = parity_frames(frames_source, command_config(config_path), n_frames)
    r = export_model(model_ckpt, out, fmt, frames=frames, size=(height, width) if height else None)
    for where, p in r["parity"].items():
        click.echo(f"{r['model']} as {fmt} at {where} on {p['frames']} frames: max |logit difference| "
                   f"{p['max_abs_logit_diff']:.2e}, {100 * p['identical_labels']:.3f} % identical labels")
    click.echo(f"{'dynamic' if r['dynamic'] else 'fixed-size'} export -> {r['out']}")


@cli.command("keyframe-score", short_help="A keyframe run's row: mIoU every frame / every offset, latency.")
@ConfigOpt
@click.option("--predictions", "predictions", multiple=True, required=True, type=ExistingFile,
              help="`etc infer` output; on a sparse-label set K of them, from --keyframe-offset 0 … K−1 in order.")
@click.option("--interval", type=click.IntRange(min=1), required=True, help="The runs' --keyframe-interval (1: a per-frame model).")
@click.option("--metrics", type=ExistingFile, required=True, help="`etc evaluate`'s JSON of the (first) run: TC, mVC, cost.")
@click.option("--timing", type=ExistingFile, required=True,
              help="Per-frame latency: `etc latency`'s JSON (the entry --run) or a streaming `etc infer --batch-size 1` timing JSON.")
@click.option("--run", "run_name", required=True, help="The row's name, e.g. 'teacher · keyframe 5 · features · dis'.")
@click.option("--out", required=True, type=PathArg, help="Row JSON (the metrics JSON plus the protocol's mIoU and latency).")
def keyframe_score_cmd(config_path, predictions, interval, metrics, timing, run_name, out):
    """mIoU as keyframe methods are scored (every frame where all are labelled, else the labelled
    frame at every offset from its keyframe, averaged), beside TC and the latency per frame."""
    from etc.core.config import command_config
    from etc.evaluate.keyframe_score import keyframe_row

    row = keyframe_row(command_config(config_path), list(predictions), interval, metrics, timing, run_name, out)
    click.echo(f"{run_name}: mIoU {row['miou_protocol']:.2f} ({row['keyframe_protocol']}), "
               f"{row['ms_per_frame_mean']:.2f} ms/frame mean, {row['ms_per_frame_max']:.2f} max")


@cli.command("latency", short_help="Every model's latency per frame, timed in turns in one process.")
@ConfigOpt
@click.option("--models", "models_dir", required=True, type=ExistingDir,
              help="Folder of the checkpoints (<run>.pt: teacher.pt, <student>/<ablation>.pt).")
@click.option("--split", default=None, help="Split whose frames are streamed (default: dataset.val_split).")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Stream the first whole clips holding at least this many frames (default: keyframe.latency_frames).")
@click.option("--out", required=True, type=PathArg, help="JSON: per run its frame_ms and their mean, p50, p95, max.")
@click.option("--device", default=None, help="cpu, cuda, … (default: CUDA when present).")
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
        raise EtcError(f"--models {models_dir}: no checkpoint {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                       + "; train the config's runs first (snakemake does)")
    record = stream_latency(config, runs, split or config["dataset"]["val_split"], out,
                            frames=frames or config["keyframe"]["latency_frames"], device=device)
    for name, r in record["runs"].items():
        click.echo(f"{name}: {r['ms_per_frame_mean']:.2f} ms/frame mean, {r['ms_per_frame_max']:.2f} max")


@cli.command("config", short_help="Validate a config and print it resolved.")
@click.option("--config", "config_path", type=ExistingFile, default=None, help="YAML config to start from.")
@click.option("--json", "json_text", default=None, help="A complete or partial config as JSON (applied on top).")
@click.option("--out", type=PathArg, default=None, help="Write the resolved YAML here (default: print it).")
def config_cmd(config_path, json_text, out):
    """Validate a config, fill its defaults and print or write it."""
    import json

    import yaml

    from etc.core.config import load_config
    from etc.core.io import write_text

    try:
        overrides = json.loads(json_text) if json_text else None
    except json.JSONDecodeError as exc:
        raise EtcError(f"--json is not valid JSON: {exc}") from None
    if overrides is not None and not isinstance(overrides, dict):
        raise EtcError(f"--json must be a JSON object of config keys such as '{{\"infer\": {{\"batch_size\": 2}}}}', "
                       f"got a {type(overrides).__name__}")
    text = yaml.safe_dump(load_config(config_path, overrides), sort_keys=False)
    if out:
        write_text(out, text)
    else:
        click.echo(text, nl=False)


@cli.command("report", short_help="Results table and figures.")
@ConfigOpt
@click.option("--metrics-dir", required=True, type=ExistingDir,
              help="Folder of `etc evaluate` JSONs (teacher.json, <student>/<ablation>.json).")
@click.option("--curves-dir", required=True, type=ExistingDir,
              help="Folder of the training CSVs (same naming).")
@click.option("--table", required=True, type=PathArg, help="Results table CSV (a .md twin is written beside it).")
@click.option("--out-dir", required=True, type=PathArg, help="Folder for the figures (PNG + SVG).")
@click.option("--keyframe-dir", type=ExistingDir, default=None,
              help="Folder of `etc keyframe-score` rows: keyframe rows and streaming latency join the table and figures.")
def report_cmd(config_path, metrics_dir, curves_dir, table, out_dir, keyframe_dir):
    """The paper-style results table and the seaborn figures of the report."""
    from etc.core.config import command_config
    from etc.report.build import build_report

    info = build_report(command_config(config_path), metrics_dir, curves_dir, table, out_dir, keyframe_dir)
    click.echo(f"{info['rows']} rows -> {info['table']}")


@cli.command("flow-study-report", short_help="Table, summary and plots of the flow study.")
@ConfigOpt
@click.option("--metrics-dir", required=True, type=ExistingDir,
              help="Folder of the study's `etc evaluate` JSONs (<measuring flow>/<student>/<ablation>[.<training flow>].json).")
@click.option("--flow-dir", required=True, type=ExistingDir,
              help="Folder of the flow stores and their `etc flow-quality` JSONs (<pairs>/<split>.<estimator>.quality.json).")
@click.option("--out-dir", required=True, type=PathArg, help="Folder for table.csv, table.md, summary.json and the plots.")
def flow_study_report_cmd(config_path, metrics_dir, flow_dir, out_dir):
    """How good must the training flow be, and how much does the measuring flow bias TC (flow_study in the config)."""
    from etc.core.config import command_config
    from etc.report.flow_study import flow_study_report

    info = flow_study_report(command_config(config_path), metrics_dir, flow_dir, out_dir)
    base = info["summary"]["bias_tc"]["baseline"]
    shown = ", ".join(f"{m} {'–' if v is None else format(v, '+.2f')}" for m, v in base.items())
    click.echo(f"{info['rows']} rows -> {info['table']}; baseline TC bias against the exact flow: {shown}")


@cli.command("seed-study-report", short_help="Mean ± std over student seeds of every results column.")
@ConfigOpt
@click.option("--results", "results_dir", required=True, type=ExistingDir,
              help="The results folder: the default run's metrics/ and seed_study/seed<N>/metrics/ beneath it.")
@click.option("--out-dir", required=True, type=PathArg, help="Folder for table.csv, summary.csv, table.md and the figure.")
def seed_study_report_cmd(config_path, results_dir, out_dir):
    """How far do the ablations' differences exceed the spread over seeds (seed_study in the config)."""
    from etc.core.config import command_config
    from etc.report.seed_study import seed_study_report

    info = seed_study_report(command_config(config_path), results_dir, out_dir)
    click.echo(f"{info['rows']} rows over seeds {', '.join(map(str, info['seeds']))} -> {info['table']}")


@cli.command("demo-video", short_help="Baseline vs ETC video with flicker maps.")
@ConfigOpt
@click.option("--clip", "clip_name", default=None, help="Validation clip name (see the manifest).")
@click.option("--clip-index", type=click.IntRange(0), default=0, show_default=True,
              help="Without --clip: the index of the clip in the sorted validation split.")
@click.option("--models", required=True,
              help="Comma-separated NAME=PREDICTIONS.h5 (or just PREDICTIONS.h5; the name is then the file's stem).")
@click.option("--flow", required=True, type=ExistingFile, help="Flow store of the validation split.")
@click.option("--out", required=True, type=PathArg, help="MP4 (H.264) to write.")
@click.option("--gif", type=PathArg, default=None, help="Also write a small animated GIF (for the report).")
@config_option("--fps", key="report.fps", type=float, help="Frame rate")
def demo_video_cmd(config_path, clip_name, clip_index, models, flow, out, gif, **_options):
    """Baseline vs ETC side by side: overlays, flicker maps and running TC per model."""
    from etc.core.config import command_config
    from etc.report.video import demo_video

    named = {}
    for item in models.split(","):
        name, _, path = item.rpartition("=")
        named[name or Path(path).stem] = Path(path)
    config = command_config(config_path, given_options())
    info = demo_video(config, clip_name if clip_name else clip_index, named, flow, out, gif=gif)
    click.echo(f"{info['frames']} frames of {info['size'][0]}×{info['size'][1]} -> {info['out']}")


@cli.command("precompute-flow", short_help="Flow + occlusion of every needed pair (HDF5).")
@ConfigOpt
@config_option("--dataset", key="dataset.name", type=click.Choice(DATASETS), help="Which loader reads the root")
@config_option("--root", key="dataset.root", type=click.Path(), help="Dataset root")
@config_option("--window", key="dataset.window", type=IntList(), help="Neighbour offsets, e.g. -2,-1,1,2,3")
@click.option("--split", required=True, help="Split whose pairs to compute (e.g. train, val).")
@click.option("--out", required=True, type=PathArg, help="HDF5 store to write (NAME.partial.h5 beside it until every pair is in).")
@config_option("--estimator", key="flow.estimator", help="dis | dis:fast | gt | ptlflow:<model>")
@config_option("--ckpt", key="flow.ckpt", type=click.Path(), help="Local checkpoint of a ptlflow model, never downloaded")
@click.option("--pairs", type=click.Choice(["training", "consecutive", "both"]), default=None,
              help="Labelled frame × window, consecutive frames, or both (default: training for the training split, else consecutive).")
@config_option("--scale", key="flow.scale", type=float, help="Store flow at this fraction of the resolution")
@config_option("--dtype", key="flow.dtype", type=click.Choice(["float16", "float32"]), help="Stored precision")
@click.option("--compression", type=click.Choice(["lzf", "gzip", "none"]), default="lzf", show_default=True,
              help="HDF5 filter (gzip: ~15 % smaller, ~3× slower to write).")
@config_option("--batch-size", key="flow.batch_size", type=int, help="Pairs per estimator call")
@click.option("--device", default=None, help="cpu, cuda, … for ptlflow models (default: CUDA when present).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Stop after N new pairs (rerun to continue).")
def precompute_flow_cmd(config_path, split, out, pairs, compression, device, limit, **_options):
    """Forward/backward flow and occlusion for every needed pair, in HDF5; resumable."""
    from etc.core.config import command_config
    from etc.flow.precompute import precompute_flow

    config = command_config(config_path, given_options())
    r = precompute_flow(config, split, out, pairs=pairs, compression=compression, device=device, limit=limit)
    if r.get("skipped"):
        click.echo(f"{r['out']} is complete; nothing to do")
    else:
        click.echo(f"{r['done']}/{r['pairs']} pairs ({r['computed']} computed, {r['pairs_per_s']:.1f} pairs/s) -> {r['out']}")


@cli.command("flow-quality", short_help="End-point error and occlusion agreement against a reference flow.")
@click.option("--flow", required=True, type=ExistingFile, help="Flow store to judge (etc precompute-flow).")
@click.option("--reference", required=True, type=ExistingFile,
              help="Reference store of the same split and pairs (on the synthetic set: --estimator gt).")
@click.option("--out", type=PathArg, default=None, help="Summary JSON (default: FLOW with .quality.json).")
@click.option("--csv", type=PathArg, default=None, help="Per-pair CSV (both directions).")
def flow_quality_cmd(flow, reference, out, csv):
    """EPE (all visible pixels, share over 1 and 3 px) and occlusion IoU/agreement, pooled and per pair."""
    from etc.flow.quality import flow_quality

    out = out or flow.with_name(flow.stem + ".quality.json")
    r = flow_quality(flow, reference, out, csv)
    click.echo(f"{r['estimator']} vs {r['reference_estimator']}: EPE {r['epe']:.3f} px, >3 px {100 * r['over_3px']:.2f} %, "
               f"occlusion IoU {r['occ_iou']:.3f} over {r['pairs']} pairs -> {out}")


@cli.command("bench", short_help="Measured speed, overhead and memory ratios.")
@ConfigOpt
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--quick", is_flag=True, help="Small sizes and few repeats: a couple of minutes on 2 CPU cores.")
@click.option("--scale", type=click.Choice(["small", "paper"]), default="small", show_default=True,
              help="paper: the config's networks at 1024×2048 (pass workflow/configs/cityscapes.yaml; a GPU "
                   "check of ≤ 6 minutes, scripts/gpu_check.sh): infer vs bare forward, training vs loader-free "
                   "steps, peak GPU memory and the preset's estimated wall time. With --quick: 64×128 frames.")
@click.option("--out", type=PathArg, default=Path("results/bench.csv"), show_default=True,
              help="CSV of (benchmark, metric, value, unit, device); a .md twin is written beside it.")
@click.option("--results", "results_dir", type=PathArg, default=None,
              help="Results folder whose Snakemake benchmark TSVs to gather (default: OUT's folder).")
def bench_cmd(config_path, device, quick, scale, out, results_dir):
    """Inference parity, pipeline efficiency, training overhead, flow stage, memory."""
    from etc.bench.suite import run_bench
    from etc.core.config import command_config

    rows, lines = run_bench(command_config(config_path), out, device=device, quick=quick, results_dir=results_dir,
                            scale=scale)
    for line in lines:
        click.echo(line)
    click.echo(f"{len(rows)} figures -> {out}")


@cli.command("plan", short_help="Disk the long stages will write, against the free disk.")
@ConfigOpt
def plan_cmd(config_path):
    """What the default run will write — flow stores, predictions, checkpoints — as uncompressed
    upper bounds, against the free disk where `results` goes; precompute-flow refuses to start
    when its own estimate does not fit. Run `snakemake -n` for the jobs themselves."""
    from etc.core.config import command_config
    from etc.plan.disk import disk_plan, format_plan

    config = command_config(config_path)
    click.echo(format_plan(disk_plan(config), config["results"]))


@cli.command("model-info", short_help="Parameters and GFLOPs of every model.")
@ConfigOpt
@click.option("--height", type=click.IntRange(8), default=1024, show_default=True, help="Frame height for GFLOPs.")
@click.option("--width", type=click.IntRange(8), default=2048, show_default=True, help="Frame width for GFLOPs.")
@click.option("--all", "every", is_flag=True,
              help="Every registered architecture × backbone (schema defaults) instead of the config's models.")
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
        models = [("", m) for m in load_config(None, {"students": specs})["students"].values()]  # schema defaults
    else:
        models = [("teacher: ", config["teacher"]), *((f"student/{s}: ", m) for s, m in config["students"].items())]
    for label, spec in models:
        r = model_summary(spec, k, height, width)
        click.echo(f"{label}{r['model']}, {r['params']:,} parameters ({r['params_with_aux']:,} with the aux "
                   f"head), {r['gflops']:.2f} GFLOPs at {height}×{width}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EtcError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
