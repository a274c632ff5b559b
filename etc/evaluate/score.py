"""``etc score``: the metrics of ``etc evaluate`` for any method's predictions.

Another method's outputs (TDNet, CFFM, TV3S, …) are label-map PNGs ``<clip>/<frame>.png``
beside the frames ``<clip>/<frame>.(png|jpg)`` they were made from; this module turns them
into the clips the metric objects of ``etc evaluate`` (etc.evaluate.metrics.build_metrics) take, so a
number here and a number in our table are the same computation. The flow comes from a store of
`etc precompute-flow` (``flow``) or is computed clip by clip with an estimator; one clip is in
memory at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from etc.core.errors import EtcError

log = logging.getLogger(__name__)

# The Markdown line: (JSON key, header)
SUMMARY = (("miou", "mIoU"), ("tc", "TC"), ("tc_all", "TC (all classes)"), ("tc_occ", "TC-occ"),
           ("flicker_pct", "flicker %"), ("mvc8", "mVC8"), ("mvc16", "mVC16"))


def score(config: dict, predictions: str | Path, frames: str | Path, out: str | Path, *,
          labels: str | Path | None = None, flow: str | Path | None = None, estimator: str = "dis",
          device: str | None = None, progress: bool = True) -> dict:
    """Score ``predictions`` (``<clip>/<frame>.png`` train ids of ``config``'s dataset) and
    write the JSON to ``out``; returns it with ``markdown``, the one-line table row, added."""
    from tqdm import tqdm

    from etc.core.io import output_folder, write_json, write_text
    from etc.data.framedir import clip_folders
    from etc.data.labels import num_classes
    from etc.evaluate.metrics import build_metrics

    out = output_folder(out)
    dataset = config["dataset"]["name"]
    k = num_classes(dataset)
    pred_clips = clip_folders(predictions, (".png",), "predictions")
    frame_clips = clip_folders(frames, what="frames")
    label_clips = clip_folders(labels, (".png",), "labels") if labels is not None else {}
    _check_names(pred_clips, frame_clips, predictions, frames, "frames")
    for name, files in label_clips.items():
        if name not in pred_clips:
            raise EtcError(f"labels {labels}/{name} has no predictions clip {predictions}/{name}; remove it or add it")
        extra = sorted(set(files) - set(pred_clips[name]))
        if extra:
            raise EtcError(f"label {files[extra[0]]} has no prediction frame {extra[0]} in {predictions}/{name}")
    flow_of = _flow_source(flow, estimator, device, frame_clips)
    config = {**config, "evaluate": {**config["evaluate"], "flow_estimator": flow_of.name}}
    metrics = build_metrics(config)
    for name in tqdm(pred_clips, desc="score", unit="clip", disable=not progress or None):
        pred = _read_predictions(pred_clips[name], k, dataset)
        gt, dense, dense_stored = _read_labels(label_clips.get(name, {}), pred_clips[name], pred.shape[1:], dataset)
        clip = _clip_data(name, pred, gt, dense, dense_stored, flow_of.reader(name, frame_clips[name], pred.shape[1:]))
        for m in metrics:
            m.update(clip)
    result = {"predictions": str(predictions), "frames": str(frames), "labels": None if labels is None else str(labels),
              "clips": len(pred_clips), "frames_labelled": int(sum(len(v) for v in label_clips.values())),
              "pairs": int(sum(len(v) - 1 for v in pred_clips.values()))}
    for m in metrics:
        result.update(m.result())
    for m in metrics:
        for key, why in m.required.items():
            if result.get(key) is None and (key != "miou" or labels is not None):
                raise EtcError(f"{key} is undefined for {predictions} ({result['pairs']} frame pairs, "
                               f"{result['frames_labelled']} labelled frames): {why}")
    write_json(out, result)
    line = markdown_row(Path(predictions).name, result)
    write_text(out.with_suffix(".md"), markdown_header() + line + "\n")
    return {**result, "markdown": line}


def markdown_header() -> str:
    heads = ["method", *(h for _, h in SUMMARY)]
    return "| " + " | ".join(heads) + " |\n|" + "---|" * len(heads) + "\n"


def markdown_row(name: str, result: dict) -> str:
    cells = [name, *("–" if result.get(k) is None else f"{result[k]:.2f}" for k, _ in SUMMARY)]
    return "| " + " | ".join(cells) + " |"


def _check_names(pred_clips: dict, frame_clips: dict, predictions, frames, what: str) -> None:
    """Every predicted clip and frame has its frame: TC needs the flow between them."""
    for name, files in pred_clips.items():
        if name not in frame_clips:
            raise EtcError(f"predictions clip {predictions}/{name} has no {what} folder {frames}/{name}; "
                           f"name the clips as the frames' folders")
        if list(files) != list(frame_clips[name]):
            missing = sorted(set(frame_clips[name]) ^ set(files))[0]
            where = (f"prediction {files[missing]} has no frame" if missing in files
                     else f"frame {frame_clips[name][missing]} has no prediction")
            raise EtcError(f"{where} of number {missing} in clip {name}; predictions and frames must "
                           f"be the same frames, named by the same numbers")


def _read_predictions(files: dict[int, Path], k: int, dataset: str) -> np.ndarray:
    from etc.data.decode import read_label_map

    maps = []
    for path in files.values():
        p = read_label_map(path)
        if maps and p.shape != maps[0].shape:
            raise EtcError(f"prediction {path} is {p.shape[1]}×{p.shape[0]}, the clip's first "
                           f"{maps[0].shape[1]}×{maps[0].shape[0]}; every prediction of a clip has one size")
        if p.size and int(p.max()) >= k:
            raise EtcError(f"prediction {path} holds class id {int(p.max())}, but {dataset} has {k} classes "
                           f"(ids 0..{k - 1}); write train ids, or score with the dataset of the model (--dataset)")
        maps.append(p.astype(np.uint8))
    return np.stack(maps)


def _read_labels(files: dict[int, Path], pred_files: dict[int, Path], size, dataset: str):
    """(position → train ids, dense T×H×W or None, dense as stored or None)."""
    from etc.data.decode import read_label_map
    from etc.data.labels import to_train_ids

    position = {n: i for i, n in enumerate(pred_files)}
    gt, stored = {}, {}
    for n, path in files.items():
        raw = read_label_map(path)
        ids = to_train_ids(raw, dataset, source=path)
        if ids.shape != tuple(size):
            raise EtcError(f"label {path} is {ids.shape[1]}×{ids.shape[0]}, its predictions {size[1]}×{size[0]}")
        gt[position[n]], stored[position[n]] = ids, raw
    if len(gt) != len(pred_files):
        return gt, None, None
    order = sorted(gt)
    return gt, np.stack([gt[t] for t in order]), np.stack([stored[t] for t in order])


def _clip_data(name, pred, gt, dense, dense_stored, flow_reader):
    from etc.evaluate.metrics import ClipData

    return ClipData(name, pred, gt, dense, flow_reader, dense_stored=dense_stored)


class _StoreFlow:
    """Flow of consecutive pairs from a store of `etc precompute-flow` (clips named as the folders)."""

    def __init__(self, path: Path):
        from etc.flow.store import FlowStore

        self.store = FlowStore(path)
        self.path, self.name = path, self.store.attrs.get("estimator")

    def reader(self, clip: str, frames: dict[int, Path], size: tuple[int, int]):
        if len(frames) > 1 and not self.store.has(clip, 0, 1):
            raise EtcError(f"flow store {self.path} has no consecutive pairs of clip '{clip}'; compute it over "
                           f"the same frames (`etc precompute-flow --pairs consecutive`), or leave --flow out")
        return lambda t: self.store.read(clip, t, t + 1, size)


class _EstimatedFlow:
    """Flow of consecutive pairs computed from the frames, one pair at a time (both
    directions, occlusion by the forward–backward check, as `etc precompute-flow` stores it)."""

    def __init__(self, spec: str, device: str | None):
        from etc.flow.estimators import make_estimator
        from etc.flow.roles import canonical

        if spec.partition(":")[0] == "gt":
            raise EtcError("--flow-estimator gt reads a dataset's exact flow; pass that flow store with --flow instead")
        self.est = make_estimator(spec, device=device or "cpu")
        self.name = canonical(spec)

    def reader(self, clip: str, frames: dict[int, Path], size: tuple[int, int]):
        import torch

        from etc.data.decode import read_image
        from etc.flow.estimators import occlusion
        from etc.flow.warp import resize_flow

        paths = list(frames.values())

        def flow_at(t: int):
            a, b = read_image(paths[t]), read_image(paths[t + 1])
            if a.shape != b.shape:
                raise EtcError(f"frames {paths[t]} and {paths[t + 1]} differ in size; a clip's frames have one size")
            fw, bw = self.est([a, b], [b, a]).cpu().float().chunk(2)
            occ = occlusion(fw, bw)[0]
            if tuple(fw.shape[-2:]) != tuple(size):  # predictions at another resolution than the frames
                fw = resize_flow(fw, tuple(size))
                occ = torch.nn.functional.interpolate(occ[:, None].float(), size=tuple(size), mode="nearest")[:, 0] > 0
            return fw[0], occ[0]

        return flow_at


def _flow_source(flow, estimator: str, device, frame_clips):
    return _StoreFlow(Path(flow)) if flow is not None else _EstimatedFlow(estimator, device)
