"""``etc demo-video``: baseline vs ETC side by side, with the flicker made visible.

Per frame, a grid: the input frame, then for each model its prediction as a colour overlay
(top) and its flicker map (bottom): pixels whose label differs from the previous frame's
prediction warped into this frame (nearest, non-occluded pixels only; occluded pixels grey).
Each panel carries the model name and its running TC over the frames shown so far.
Encoded by imageio's packaged ffmpeg (H.264, yuv420p: plays in browsers) plus a small GIF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from etc.core.errors import EtcError
from etc.data.label_table import IGNORE
from etc.flow.warp import warp_labels

FLICKER = np.array([255, 40, 40], np.uint8)
OCCLUDED = np.array([90, 90, 90], np.uint8)


def flicker_map(p_prev: np.ndarray, p_t: np.ndarray, flow_t_to_prev: torch.Tensor, occluded: np.ndarray | None = None) -> np.ndarray:
    """H×W bool: pixels of frame t whose label differs from ``warp(P_{t-1}, F_{t→t-1})``.

    Occluded pixels (``occluded``) and pixels sampling outside the image never flicker.
    """
    warped = warp_labels(torch.from_numpy(p_prev.astype(np.int64))[None], flow_t_to_prev[None].float())[0].numpy()
    flicker = (warped != p_t) & (warped != IGNORE)
    if occluded is not None:
        flicker &= ~occluded
    return flicker


def _title(panel: np.ndarray, text: str, upscale: int = 1) -> np.ndarray:
    """Upscale the panel (nearest) and put a readable caption bar above it."""
    import cv2

    if upscale > 1:
        panel = np.repeat(np.repeat(panel, upscale, axis=0), upscale, axis=1)
    w = panel.shape[1]
    bar = np.full((18, w, 3), 20, np.uint8)
    scale = 0.42
    while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > w - 6:
        scale -= 0.02
    cv2.putText(bar, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def compose_frames(images, predictions: dict[str, np.ndarray], flows, palette: np.ndarray, upscale: int = 1):
    """Yield the grid frames. ``images``: T×H×W×3; ``predictions``: name → T×H×W; ``flows``:
    list over t ≥ 1 of (F_{t→t-1} 2×H×W tensor, occluded H×W bool)."""
    from etc.evaluate.metrics.consistency import PooledTC
    from etc.report.plots import colorize

    t_len, h, w = images.shape[:3]
    for name, p in predictions.items():
        if p.shape != (t_len, h, w):
            raise EtcError(f"predictions of '{name}' are {p.shape[1]}×{p.shape[2]} × {p.shape[0]} frames; the clip is {h}×{w} × {t_len}: frames of different sizes cannot share a video")
    tcs = {name: PooledTC(len(palette)) for name in predictions}
    for t in range(t_len):
        img = images[t]
        top = [_title(img, f"input  frame {t}", upscale)]
        bottom = [_title(np.zeros_like(img), "red: flicker, grey: occluded", upscale)]
        for name, p in predictions.items():
            overlay = (0.45 * img + 0.55 * colorize(p[t], palette)).astype(np.uint8)
            fmap = np.zeros_like(img)
            if t > 0:
                flow, occ = flows[t - 1]
                occ_np = occ.numpy() if isinstance(occ, torch.Tensor) else occ
                tcs[name].update(p[t], p[t - 1], flow, exclude=None)
                fl = flicker_map(p[t - 1], p[t], flow, occ_np)
                fmap[occ_np] = OCCLUDED
                fmap[fl] = FLICKER
                label = f"{name}  TC {tcs[name].value():.1f}"
            else:
                label = f"{name}"
            top.append(_title(overlay, label, upscale))
            bottom.append(_title(fmap, f"{name}: flicker", upscale))
        grid = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
        gh, gw = grid.shape[:2]
        yield np.ascontiguousarray(grid[: gh - gh % 2, : gw - gw % 2])  # H.264 needs even sizes


def write_video(frames: list[np.ndarray], out: str | Path, fps: float, gif: str | Path | None = None) -> None:
    import imageio.v2 as imageio

    from etc.core.io import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        writer = imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                                    macro_block_size=1, ffmpeg_log_level="error")
        for f in frames:
            writer.append_data(f)
        writer.close()
    if gif is not None:
        small = [f[::2, ::2] if f.shape[1] > 900 else f for f in frames]
        with atomic_path(gif) as tmp:
            imageio.mimsave(tmp, small, format="GIF", duration=1000.0 / fps, loop=0)


def demo_video(config: dict, clip_name: str | int, models: dict[str, str | Path], flow: str | Path, out: str | Path,
               gif: str | Path | None = None, upscale: int | None = None) -> dict:
    """Render ``clip_name`` for ``models`` (display name → predictions HDF5). Refused before the
    clip is rendered: an ``out`` the video writer cannot write, predictions recorded on two
    datasets or on another than the config's, and a flow store of another dataset."""
    from etc.core.io import check_video_suffix, output_folder
    from etc.data.clips import list_clips, read_image
    from etc.data.labels import palette
    from etc.flow.store import FlowStore
    from etc.infer.predict import read_predictions

    check_video_suffix(out)  # before the clip is rendered
    for path in (out, gif):
        if path is not None:
            output_folder(path)
    ds = config["dataset"]
    clips = {c.name: c for c in list_clips(ds["name"], ds["root"], ds["val_split"], strict=False)}
    if isinstance(clip_name, int):
        if clip_name >= len(clips):
            raise EtcError(f"clip index {clip_name} is out of range: split {ds['val_split']} has {len(clips)} clips")
        clip_name = sorted(clips)[clip_name]
    if clip_name not in clips:
        raise EtcError(f"clip '{clip_name}' not in split {ds['val_split']}; e.g. {', '.join(sorted(clips)[:3])}")
    clip = clips[clip_name]
    _one_dataset(models, ds["name"])
    preds = {}
    for name, path in models.items():
        allp = read_predictions(path, [clip_name])  # the one clip shown, not the split
        if clip_name not in allp:
            raise EtcError(f"{path} has no predictions for clip {clip_name}")
        preds[name] = allp[clip_name]
    images = np.stack([read_image(f.image) for f in clip.frames])
    reader = FlowStore(flow, expect={"dataset": ds["name"]}).reader()  # flow of another dataset: refused
    flows = [reader(clip_name, t, t - 1, images.shape[1:3]) for t in range(1, len(clip))]
    fps = float(config["report"]["fps"])
    upscale = upscale or max(1, int(round(200 / images.shape[1])))
    frames = list(compose_frames(images, preds, flows, palette(ds["name"]), upscale))
    write_video(frames, out, fps, gif)
    return {"frames": len(frames), "size": list(frames[0].shape[:2]), "out": str(out)}


def _one_dataset(models: dict[str, str | Path], dataset: str) -> None:
    """Refuse models whose predictions `etc infer` recorded on different datasets (naming two
    files), or on another dataset than the config's: one video shows one dataset's clip."""
    from etc.core.filekind import expect_predictions

    recorded = {Path(path): _recorded_dataset(expect_predictions(path)) for path in models.values()}
    known = {p: d for p, d in recorded.items() if d is not None}
    first, first_dataset = next(iter(known.items()), (None, None))
    for path, d in known.items():
        if d != first_dataset:
            raise EtcError(f"{first} holds predictions on {first_dataset}, {path} on {d}: one video compares "
                           f"models on one dataset; give --models predictions of the same dataset")
    for path, d in known.items():
        if d != dataset:
            raise EtcError(f"{path} holds predictions on {d}, the config reads {dataset}; give that dataset's "
                           f"config (--config) or predictions on {dataset}")


def _recorded_dataset(path: str | Path) -> str | None:
    """The dataset `etc infer` recorded in a predictions file (None in files without it)."""
    import h5py

    with h5py.File(path, "r") as h5:
        value = h5.attrs.get("dataset")
    return value.decode() if isinstance(value, bytes) else value
