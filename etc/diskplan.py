"""A plan before the disk fills: what the long stages will write, against the free disk.

Estimates are uncompressed upper bounds (HDF5's lzf takes flow to about 0.7–0.8 of them and
label maps far lower), so a plan that fits is safe and one that does not is worth a look
before a day of GPU time: ``etc plan`` prints it, and ``precompute-flow`` refuses to start
when the free disk is below its own estimate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from etc.errors import EtcError

# Bytes per stored pixel of one pair: fw and bw (2 channels each, the store's dtype) and the
# two uint8 occlusion masks (etc.flow.store's layout).
FLOW_BYTES_PER_PIXEL = {"float16": 2 * 2 * 2 + 2, "float32": 2 * 2 * 4 + 2}
CHECKPOINT_COPIES = 3  # the final weights, and FILE.last.pt: weights + SGD momentum while training


def gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def flow_store_bytes(pairs: int, stored_size: tuple[int, int], dtype: str) -> int:
    return int(pairs) * stored_size[0] * stored_size[1] * FLOW_BYTES_PER_PIXEL[dtype]


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system that will hold ``path`` (its nearest existing folder)."""
    folder = Path(path).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_free_disk(path: str | Path, needed: int, what: str, fix: str) -> None:
    """An EtcError with both numbers when ``path``'s file system has less than ``needed`` free."""
    free = free_bytes(path)
    if free < needed:
        raise EtcError(f"{what} needs about {gb(needed)} (an uncompressed bound), but only {gb(free)} is free "
                       f"where {path} goes; {fix}")


def stored_size(config: dict, image_size: tuple[int, int]) -> tuple[int, int]:
    scale = float(config["flow"]["scale"])
    return max(1, round(image_size[0] * scale)), max(1, round(image_size[1] * scale))


def disk_plan(config: dict) -> list[dict]:
    """One row per output family of the default run: what, how many, the bytes (uncompressed
    bounds). Reads the dataset tree (its clips and frame size), so it needs the data present."""
    from etc.data.clips import list_clips, read_image
    from etc.data.labels import num_classes
    from etc.flow.precompute import default_pairs, select_pairs
    from etc.models.info import model_summary
    from etc.runs import resolve_run, run_names

    ds = config["dataset"]
    try:
        splits = {s: list_clips(ds["name"], ds["root"], s, strict=False) for s in (ds["train_split"], ds["val_split"])}
    except EtcError as exc:
        raise EtcError(f"the plan counts the dataset's clips, and the dataset is not there yet ({exc}); get the "
                       f"data (synthetic: `etc make-synthetic`), then `etc plan`") from None
    some = next((c for clips in splits.values() for c in clips), None)
    if some is None:
        raise EtcError(f"no clips under {ds['root']}: the plan counts the dataset's clips; get the data "
                       f"(or `etc make-synthetic`) and `etc check-data` first")
    h, w = read_image(some.frames[0].image).shape[:2]
    sh, sw = stored_size(config, (h, w))
    dtype = config["flow"]["dtype"]
    rows = []
    for split, clips in splits.items():
        pairs = len(select_pairs(clips, ds["window"], default_pairs(config, split), ds["anchor_stride"]))
        rows.append({"family": f"flow store, {split} ({default_pairs(config, split)} pairs)", "count": pairs,
                     "unit": "pairs", "bytes": flow_store_bytes(pairs, (sh, sw), dtype),
                     "detail": f"{sh}×{sw} {dtype}"})
    runs = run_names(config)
    val_frames = sum(len(c) for c in splits[ds["val_split"]])
    rows.append({"family": "predictions", "count": len(runs), "unit": "models", "bytes": len(runs) * val_frames * h * w,
                 "detail": f"{val_frames} frames of {h}×{w} uint8 each"})
    k = num_classes(ds["name"])
    params = {}
    for run in runs:
        spec = resolve_run(config, run).model
        key = repr(sorted(spec.items()))
        if key not in params:
            params[key] = model_summary(spec, k, 64, 64)["params_with_aux"]
        rows.append({"family": f"checkpoint {run}", "count": 1, "unit": "run",
                     "bytes": CHECKPOINT_COPIES * 4 * params[key], "detail": f"{params[key]:,} parameters"})
    return rows


def format_plan(rows: list[dict], results: str | Path) -> str:
    total = sum(r["bytes"] for r in rows)
    lines = [f"{r['family']:<44} {r['count']:>8} {r['unit']:<6} {gb(r['bytes']):>10}  {r['detail']}" for r in rows]
    free = free_bytes(results)
    lines.append(f"{'total (uncompressed bound)':<44} {'':>15} {gb(total):>10}  against {gb(free)} free where {results} goes"
                 + ("" if free >= total else "  — NOT ENOUGH: free space, lower flow.scale, or use float16"))
    return "\n".join(lines)
