"""``etc evaluate``: one JSON of metrics per model — accuracy (mIoU, per-class IoU), temporal
consistency (TC, TC-occ, per-clip TC), mVC_n where dense ground truth exists, and cost
(parameters, GFLOPs, FPS from the inference timing).

The metrics themselves are objects (etc.metrics.build_metrics); this module checks the inputs
(predictions, labels, flow provenance, output path), feeds every clip to the metrics and
writes what they report. An undefined required value (TC over zero compared pixels, mIoU over
no labelled pixel) is an error, never a JSON with NaN in it.
"""

from __future__ import annotations

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

    from etc.data.clips import list_clips
    from etc.io import output_folder, write_json
    from etc.metrics import build_metrics

    out = output_folder(out)  # fail before the work, not after it
    ds = config["dataset"]
    split = split or ds["val_split"]
    clips = list_clips(ds["name"], ds["root"], split, strict=False)
    open_flow_store(flow, config, split)  # checked here, before any worker starts
    metrics = build_metrics(config, model_ckpt=model_ckpt, timing=timing)
    workers = min(evaluate_workers(config["evaluate"].get("num_workers", "auto")), len(clips) // CLIPS_PER_SHARD)
    with tqdm(total=len(clips), desc="evaluate", unit="clip", disable=not progress or None) as bar:
        if workers < 2:
            shard = evaluate_clips(config, predictions, flow, clips, bar.update)
            for m, part in zip(metrics, shard, strict=True):
                m.merge(part)
        else:
            _evaluate_in_workers(metrics, config, predictions, flow, clips, workers, bar.update)
    result = {
        "predictions": str(predictions),
        "dataset": ds["name"],
        "split": split,
        "frames_labelled": int(sum(len(c.labelled) for c in clips)),
        "pairs": int(sum(len(c) - 1 for c in clips)),
    }
    for m in metrics:
        result.update(m.result())
    for m in metrics:
        for key, why in m.required.items():
            if result.get(key) is None:
                raise EtcError(f"{key} is undefined for {predictions} on split '{split}' "
                               f"({result['pairs']} frame pairs, {result['frames_labelled']} labelled frames): "
                               f"{why}; check the flow store {flow} and the dataset")
    try:
        write_json(out, result)
    except OSError as exc:
        raise EtcError(f"cannot write metrics {out}: {exc.strerror or exc}; choose another --out") from None
    return result


# A worker's share of the clips comes in contiguous shards of at least this many clips (more
# shards than workers balance the load; contiguous shards merged in order give the single
# pass's result to the bit, every accumulator being integer counts or ordered lists).
CLIPS_PER_SHARD = 4


def evaluate_workers(value) -> int:
    """Worker processes for ``evaluate.num_workers``; ``auto``: etc.execution.thread_share_workers."""
    from etc.execution import thread_share_workers

    return thread_share_workers() if value == "auto" else int(value)


def evaluate_clips(config: dict, predictions: str | Path, flow: str | Path, clips: list, advance=None) -> list:
    """Fresh metrics (etc.metrics.build_metrics, without the cost sources) fed ``clips`` in
    order, reading only their predictions; what one worker computes."""
    from etc.flow.store import FlowStore
    from etc.metrics import build_metrics

    preds = load_predictions(predictions, [c.name for c in clips])
    store = FlowStore(flow)
    metrics = build_metrics(config)
    for clip in clips:
        data = clip_data(clip, preds, predictions, store, config["dataset"]["name"])
        for m in metrics:
            m.update(data)
        if advance is not None:
            advance(1)
    return metrics


def _evaluate_in_workers(metrics: list, config: dict, predictions, flow, clips, workers: int, advance) -> None:
    """Contiguous shards of the clips in ``workers`` spawned processes, merged in clip order.

    Spawned, not forked: a forked child of a process whose OpenMP pool has run may hang in
    its first parallel region (GNU libgomp is not fork-safe), and torch's warp runs in one."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n_shards = min(len(clips) // CLIPS_PER_SHARD, 4 * workers)
    bounds = np.linspace(0, len(clips), n_shards + 1).round().astype(int)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        futures = [pool.submit(evaluate_clips, config, str(predictions), str(flow), clips[lo:hi])
                   for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        for fut, lo, hi in zip(futures, bounds[:-1], bounds[1:], strict=True):
            for m, part in zip(metrics, fut.result(), strict=True):
                m.merge(part)
            advance(int(hi - lo))


def _one_thread() -> None:
    """Workers share the cores: one torch thread each."""
    import torch

    torch.set_num_threads(1)


def load_predictions(path: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """``etc infer``'s HDF5 as clip name → T×H×W (only the clips ``names`` when given); a
    truncated or damaged file is an EtcError."""
    from etc.infer import read_predictions

    try:
        return read_predictions(path, names)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise EtcError(f"predictions {path} cannot be read ({reason}); the file is damaged or "
                       f"truncated: delete it and rerun `etc infer`") from None


def open_flow_store(path: str | Path, config: dict, split: str):
    """The flow store, checked to hold flow of the config's evaluation estimator
    (etc.flow.roles), dataset and ``split``: TC measured with another flow is another metric."""
    import h5py

    from etc.flow.roles import check_store, evaluation_estimator

    store = check_store(path, estimator=evaluation_estimator(config), dataset=config["dataset"]["name"],
                        split=split, role="evaluation", option="--flow-estimator")
    with h5py.File(path, "r") as h5:
        if not any(len(h5[clip]) for clip in h5):
            raise EtcError(f"flow store {path} is empty (0 pairs); delete it and rerun precompute-flow "
                           f"once `etc check-data` finds the clips of the split")
    return store


def clip_data(clip, preds: dict, predictions: str | Path, store, dataset: str):
    """The predictions, checked ground truth and flow access of one clip (etc.metrics.ClipData)."""
    from etc.data.decode import read_label_map
    from etc.data.labels import num_classes, to_train_ids
    from etc.metrics import ClipData

    if clip.name not in preds:
        raise EtcError(f"{predictions} has no predictions for clip {clip.name}; rerun `etc infer`")
    p = preds[clip.name]
    if p.ndim != 3 or p.shape[0] != len(clip):
        raise EtcError(f"{predictions}: clip {clip.name} has {p.shape[0] if p.ndim else 0} frames, the dataset {len(clip)}")
    k = num_classes(dataset)
    if p.size and int(p.max()) >= k:
        raise EtcError(f"{predictions}: clip {clip.name} holds class id {int(p.max())}, but {dataset} has "
                       f"{k} classes; were the predictions made by a model of another dataset?")

    def checked(path):
        """(train ids, stored values): mVC in VSPW's form compares the stored values."""
        stored = read_label_map(path)
        gt = to_train_ids(stored, dataset, source=path)  # refuses values that are not label ids
        if gt.shape != p.shape[1:]:
            raise EtcError(f"prediction {p.shape[1:]} and label {gt.shape} differ in size for {path}")
        return gt, stored

    labels = {t: checked(clip.frames[t].label)[0] for t in clip.labelled}
    dense = dense_stored = None
    if all(f.dense_label is not None for f in clip.frames):
        dense, dense_stored = (np.stack(x) for x in zip(*(checked(f.dense_label) for f in clip.frames), strict=True))
    return ClipData(clip.name, p, labels, dense, lambda t: store.read(clip.name, t, t + 1, p.shape[1:]),
                    dense_stored=dense_stored)
