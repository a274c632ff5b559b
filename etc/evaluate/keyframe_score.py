"""``etc keyframe-score``: a keyframe method's accuracy as the literature measures it, and one
row of the results table for it (or for a per-frame model, on the same protocol).

A keyframe method's accuracy depends on how far a frame lies from its last keyframe, so:

- where every frame is labelled (the synthetic set's ``dense/``, VSPW), every frame counts: one
  confusion pooled over all frames (and one per offset d = t − keyframe(t), reported);
- where one frame per clip is labelled (Cityscapes, CamVid), the labelled frame is scored at
  every offset d = 0 … K−1 from its last keyframe — K runs of ``etc infer --keyframe-offset d``
  — and the K mIoUs averaged (each reported); other labelled frames of a clip count at their
  own offset.

An interval some clip cannot reach at every offset (a dense clip shorter than K, a labelled
frame fewer than K−1 frames from its clip's start: frame 0 is always a keyframe) is refused in
one line naming the clip and the largest interval it allows, never averaged over the offsets
that happen to be reachable (``clips_per_offset`` counts the clips behind each offset: all).

Everything else (TC, TC-occ, flicker, mVC, cost) is ``etc evaluate``'s JSON of the run, as for
every model; the streaming timing (here with ``--timing``, in the workflow at `etc report
--latency`) adds the mean, p50, p95, p99 (the robust worst case) and maximum ms per frame, and
for a keyframe method the median over keyframes and over propagated frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from etc.core.errors import EtcError

LATENCY_KEYS = ("ms_per_frame_mean", "ms_per_frame_p50", "ms_per_frame_p95", "ms_per_frame_p99", "ms_per_frame_max",
                "ms_keyframe_p50", "ms_propagated_p50")


def frame_label(frame):
    """A frame's ground truth: its dense label (the synthetic set), else its label (VSPW's every
    frame; None on the unlabelled frames of a sparse set)."""
    return frame.dense_label if frame.dense_label is not None else frame.label


def dense_clips(clips) -> bool:
    """Every frame of every clip has a label: score them all."""
    return all(frame_label(f) is not None for c in clips for f in c.frames)


def _labels(path, dataset: str) -> np.ndarray:
    from etc.data.decode import read_label_map
    from etc.data.labels import to_train_ids

    return to_train_ids(read_label_map(path), dataset, source=path)


def _pred(read, clip, source) -> np.ndarray:
    """One clip's predictions (``read``: etc.evaluate.evaluate.open_predictions, which checked every
    clip is present), checked against the clip's length."""
    p = read(clip.name)
    if p.ndim != 3 or p.shape[0] != len(clip):
        raise EtcError(f"{source}: clip {clip.name} has {p.shape[0] if p.ndim else 0} frames, the dataset {len(clip)}")
    return p


