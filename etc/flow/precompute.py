"""``etc precompute-flow``: forward and backward flow plus occlusion for every pair that
training (labelled frame × window) and evaluation (consecutive frames) need, computed once.

Resumable and never silently corrupt: work goes to ``OUT.partial.h5``; each pair is flushed with
a ``complete`` mark written after its data; a rerun skips complete pairs, drops a half-written
one, and starts anew if the partial file itself is unreadable (a kill during an HDF5 write). The
finished file is renamed to ``OUT`` only when every pair is in.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from etc.errors import EtcError
from etc.flow.store import CONVENTION, FORMAT, pair_key
from etc.flow.warp import fb_occlusion, resize_flow

log = logging.getLogger(__name__)

PAIR_SETS = ("training", "consecutive", "both")


def select_pairs(clips, window, which: str):
    from etc.data.clips import consecutive_pairs, training_pairs

    chosen = []
    if which in ("training", "both"):
        chosen += training_pairs(clips, window)
    if which in ("consecutive", "both"):
        chosen += consecutive_pairs(clips)
    seen, out = set(), []
    for clip, a, b in chosen:
        key = (clip.name, min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            out.append((clip, a, b))
    return out


def gt_flow(root: Path, clip, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact F_{a→b} of the synthetic set, chaining one-step flows (nearest: they are integer).
    Returns (H×W×2 float32, H×W bool valid)."""
    from etc.data.clips import synthetic_dense_path
    from etc.data.flowpng import read_flow_png

    if "city" not in clip.extra:
        raise EtcError("estimator 'gt' needs the synthetic dataset (it reads the generator's exact flow)")
    step = 1 if b > a else -1
    kind = "flow_fw" if step > 0 else "flow_bw"
    total, valid = None, None
    for pos in range(a, b, step):
        f, v = read_flow_png(synthetic_dense_path(root, clip.split, clip.extra["city"], clip.extra["seq"], clip.frames[pos].number, kind))
        h, w = v.shape
        if total is None:
            total, valid = np.zeros((h, w, 2), np.float32), np.ones((h, w), bool)
        ys, xs = np.mgrid[0:h, 0:w]
        ty, tx = np.round(ys + total[..., 1]).astype(int), np.round(xs + total[..., 0]).astype(int)
        inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        ty, tx = np.clip(ty, 0, h - 1), np.clip(tx, 0, w - 1)
        total = total + f[ty, tx]
        valid &= inside & v[ty, tx]
    return total, valid


def _open_partial(partial: Path, attrs: dict):
    import h5py

    if partial.exists():
        try:
            h5 = h5py.File(partial, "a")
            same = all(_eq(h5.attrs.get(k), v) for k, v in attrs.items())
            if same:
                return h5
            h5.close()
            log.warning("%s was started with other settings; starting anew", partial)
        except OSError:
            log.warning("%s is unreadable (interrupted during a write); starting anew", partial)
        partial.unlink()
    h5 = h5py.File(partial, "w")
    h5.attrs.update(attrs)
    return h5


def _eq(a, b) -> bool:
    if isinstance(a, bytes):
        a = a.decode()
    if isinstance(a, np.ndarray):
        a = a.tolist()
    if isinstance(b, tuple):
        b = list(b)
    return a == b


