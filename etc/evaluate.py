"""``etc evaluate``: one JSON of metrics per model — accuracy (mIoU, per-class IoU), temporal
consistency (TC, TC-occ, per-clip TC), mVC_n where dense ground truth exists, and cost
(parameters, GFLOPs, FPS from the inference timing)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from etc.errors import EtcError

log = logging.getLogger(__name__)


def evaluate(
    config: dict,
    predictions: str | Path,
    flow: str | Path,
    out: str | Path,
    *,
    model_ckpt: str | Path | None = None,
    timing: str | Path | None = None,
    split: str | None = None,
    progress: bool = True,
) -> dict:
    from tqdm import tqdm

    from etc.data.clips import list_clips, read_label
    from etc.data.labels import class_names
    from etc.flow.store import FlowStore
    from etc.infer import read_predictions
    from etc.io import write_json
    from etc.metrics.consistency import PooledTC, video_consistency
    from etc.metrics.miou import confusion, iou_per_class, miou

    ds = config["dataset"]
    split = split or ds["val_split"]
    names = class_names(ds["name"])
    k = len(names)
    clips = list_clips(ds["name"], ds["root"], split, strict=False)
    preds = read_predictions(predictions)
    reader = FlowStore(flow).reader()
    cm = np.zeros((k, k), np.int64)
    tc, tc_occ, tc_gt = PooledTC(k), PooledTC(k), PooledTC(k)
    per_clip_tc: dict[str, float] = {}
    vc_windows = config["evaluate"]["vc_windows"]
    vc = {n: ([], []) for n in vc_windows}
    for clip in tqdm(clips, desc="evaluate", unit="clip", disable=not progress or None):
        if clip.name not in preds:
            raise EtcError(f"{predictions} has no predictions for clip {clip.name}; rerun `etc infer`")
        p = preds[clip.name]
        if p.shape[0] != len(clip):
            raise EtcError(f"{predictions}: clip {clip.name} has {p.shape[0]} frames, the dataset {len(clip)}")
        for t in clip.labelled:
            gt = read_label(clip.frames[t].label, ds["name"])
            if gt.shape != p[t].shape:
                raise EtcError(f"prediction {p[t].shape} and label {gt.shape} differ in size for {clip.frames[t].label}")
            cm += confusion(p[t], gt, k)
        dense = all(f.dense_label is not None for f in clip.frames)
        gt_seq = np.stack([read_label(f.dense_label, ds["name"]) for f in clip.frames]) if dense else None
        clip_tc = PooledTC(k)
        for t in range(len(clip) - 1):
            fw, occ = reader(clip.name, t, t + 1, p.shape[1:])
            tc.update(p[t], p[t + 1], fw)
            clip_tc.update(p[t], p[t + 1], fw)
            tc_occ.update(p[t], p[t + 1], fw, exclude=occ.numpy())
            if dense:  # the same measure on the ground truth: what a perfect model would score
                tc_gt.update(gt_seq[t], gt_seq[t + 1], fw)
        per_clip_tc[clip.name] = clip_tc.value()
        if dense:
            for n in vc_windows:
                a, b = video_consistency(p, gt_seq, n)
                vc[n][0].extend(a)
                vc[n][1].extend(b)
    iou = iou_per_class(cm)
    result = {
        "predictions": str(predictions),
        "split": split,
        "frames_labelled": int(sum(len(c.labelled) for c in clips)),
        "pairs": int(sum(len(c) - 1 for c in clips)),
        "miou": miou(cm),
        "iou": {names[i]: (None if np.isnan(v) else float(v * 100)) for i, v in enumerate(iou)},
        "tc": tc.value(),
        "tc_occ": tc_occ.value(),
        "tc_per_class": {names[i]: (None if np.isnan(v) else float(v * 100)) for i, v in enumerate(tc.per_class())},
        "flicker_pct": tc_occ.changed_pct(),
        "tc_ground_truth": tc_gt.value() if tc_gt.counted else None,
        "tc_per_clip": per_clip_tc,
        "confusion": cm.tolist(),
    }
    for n in vc_windows:
        a, b = vc[n]
        result[f"mvc{n}"] = float(np.mean(a) * 100) if a else None
        result[f"mvc{n}_acc"] = float(np.mean(b) * 100) if b else None
    if model_ckpt is not None:
        result.update(model_cost(model_ckpt, next(iter(preds.values())).shape[1:]))
    if timing is not None:
        t = json.loads(Path(timing).read_text())
        result.update({"fps": t.get("fps"), "ms_per_frame": t.get("median_ms_per_frame"), "device": t.get("device")})
    write_json(out, result)
    return result


def model_cost(model_ckpt: str | Path, size: tuple[int, int]) -> dict:
    """Parameters (millions) and GFLOPs at the evaluated frame size (H, W)."""
    from etc.checkpoint import load_model_from_checkpoint
    from etc.models import count_params, gflops

    model, state = load_model_from_checkpoint(model_ckpt)
    h, w = (int(v) for v in size)
    return {
        "run": state.get("run"),
        "params_m": count_params(model) / 1e6,
        "gflops": gflops(model.eval(), h, w),
        "gflops_at": [h, w],
    }
