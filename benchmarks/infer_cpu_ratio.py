"""`etc infer` frames/s over the bare forward's frames/s on CPU, for several checkouts or
settings in one run: the bench's `infer_over_bare_512x1024` (3 clips × 8 frames, batch 4, the
default student), each variant in its own process, variants interleaved round by round.

On a shared machine noise only adds time, so each process keeps its fastest infer call and
its fastest forward; the table gives every round's ratio and their median.

    python benchmarks/infer_cpu_ratio.py --rounds 5 \\
        before=/path/to/old/checkout  after=.  'fanout=.:{"infer": {"num_workers": 2}}'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time, torch
from etc.core.malloc import keep_freed_memory
keep_freed_memory()
from etc.models.checkpoint import load_model_from_checkpoint
from etc.core.config import deep_merge, load_config
from etc.infer.predict import infer
work, overrides, repeats = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
cfg = load_config(None, deep_merge({"dataset": {"root": work + "/data"}, "infer": {"batch_size": 4, "warmup": 1}}, overrides))
ckpt, out, batch = work + "/student.pt", work + "/pred_%d.h5" % id(cfg), cfg["infer"]["batch_size"]
infer(cfg, ckpt, "val", out, progress=False)  # untimed: first-touch costs
model, _ = load_model_from_checkpoint(ckpt)
model.eval().to(memory_format=torch.channels_last)
x = torch.randn(batch, 3, 512, 1024).contiguous(memory_format=torch.channels_last)
calls, bares = [], []
for _ in range(repeats):
    t0 = time.perf_counter()
    info = infer(cfg, ckpt, "val", out, progress=False)
    calls.append(time.perf_counter() - t0)
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            model(x)["logits"]
            bares.append(time.perf_counter() - t0)
print(json.dumps({"infer_fps": info["frames"] / min(calls), "bare_fps": batch / min(bares)}))
"""


def setup(work: Path, checkout: str) -> None:
    code = ("import sys\n"
            "from etc.core.config import load_config\n"
            "from etc.data.synthetic import make_synthetic\n"
            "from etc.train.loop import train\n"
            "w = sys.argv[1]\n"
            "make_synthetic(w + '/data', train_clips=1, val_clips=3, frames=8, height=512, width=1024, seed=0)\n"
            "cfg = load_config(None, {'dataset': {'root': w + '/data'}, 'train': {'student': {'iterations': 1, 'batch_size': 2}}})\n"
            "train(cfg, 'student/baseline', w + '/student.pt', progress=False)\n")
    subprocess.run([sys.executable, "-c", code, str(work)], check=True, env={**os.environ, "PYTHONPATH": checkout})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", help="NAME=CHECKOUT[:JSON config overrides]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="timed infer calls per process")
    ap.add_argument("--work", type=Path, default=None, help="folder for the set (default: a temporary one)")
    args = ap.parse_args()
    variants = {}
    for spec in args.variants:
        name, _, rest = spec.partition("=")
        checkout, _, overrides = rest.partition(":")
        variants[name] = (str(Path(checkout).resolve()), overrides or "{}")
    with tempfile.TemporaryDirectory(prefix="etc-ratio-") as tmp:
        work = args.work or Path(tmp)
        if not (work / "student.pt").exists():
            setup(work, next(iter(variants.values()))[0])
        ratios: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(args.rounds):
            for name, (checkout, overrides) in variants.items():
                res = subprocess.run([sys.executable, "-c", CHILD, str(work), overrides, str(args.repeats)],
                                     capture_output=True, text=True, env={**os.environ, "PYTHONPATH": checkout})
                if res.returncode:
                    sys.exit(f"{name}: {res.stderr[-1500:]}")
                d = json.loads(res.stdout.strip().splitlines()[-1])
                ratios[name].append(d["infer_fps"] / d["bare_fps"])
                load = open("/proc/loadavg").read().split()[0]
                print(f"round {r} load {load} {name}: infer {d['infer_fps']:.1f} frames/s, bare {d['bare_fps']:.1f} "
                      f"frames/s, ratio {ratios[name][-1]:.3f}", flush=True)
        print("\n| variant | infer / bare (median) | rounds |\n|---|---|---|")
        for name, v in ratios.items():
            print(f"| {name} | {statistics.median(v):.3f} | {' · '.join(f'{x:.3f}' for x in v)} |")


if __name__ == "__main__":
    main()
