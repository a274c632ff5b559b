"""The deployment commands: segment your own video, export the network."""

from __future__ import annotations

import click

from etc.cli.options import (
    PathArg,
    batch_size_option,
    config_file_option,
    device_option,
    frame_size,
    given_options,
    model_option,
)


@click.command("segment-video", short_help="Segment your own video, folder of frames or camera.")
@config_file_option
@click.argument("source", metavar="INPUT")
@model_option
@click.option("--out", required=True, type=PathArg,
              help="MP4 (H.264) of the frames with the class colours overlaid.")
@click.option("--csv", "csv_path", type=PathArg, default=None,
              help="Per-frame CSV: latency, flicker share, class shares (default: OUT with .csv).")
@click.option("--labels-out", type=PathArg, default=None,
              help="Also write the label maps: a folder (one PNG of train ids per frame) or "
                   "FILE.h5 (T×H×W).")
@click.option("--flicker", is_flag=True,
              help="Beside the overlay, the flicker map (red: label differs from the flow-warped "
                   "previous frame).")
@click.option("--flow-estimator", default="dis", show_default=True,
              help="Flow of the flicker measure (dis, dis:fast, ptlflow:<model>); none: no flow, "
                   "no flicker figures.")
@click.option("--height", type=click.IntRange(8), default=None,
              help="Resize frames to this height (with --width) [the input's].")
@click.option("--width", type=click.IntRange(8), default=None,
              help="Resize frames to this width (with --height).")
@click.option("--fps", type=float, default=None,
              help="Output frame rate [the input's, else report.fps].")
@click.option("--max-frames", type=click.IntRange(1), default=None,
              help="Stop after N frames (a camera runs until Ctrl-C).")
@batch_size_option(type=click.IntRange(1))
@device_option()
def segment_video_cmd(config_path, source, model_ckpt, out, csv_path, labels_out, flicker,
                      flow_estimator, height, width, fps, max_frames, device, **_options):
    """Segment every frame of INPUT — a video file (mp4, avi, mkv, …), a folder of frames (in
    the order of the number in their names) or a camera index (0) — as `etc infer` would,
    streaming (memory does not grow with the length). Prints frames/s and the flicker share."""
    from etc.core.config import command_config
    from etc.deploy.segment_video import segment_video

    size = frame_size(height, width)
    config = command_config(config_path, given_options())
    estimator = None if flow_estimator == "none" else flow_estimator
    r = segment_video(config, source, model_ckpt, out, csv_path=csv_path, labels_out=labels_out,
                      flicker=flicker, estimator=estimator, size=size, fps=fps,
                      max_frames=max_frames, device=device)
    share = "–" if r["flicker_pct"] is None else f"{r['flicker_pct']:.2f} %"
    click.echo(f"{r['frames']} frames of {r['size'][1]}×{r['size'][0]}, {r['fps']:.1f} frames/s "
               f"on {r['device']}, flicker {share} -> {r['out']}")


@click.command("export", short_help="The inference network as TorchScript or ONNX, parity checked.")
@config_file_option
@model_option
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), required=True,
              help=f"onnx needs the onnx extra ({'pip install -e ' + repr('.[onnx]')}); parity "
                   "through onnxruntime.")
@click.option("--out", required=True, type=PathArg,
              help="File to write (.pt for TorchScript, .onnx).")
@click.option("--height", type=click.IntRange(8), default=None,
              help="Fixed input height (with --width) [dynamic].")
@click.option("--width", type=click.IntRange(8), default=None,
              help="Fixed input width (with --height) [dynamic].")
@click.option("--frames", "frames_source", default=None,
              help="Video or folder of frames the parity is checked on [the first validation "
                   "clip of the config's dataset].")
@click.option("--parity-frames", "n_frames", type=click.IntRange(1), default=4, show_default=True,
              help="How many frames.")
def export_cmd(config_path, model_ckpt, fmt, out, height, width, frames_source, n_frames):
    """Export the network `etc infer` runs (eval mode, no auxiliary head): normalised B×3×H×W
    float images (ImageNet mean/std) → B×K×H×W logits; labels are their argmax over K. Prints
    the parity against eager PyTorch on real frames; an export that disagrees is not written."""
    from etc.core.config import command_config
    from etc.deploy.export import export_model, parity_frames

    size = frame_size(height, width)
    frames = parity_frames(frames_source, command_config(config_path), n_frames)
    r = export_model(model_ckpt, out, fmt, frames=frames, size=size)
    for where, p in r["parity"].items():
        kind = "generated frames" if p.get("generated") else "frames"
        click.echo(f"{r['model']} as {fmt} at {where} on {p['frames']} {kind}: max |logit "
                   f"difference| {p['max_abs_logit_diff']:.2e}, "
                   f"{100 * p['identical_labels']:.3f} % identical labels")
    click.echo(f"{'dynamic' if r['dynamic'] else 'fixed-size'} export -> {r['out']}")


COMMANDS = [segment_video_cmd, export_cmd]
