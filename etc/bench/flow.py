"""Benchmark of the flow stage (a measurement, not a test): how close ``precompute-flow`` comes
to the estimator's bare forward speed, and how many MB a stored pair costs.

"Raw" = the estimator alone on frames already in memory, both directions of each pair (what
the stage must compute); "precompute" = the whole stage on the same pairs (PNG decoding, fb
check, resizing, compression, HDF5 writes, resume bookkeeping), after a one-pair warm-up run.

    python -m etc.bench.flow --height 512 --width 1024 --pairs 4 \\
        --estimator dis --estimator ptlflow:rapidflow_it1

ptlflow models run with random weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def bench_flow(height: int = 512, width: int = 1024, pairs: int = 4, estimators=("dis",), device: str = "cpu",
               dtypes=("float32", "float16"), compression: str = "lzf", workdir: str | Path | None = None) -> list[dict]:
    """Rows ``{estimator, metric, value, unit, device}``; see the module docstring."""
    from etc.core.config import load_config
    from etc.core.device import sync
    from etc.data.clips import list_clips, read_image
    from etc.data.synthetic import make_synthetic
    from etc.flow.estimators import build_ptlflow_model, make_estimator
    from etc.flow.precompute import precompute_flow

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        root = tmp / "data"
        make_synthetic(root, train_clips=1, val_clips=1, frames=pairs + 2, height=height, width=width, seed=0)
        cfg = load_config(None, {"dataset": {"root": str(root)}, "flow": {"batch_size": 1}})
        clip = list_clips("synthetic", root, "val")[0]
        frames = [read_image(f.image) for f in clip.frames]
        where = str(torch.device(device)) + ("" if torch.device(device).type == "cpu"
                                             else f" ({torch.cuda.get_device_name()})")
        where += f", {torch.get_num_threads()} CPU threads"
        rows = []

        def add(est, metric, value, unit):
            rows.append({"estimator": est, "metric": metric, "value": value, "unit": unit, "device": where})

        for spec in estimators:
            ckpt = None
            if spec.startswith("ptlflow:"):
                ckpt = tmp / "random.ckpt"
                torch.save({"state_dict": build_ptlflow_model(spec.split(":", 1)[1]).state_dict()}, ckpt)
            est = make_estimator(spec, ckpt, device, root=root)
            est.flows(frames[:2], frames[1::-1])  # warm-up, same batch shape as timed below
            sync(device)
            t0 = time.perf_counter()
            for t in range(1, pairs + 1):  # pairs (1,2) … : the ones precompute times below
                a, b = frames[t], frames[t + 1]
                est.flows([a, b], [b, a])
            sync(device)
            raw = pairs / (time.perf_counter() - t0)
            add(spec, "raw_pairs_per_s", raw, "pairs/s")
            for dtype in dtypes:
                out = tmp / f"{spec.replace(':', '_')}_{dtype}.h5"
                kw = dict(estimator=spec, ckpt=ckpt, dtype=dtype, compression=compression, device=device, progress=False)
                precompute_flow(cfg, "val", out, limit=1, **kw)  # warm-up pair (0, 1)
                r = precompute_flow(cfg, "val", out, **kw)
                add(spec, f"precompute_pairs_per_s_{dtype}", r["pairs_per_s"], "pairs/s")
                add(spec, f"precompute_over_raw_{dtype}", r["pairs_per_s"] / raw, "ratio")
                add(spec, f"mb_per_pair_{dtype}_{compression}_{height}x{width}", out.stat().st_size / 1e6 / r["pairs"], "MB")
        return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--estimator", action="append", help="repeatable (default: dis)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compression", default="lzf", choices=["lzf", "gzip", "none"])
    args = p.parse_args(argv)
    from etc.core.malloc import keep_freed_memory

    keep_freed_memory()  # as the `etc` command line does (ETC_MALLOC_TUNE=0 to compare)
    rows = bench_flow(args.height, args.width, args.pairs, args.estimator or ["dis"], args.device,
                      compression=args.compression)
    print("| estimator | metric | value | unit | device |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['estimator']} | {r['metric']} | {r['value']:.3f} | {r['unit']} | {r['device']} |")


if __name__ == "__main__":
    main()
