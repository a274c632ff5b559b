"""The inference command: per-frame (or keyframe) predictions of every clip of a split, timed."""

from __future__ import annotations

import click

from etc.cli.options import (
    PathArg,
    batch_size_option,
    config_file_option,
    config_option,
    device_option,
    given_options,
    model_option,
)


@click.command("infer", short_help="Per-frame predictions of every clip, timed.")
@config_file_option
@model_option
@click.option("--split", default="val", show_default=True, help="Which split's clips to segment.")
@click.option("--out", required=True, type=PathArg,
              help="HDF5 of uint8 label maps, one dataset per clip.")
@click.option("--timing", type=PathArg, default=None,
              help="Timing JSON (default: OUT with .timing.json).")
@config_option("--flip/--no-flip", key="infer.flip", help="Horizontal-flip test-time augmentation")
@batch_size_option(type=int)
@config_option("--bf16/--no-bf16", key="infer.bf16", help="bfloat16 autocast")
@config_option("--compile/--no-compile", "compile_", key="infer.compile",
               help="torch.compile network + argmax; no gain measured on CPU")
@config_option("--fused-labels/--full-labels", "fused", key="infer.fused_labels",
               help="Labels from the coarse scores, blending only cells whose neighbours disagree, "
                    "or from full-resolution scores (same labels but at near-ties)")
@device_option()
@click.option("--keyframe-interval", type=int, default=1, show_default=True,
              help="K: the network on every K-th frame, flow-propagated between (1: every frame, "
                   "per-frame inference).")
@click.option("--propagate", type=click.Choice(["scores", "features"]), default="scores",
              show_default=True,
              help="What a keyframe run warps: the class scores (score propagation), or the backbone "
                   "features, the head run on every frame (feature propagation, DFF-style, no flow "
                   "fine-tuning).")
@config_option("--keyframe-flow", key="keyframe.estimator",
               help="Flow estimator of a keyframe run, timed with each frame")
@config_option("--keyframe-flow-ckpt", key="keyframe.ckpt",
               help="Checkpoint of a ptlflow --keyframe-flow")
@config_option("--temporal-fusion", key="infer.temporal_fusion", type=float,
               help="Training-free temporal fusion strength A in 0 … 1: each frame's softmax blended "
                    "with the previous frame's fused scores warped by --keyframe-flow where the "
                    "forward–backward check trusts the flow; 0: plain per-frame inference")
@click.option("--keyframe-offset", type=int, default=None,
              help="Anchor each clip's schedule so its labelled frame lies this many frames after "
                   "a keyframe (the sparse-label protocol; default: keyframes at 0, K, 2K …).")
def infer_cmd(config_path, model_ckpt, split, out, timing, device, keyframe_interval, propagate,
              keyframe_offset, **_options):
    """Segment every frame of every clip independently (no temporal state) and time it; or, with
    --keyframe-interval K > 1, a keyframe method (etc.infer.keyframe), strictly causal."""
    from etc.core.config import command_config
    from etc.infer.keyframe import KeyframeOptions
    from etc.infer.predict import infer

    config = command_config(config_path, given_options())
    if keyframe_interval > 1 or float(config["infer"]["temporal_fusion"]) > 0:
        # the keyframe section is read only when used (etc.core.reads)
        kcfg = config["keyframe"]
        options = KeyframeOptions(keyframe_interval, propagate, kcfg["estimator"], kcfg["ckpt"],
                                  keyframe_offset)
    else:
        options = KeyframeOptions(keyframe_interval, propagate, offset=keyframe_offset)
    info = infer(config, model_ckpt, split, out, timing=timing, device=device, keyframe=options)
    click.echo(f"{info['frames']} frames, {info['median_ms_per_frame']:.2f} ms/frame "
               f"on {info['device']}")


COMMANDS = [infer_cmd]