def precompute_flow(
    config: dict,
    split: str,
    out: str | Path,
    *,
    estimator: str | None = None,
    ckpt: str | Path | None = None,
    pairs: str | None = None,
    scale: float | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> dict:
    """Compute the store for ``split``; returns counts and throughput."""
    import time

    from tqdm import tqdm

    from etc.data.clips import list_clips, read_image
    from etc.flow.estimators import make_estimator

    fcfg, ds = config["flow"], config["dataset"]
    estimator = estimator or fcfg["estimator"]
    ckpt = ckpt if ckpt is not None else fcfg.get("ckpt")
    scale = float(scale if scale is not None else fcfg["scale"])
    dtype = dtype or fcfg["dtype"]
    batch_size = int(batch_size or fcfg["batch_size"])
    pairs = pairs or ("training" if split == ds["train_split"] else "consecutive")
    if pairs not in PAIR_SETS:
        raise EtcError(f"--pairs must be one of {', '.join(PAIR_SETS)}, got '{pairs}'")
    out = Path(out)
    if out.is_file():
        return {"pairs": 0, "skipped": "complete", "out": str(out)}

    root = Path(ds["root"])
    clips = list_clips(ds["name"], root, split, strict=False)
    todo = select_pairs(clips, ds["window"], pairs)
    h, w = read_image(clips[0].frames[0].image).shape[:2]
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    est = None if estimator == "gt" else make_estimator(estimator, ckpt, device or "cpu")
    attrs = {
        "format": FORMAT, "estimator": estimator, "ckpt_sha256": getattr(est, "ckpt_sha256", ""),
        "dataset": ds["name"], "split": split, "pairs": pairs,
        "image_size": [h, w], "stored_size": [sh, sw], "scale": scale, "dtype": dtype,
        "convention": CONVENTION, "units": "pixels at stored_size",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.stem + ".partial.h5")
    h5 = _open_partial(partial, attrs)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    pending = []
    for clip, a, b in todo:
        g = h5.require_group(clip.name)
        key = pair_key(a, b)
        if key in g and g[key].attrs.get("complete"):
            continue
        if key in g:
            del g[key]
        pending.append((clip, a, b))
    computed = 0
    t0 = time.perf_counter()
    cache: dict[Path, np.ndarray] = {}

    def image(path):
        if path not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[path] = read_image(path)
        return cache[path]

    bar = tqdm(total=len(todo), initial=len(todo) - len(pending), desc=f"flow {split} ({estimator})", unit="pair",
               disable=not progress or None)
    try:
        for lo in range(0, len(pending), batch_size):
            chunk = pending[lo : lo + batch_size]
            if est is None:
                res = []
                for clip, a, b in chunk:
                    f_ab, v_ab = gt_flow(root, clip, a, b)
                    f_ba, v_ba = gt_flow(root, clip, b, a)
                    res.append((torch.from_numpy(f_ab).permute(2, 0, 1), torch.from_numpy(f_ba).permute(2, 0, 1),
                                torch.from_numpy(~v_ab), torch.from_numpy(~v_ba)))
            else:
                ia = [image(c.frames[a].image) for c, a, _ in chunk]
                ib = [image(c.frames[b].image) for c, _, b in chunk]
                flows = est(ia + ib, ib + ia)
                fw, bw = flows[: len(chunk)], flows[len(chunk) :]
                occ_fw, occ_bw = fb_occlusion(fw, bw), fb_occlusion(bw, fw)
                res = [(fw[i], bw[i], occ_fw[i], occ_bw[i]) for i in range(len(chunk))]
            for (clip, a, b), (f_ab, f_ba, o_ab, o_ba) in zip(chunk, res, strict=True):
                if (sh, sw) != (h, w):
                    f_ab, f_ba = resize_flow(f_ab[None], (sh, sw))[0], resize_flow(f_ba[None], (sh, sw))[0]
                    o_ab = torch.nn.functional.interpolate(o_ab[None, None].float(), (sh, sw), mode="nearest")[0, 0] > 0.5
                    o_ba = torch.nn.functional.interpolate(o_ba[None, None].float(), (sh, sw), mode="nearest")[0, 0] > 0.5
                pg = h5[clip.name].create_group(pair_key(a, b))
                opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
                pg.create_dataset("fw", data=f_ab.numpy().astype(np_dtype), chunks=(2, sh, sw), **opts)
                pg.create_dataset("bw", data=f_ba.numpy().astype(np_dtype), chunks=(2, sh, sw), **opts)
                pg.create_dataset("occ_fw", data=o_ab.numpy().astype(np.uint8), chunks=(sh, sw), **opts)
                pg.create_dataset("occ_bw", data=o_ba.numpy().astype(np.uint8), chunks=(sh, sw), **opts)
                pg.attrs["complete"] = True
                h5.flush()
                computed += 1
                bar.update()
            if stop_after is not None and computed >= stop_after:
                break
    finally:
        bar.close()
        finished = computed == len(pending)
        if finished:
            h5.attrs["complete"] = True
        h5.close()
    elapsed = time.perf_counter() - t0
    if finished:
        os.replace(partial, out)
    done = len(todo) - len(pending) + computed
    return {"pairs": len(todo), "done": done, "computed": computed, "seconds": elapsed,
            "pairs_per_s": computed / elapsed if elapsed > 0 else float("nan"), "out": str(out if finished else partial)}