def offset_miou(config: dict, predictions: list, interval: int, split: str | None = None) -> dict:
    """mIoU under the keyframe protocol. ``predictions``: one file (a dense set, or K = 1), or
    K files, the d-th from ``etc infer --keyframe-offset d`` (a sparse set)."""
    from etc.data.clips import list_clips
    from etc.data.labels import num_classes
    from etc.evaluate.evaluate import open_predictions
    from etc.evaluate.metrics.miou import confusion, miou
    from etc.infer.keyframe import KeyframeOptions, check_reachable, last_keyframe, placement

    ds = config["dataset"]
    split = split or ds["val_split"]
    clips = list_clips(ds["name"], ds["root"], split, strict=False)
    k, K = num_classes(ds["name"]), int(interval)
    dense = dense_clips(clips)
    check_reachable(clips, K, dense)
    per_offset = np.zeros((K, k, k), np.int64)
    if dense or K == 1:
        if len(predictions) != 1:
            raise EtcError(f"{'every frame is labelled' if dense else 'K = 1'}: give one --predictions "
                           f"(got {len(predictions)})")
        preds = open_predictions(predictions[0], [c.name for c in clips])  # one clip in memory at a time
        for clip in clips:
            p = _pred(preds, clip, predictions[0])
            frames = range(len(clip)) if dense else clip.labelled
            for t in frames:
                gt = _labels(frame_label(clip.frames[t]) if dense else clip.frames[t].label, ds["name"])
                per_offset[t - last_keyframe(t, K)] += confusion(p[t], gt, k)
        protocol = "every frame" if dense else "labelled frames"
        value = miou(per_offset.sum(0))
    else:
        if len(predictions) != K:
            raise EtcError(f"one labelled frame per clip: give {K} --predictions, from `etc infer "
                           f"--keyframe-offset d` for d = 0 … {K - 1} in order (got {len(predictions)})")
        for d, path in enumerate(predictions):
            _check_offset(path, d, K)
            preds = open_predictions(path, [c.name for c in clips])
            for clip in clips:
                start, _ = placement(clip, KeyframeOptions(K, offset=d))
                p = _pred(preds, clip, path)
                for t in clip.labelled:  # the first at offset d; any other at its own offset
                    per_offset[t - last_keyframe(t, K, start)] += confusion(p[t], _labels(clip.frames[t].label, ds["name"]), k)
        protocol = "labelled frame at every offset"
        value = float(np.mean([v for v in (miou(cm) for cm in per_offset) if not np.isnan(v)] or [np.nan]))
    by_offset = {str(d): (None if np.isnan(v) else v) for d, v in ((d, miou(cm)) for d, cm in enumerate(per_offset))}
    scored = [v for v in by_offset.values() if v is not None]
    return {"miou_protocol": None if np.isnan(value) else value, "miou_per_offset": by_offset,
            "miou_worst_offset": min(scored) if scored else None,
            # every clip at every offset: an interval some clip cannot reach is refused above
            "clips_per_offset": {str(d): len(clips) for d in range(K)},
            "keyframe_protocol": protocol, "keyframe_interval": K}


def _check_offset(path, d: int, K: int) -> None:
    import h5py

    with h5py.File(path, "r") as h5:
        got = (int(h5.attrs.get("keyframe_interval", 1)), h5.attrs.get("keyframe_offset"))
    if got[0] != K or got[1] is None or int(got[1]) != d:
        raise EtcError(f"{path} holds keyframe interval {got[0]}, offset {got[1]}; --predictions number {d + 1} "
                       f"must come from `etc infer --keyframe-interval {K} --keyframe-offset {d}`")


def stream_fields(record: dict, run: str, source: str | Path) -> dict:
    """A row's streamed latency from ``record`` (``source`` names it in errors): `etc latency`'s
    record of every row (its entry ``run``) or a streaming `etc infer` timing: the mean, p50,
    p95, p99 and maximum ms per frame, every frame's time, and for a keyframe stream which
    frames were keyframes and the median over each kind."""
    from etc.infer.predict import latency_summary

    if "runs" in record:  # etc latency's record of every model, timed in turns
        if run not in record["runs"]:
            raise EtcError(f"{source} times {', '.join(record['runs'])}, not '{run}'; rerun `etc latency` with this "
                           f"config")
        record = record["runs"][run]
    frame_ms, flags = record.get("frame_ms") or [], record.get("frame_keyframe")
    summary = latency_summary(frame_ms, flags if flags is not None and len(flags) == len(frame_ms) else None)
    out = {key: record.get(key, summary.get(key)) for key in LATENCY_KEYS}
    out["frame_ms"] = frame_ms
    if flags is not None:
        out["frame_keyframe"] = flags
    out["stream_batch_size"] = record.get("batch_size")
    return out


def keyframe_row(config: dict, predictions: list, interval: int, metrics: str | Path, timing: str | Path | None,
                 run: str, out: str | Path) -> dict:
    """``etc evaluate``'s JSON of the run with the protocol's mIoU beside, named ``run`` (its
    results-table row), and, given ``timing``, its streamed latency (:func:`stream_fields`).
    The workflow leaves the latency to `etc report --latency`, so that a row's accuracy never
    waits for, or reruns with, the timing of every row."""
    from etc.core.io import write_json
    from etc.evaluate.metrics.cost import read_timing

    try:
        row = json.loads(Path(metrics).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EtcError(f"cannot read {metrics} ({exc}); rerun `etc evaluate`") from None
    record = read_timing(timing) if timing is not None else None
    row.update(offset_miou(config, [Path(p) for p in predictions], interval))
    if record is not None:
        row.update(stream_fields(record, run, timing))
    row["run"] = run
    write_json(out, row)
    return row
