"""A plan before the disk fills: what the long stages will write, against the free disk.

Estimates are uncompressed upper bounds (HDF5's lzf shrinks flow somewhat and
label maps far more), so a plan that fits is safe and one that does not is worth a look
before a day of GPU time: ``etc plan`` prints it, and ``precompute-flow`` refuses to start
when the free disk is below its own estimate.
"""

from __future__ import annotations

from pathlib import Path

from etc.core.disk import free_bytes, gb
from etc.core.errors import EtcError

CHECKPOINT_COPIES = 3  # the final weights, and FILE.last.pt: weights + SGD momentum while training


def stored_size(config: dict, image_size: tuple[int, int]) -> tuple[int, int]:
    scale = float(config["flow"]["scale"])
    return max(1, round(image_size[0] * scale)), max(1, round(image_size[1] * scale))


def disk_plan(config: dict) -> list[dict]:
    """One row per output family of the default run: what, how many, the bytes (uncompressed
    bounds). Reads the dataset tree (its clips and frame size), so it needs the data present."""
    from etc.data.clips import list_clips, read_image
    from etc.data.labels import num_classes
    from etc.flow.precompute import default_pairs, select_pairs
    from etc.flow.store import flow_store_bytes
    from etc.models.info import model_summary
    from etc.plan.runs import resolve_run, run_names

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
