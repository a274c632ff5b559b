"""``etc latency``: every model of the comparison streamed through the same frames in one
process, taking turns frame by frame, so that identical networks time alike.

Per-model jobs timed each model at another moment of the machine's life: two students of one
architecture timed far apart in one default run (other jobs, the page
cache, the allocator's state). Here each frame is read once, then every model segments it in
turn (the order rotated each frame, so none always runs first after the decode) with the device
synchronised around each call; a keyframe method keeps its own state from frame to frame, so
its keyframe spikes land where its schedule puts them, and a fused stream (training-free
temporal fusion) its last fused scores. The first ``infer.warmup`` frames of
each model are not recorded.

What is timed is a frame's labels from its decoded image, as `etc infer` times a stream
(batch 1): the network, for a keyframe method the flow to the keyframe and the
propagation, for a fused stream the two flows of the forward–backward check and the blend. Labels are not kept: their accuracy is `etc infer`'s and `etc evaluate`'s.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from etc.core.errors import EtcError


class _Stream:
    """One model of the comparison: frame → labels, with the state a keyframe method keeps."""

    def __init__(self, model, ex, dev, root, options, state: dict):
        from etc.infer.fusion import FusionOptions, fusion_predictor
        from etc.infer.keyframe import keyframe_predictor
        from etc.infer.predict import make_predictor

        self.options = options
        self.keyframe = self.fuse = None
        if isinstance(options, FusionOptions):
            self.fuse = fusion_predictor(model, options, ex, dev, root)
        elif options is not None and options.active:
            self.keyframe = keyframe_predictor(model, options, state, ex, dev, root)
        else:
            self.predict = make_predictor(model, False, ex.bf16, False, ex.fused_labels)

    @property
    def interval(self) -> int:
        """Frames per keyframe: 1 for a per-frame or fused stream."""
        return int(self.options.interval) if self.keyframe is not None else 1

    def __call__(self, images, raw, clip, t, start):
        if self.keyframe is not None:
            return self.keyframe(images, raw, clip, t, start)
        if self.fuse is not None:
            return self.fuse(images, raw, clip, t)
        return self.predict(images)


def stream_latency(config: dict, runs: dict, split: str, out: str | Path, *, frames: int | None = None,
                   device: str | None = None, progress: bool = True) -> dict:
    """Time ``runs`` (name → (checkpoint, etc.infer.keyframe.KeyframeOptions,
    etc.infer.fusion.FusionOptions or None)) on the first
    whole clips of ``split`` holding at least ``frames`` frames (all: None); write and return
    the record: per run its ``frame_ms`` and their mean, p50, p95, p99 and max, and for a
    keyframe method which frames were keyframes (``frame_keyframe``) and the median over each
    kind."""
    from tqdm import tqdm

    from etc.core.device import pick_device, sync
    from etc.core.execution import resolve_execution
    from etc.core.io import output_folder, write_json
    from etc.data.clips import list_clips, read_image
    from etc.data.feed import to_network
    from etc.infer.keyframe import anchor, last_keyframe
    from etc.infer.predict import device_name, latency_summary, load_inference_model

    if not runs:
        raise EtcError("etc latency: no models to time")
    out = Path(out)
    output_folder(out)
    icfg, ds = config["infer"], config["dataset"]
    dev = pick_device(device)
    ex = resolve_execution(icfg, dev, "infer")
    ex.apply(dev)
    clips = list_clips(ds["name"], ds["root"], split, strict=False)
    if frames is not None:
        kept, total = [], 0
        for clip in clips:
            if total >= frames:
                break
            kept.append(clip)
            total += len(clip)
        clips = kept
    streams, starts = {}, {}
    for name, (ckpt, options) in runs.items():
        model, state = load_inference_model(ckpt, dev, ex, ds["name"])
        streams[name] = _Stream(model, ex, dev, ds["root"], options, state)
        starts[name] = [anchor(c, options) if streams[name].keyframe is not None else 0 for c in clips]
    warmup = int(icfg["warmup"])
    frame_ms: dict[str, list[float]] = {name: [] for name in runs}
    is_key: dict[str, list[bool]] = {name: [] for name in runs}
    interval = {name: stream.interval for name, stream in streams.items()}
    names = list(runs)
    n_frames = sum(len(c) for c in clips)
    seen = 0
    with torch.no_grad(), tqdm(total=n_frames, desc="latency", unit="frame", disable=not progress or None) as bar:
        for ci, clip in enumerate(clips):
            for t, frame in enumerate(clip.frames):
                raw = read_image(frame.image)
                images = to_network(torch.from_numpy(np.ascontiguousarray(raw))[None], dev, ex.channels_last)
                turn = seen % len(names)
                for name in names[turn:] + names[:turn]:
                    sync(dev)
                    t0 = time.perf_counter()
                    streams[name](images, raw, clip, t, starts[name][ci])
                    sync(dev)
                    if seen >= warmup:
                        frame_ms[name].append((time.perf_counter() - t0) * 1000.0)
                        is_key[name].append(last_keyframe(t, interval[name], starts[name][ci]) == t)
                seen += 1
                bar.update()
    record = {"device": device_name(dev), "split": split, "frames": n_frames, "clips": len(clips),
              "warmup_frames": warmup, **ex.describe(),
              "runs": {name: {**latency_summary(ms, is_key[name] if interval[name] > 1 else None), "frame_ms": ms,
                              **({"frame_keyframe": is_key[name]} if interval[name] > 1 else {}),
                              **(runs[name][1].describe() if runs[name][1] is not None else {})}
                       for name, ms in frame_ms.items()}}
    write_json(out, record)
    return record


def comparison_runs(config: dict, models_dir: str | Path) -> dict:
    """The default run's comparison: every per-frame model, ``keyframe.model`` at every interval ×
    propagation, the fused streams (etc.plan.keyframe_rows.keyframe_rows), by row name."""
    from etc.infer.fusion import FusionOptions
    from etc.infer.keyframe import KeyframeOptions
    from etc.plan.keyframe_rows import keyframe_rows

    runs = {}
    ckpt = config["keyframe"]["ckpt"]
    for row in keyframe_rows(config):
        options = None
        if row["kind"] == "keyframe":
            options = KeyframeOptions(row["interval"], row["propagate"], row["estimator"], ckpt)
        elif row["kind"] == "fusion":
            options = FusionOptions(row["fusion"], row["estimator"], ckpt)
        runs[row["run"]] = (Path(models_dir, f"{row['model']}.pt"), options)
    return runs
