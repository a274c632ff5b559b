"""``etc evaluate``: one JSON of metrics per model — accuracy (mIoU, per-class IoU), temporal
consistency (TC, TC-occ, per-clip TC), mVC_n where dense ground truth exists, and cost
(parameters, GFLOPs, FPS from the inference timing).

The metrics themselves are objects (etc.evaluate.metrics.build_metrics); this module checks the inputs
(predictions, labels, flow provenance, output path), feeds every clip to the metrics and
writes what they report. An undefined required value (TC over zero compared pixels, mIoU over
no labelled pixel) is an error, never a JSON with NaN in it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from etc.core.errors import EtcError

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

    from etc.core.io import output_folder, write_json
    from etc.data.clips import list_clips
    from etc.evaluate.metrics import build_metrics

    out = output_folder(out)  # fail before the work, not after it
    ds = config["dataset"]
    split = split or ds["val_split"]
    clips = list_clips(ds["name"], ds["root"], split, strict=False)
    open_flow_store(flow, config, split)  # checked here, before any worker starts
    metrics = build_metrics(config, model_ckpt=model_ckpt, timing=timing)
    evaluation_device(config["evaluate"].get("device", "auto"))
    open_predictions(predictions, [c.name for c in clips])  # every clip is there, before any work
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
    """Worker processes for ``evaluate.num_workers``; ``auto``: etc.core.execution.thread_share_workers."""
    from etc.core.execution import thread_share_workers

    return thread_share_workers() if value == "auto" else int(value)


def evaluate_clips(config: dict, predictions: str | Path, flow: str | Path, clips: list, advance=None) -> list:
    """Fresh metrics (etc.evaluate.metrics.build_metrics, without the cost sources) fed ``clips`` in
    order, one clip in memory at a time; what one worker computes."""
    from etc.evaluate.metrics import build_metrics
    from etc.flow.store import FlowStore

    store = FlowStore(flow)
    metrics = build_metrics(config)
    device = str(evaluation_device(config["evaluate"].get("device", "auto")))
    read = open_predictions(predictions, [c.name for c in clips])
    for clip in clips:
        data = clip_data(clip, read(clip.name), predictions, store, config["dataset"]["name"], device)
        for m in metrics:
            m.update(data)
        del data  # the next clip's maps replace this one's, never join them
        store.close()  # and the store's metadata cache starts anew (etc.flow.store.FlowStore.close)
        if advance is not None:
            advance(1)
    return metrics


def evaluation_device(value: str = "auto"):
    """The torch device of ``evaluate.device``; ``auto``: CUDA when present, else the CPU. The
    counts are integers, so every device gives the same JSON."""
    import torch

    from etc.core.device import pick_device

    if str(value).startswith("cuda") and not torch.cuda.is_available():
        raise EtcError(f"config key 'evaluate.device' is {value!r}, but torch sees no CUDA device here; use auto or cpu")
    try:
        return pick_device(None if value == "auto" else value)
    except (EtcError, RuntimeError) as exc:
        raise EtcError(f"config key 'evaluate.device': {value!r} is not a device here ({exc}); use auto, cpu or cuda") from None


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


def open_predictions(path: str | Path, names: list[str]):
    """``etc infer``'s HDF5, checked to hold every clip of ``names``; returns ``read(name)`` →
    that clip's T×H×W, read when asked (one clip in memory, not the split). Each read opens the
    file anew: an open handle's metadata cache grows with every clip read (see
    etc.flow.store.FlowStore.close). A truncated or damaged file is an EtcError."""
    import h5py

    def damaged(exc):
        reason = " ".join(str(exc).split())
        return EtcError(f"predictions {path} cannot be read ({reason}); the file is damaged or "
                        f"truncated: delete it and rerun `etc infer`")

    from etc.core.filekind import expect_predictions

    expect_predictions(path)  # a flow store, a checkpoint… is named for what it is
    try:
        with h5py.File(path, "r") as h5:
            held = set(h5)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise damaged(exc) from None
    missing = [n for n in names if n not in held]
    if missing:
        raise EtcError(f"{path} has no predictions for clip {missing[0]} ({len(missing)} clips missing); "
                       f"rerun `etc infer`")

    def read(name: str) -> np.ndarray:
        try:
            with h5py.File(path, "r") as h5:
                return h5[name][()]
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            raise damaged(exc) from None

    return read


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


def clip_data(clip, p: np.ndarray, predictions: str | Path, store, dataset: str, device: str = "cpu"):
    """The checked predictions ``p`` and ground truth and the flow access of one clip
    (etc.evaluate.metrics.ClipData), counted on ``device``."""
    from etc.data.decode import read_label_map
    from etc.data.labels import num_classes, to_train_ids
    from etc.evaluate.metrics import ClipData

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
                    dense_stored=dense_stored, device=device)
