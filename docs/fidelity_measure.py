"""Measurements behind docs/fidelity.md: the loss terms' magnitudes under the `etc` and the
`reference` forms, and what PF / MF weights do to a short run. Not part of the pipeline.

    PYTHONPATH=. python docs/fidelity_measure.py scales  CONFIG TEACHER FLOW [STUDENT_CKPT ...]
    PYTHONPATH=. python docs/fidelity_measure.py effect  CONFIG TEACHER FLOW VAL_FLOW OUTDIR ITERS SEEDS RUN=TERM:W,...

``scales`` prints each term's unweighted value and gradient norm (relative to CE's) on 4 fixed
training batches of 8 for a freshly initialised student and for each given student checkpoint. ``effect`` trains the named runs
(e.g. ``pf10=pf:10``; ``baseline=`` for CE alone) for ITERS iterations per seed (SEEDS =
``0,1``) and prints mIoU / TC on the validation split (measured with VAL_FLOW).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from etc.core.config import load_config

FORMS = {  # row name -> (term, losses settings over the config's)
    "ce": ("ce", {}),
    "ce  class-weighted (CriterionDSN's 19)": ("ce", {"ce_weights": [
        0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023, 0.9539,
        0.9843, 1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507]}),
    "tl  etc, probs": ("tl", {"tl_form": "etc", "tl_on": "probs"}),
    "tl  etc, logits": ("tl", {"tl_form": "etc", "tl_on": "logits"}),
    "tl  reference, logits": ("tl", {"tl_form": "reference", "tl_on": "logits"}),
    "pi  etc": ("pi", {"pi_form": "etc"}),
    "pi  reference": ("pi", {"pi_form": "reference"}),
    "pf  etc": ("pf", {"pf_form": "etc"}),
    "pf  reference": ("pf", {"pf_form": "reference"}),
    "mf  2 frames, hidden 8": ("mf", {"mf_frames": 2, "mf_hidden": 8}),
    "mf  3 frames, hidden 4": ("mf", {"mf_frames": 3, "mf_hidden": 4}),
    "pa  etc": ("pa", {"pa_form": "etc"}),
    "pa  reference (3 frames)": ("pa", {"pa_form": "reference"}),
}


def _batches(cfg: dict, flow: str, n: int = 4, size: int = 8) -> list[dict]:
    from etc.data.augment import PairedAugment
    from etc.data.clips import list_clips, training_pairs
    from etc.data.pairs import PairDataset
    from etc.flow.store import FlowStore

    ds = cfg["dataset"]
    pairs = training_pairs(list_clips(ds["name"], ds["root"], ds["train_split"]), ds["window"])
    data = PairDataset(ds["name"], pairs, FlowStore(flow).reader(), PairedAugment.from_config(cfg["augment"]), third=True)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(pairs), n * size, replace=False)
    return [torch.utils.data.default_collate([data[(int(i), 1000 + int(i))] for i in picks[j * size:(j + 1) * size]])
            for j in range(n)]


def scales(config: str, teacher: str, flow: str, *students: str) -> None:
    """Per term and form: the unweighted value, and the norm of its gradient on the student's
    weights relative to CE's (what a weight of 1 adds to a step, as a share of CE's push)."""
    from etc.losses import build_criterion
    from etc.models import build_model
    from etc.models.checkpoint import load_model_from_checkpoint

    cfg = load_config(config)
    batches = _batches(cfg, flow)
    tmodel, _ = load_model_from_checkpoint(teacher)
    tmodel.eval()
    with torch.no_grad():
        touts = [[tmodel(b[k]) for k in ("image_t", "image_n", "image_third")] for b in batches]
    spec = next(iter(cfg["students"].values()))
    models = {"init": None, **{Path(s).stem: s for s in students}}
    value, grad = {}, {}
    for name, ckpt in models.items():
        torch.manual_seed(0)
        model = build_model(spec, 19) if ckpt is None else load_model_from_checkpoint(ckpt)[0]
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        for row, (term, settings) in FORMS.items():
            crit = build_criterion({term: 1.0}, {**cfg["losses"], **settings}, float(spec.get("aux_weight", 0.4)))
            values, norms = [], []
            for b, t in zip(batches, touts, strict=True):
                torch.manual_seed(0)  # the same dropout masks for every form
                out = model(torch.cat([b["image_t"], b["image_n"], b["image_third"]]))
                n = b["image_t"].shape[0]
                s = [{k: v[i * n:(i + 1) * n] for k, v in out.items()} for i in range(3)]
                extra = {"out_3": s[2], "tout_3": t[2]} if crit.needs_third or settings.get("pa_form") == "reference" else {}
                loss = crit(s[0], s[1], t[0], t[1], b, **extra)[term]
                g = torch.autograd.grad(loss, params, allow_unused=True)
                values.append(float(loss))
                norms.append(float(torch.sqrt(sum((x.float() ** 2).sum() for x in g if x is not None))))
            value.setdefault(row, {})[name] = float(np.mean(values))
            grad.setdefault(row, {})[name] = np.array(norms)
    cols = list(models)
    print("| term, form | " + " | ".join(f"{c}: value | {c}: ‖∇‖ / ‖∇CE‖" for c in cols) + " |")
    print("|---|" + "---:|---:|" * len(cols))
    for row in value:
        cells = [f"{value[row][c]:.3g} | {np.mean(grad[row][c] / grad['ce'][c]):.3g}" for c in cols]
        print(f"| {row} | " + " | ".join(cells) + " |")


def effect(config: str, teacher: str, flow: str, val_flow: str, outdir: str, iters: str, seeds: str, *runs: str) -> None:
    from etc.evaluate.evaluate import evaluate
    from etc.infer.predict import infer
    from etc.train.loop import train

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for spec in runs:
        name, _, terms = spec.partition("=")
        ablation = {"ce": 1.0, **{t: float(w) for t, w in (x.split(":") for x in terms.split(",") if x)}}
        for seed in (int(s) for s in seeds.split(",")):
            base = load_config(config)
            student = {**base["train"]["student"], "iterations": int(iters), "seed": seed}
            cfg = load_config(None, {**base, "train": {**base["train"], "student": student},
                                     "ablations": {name: ablation}})
            sname = next(iter(cfg["students"]))
            ckpt, pred, met = (out / f"{name}_s{seed}{ext}" for ext in (".pt", ".pred.h5", ".json"))
            tick = time.perf_counter()
            if not met.exists():
                train(cfg, f"{sname}/{name}", ckpt, flow=flow, teacher=teacher, progress=False)
                infer(cfg, ckpt, cfg["dataset"]["val_split"], pred, progress=False)
                estimator = __import__("h5py").File(val_flow, "r").attrs["estimator"]  # TC measured with it
                evaluate({**cfg, "flow": {**cfg["flow"], "estimator": str(estimator)}}, pred, val_flow, met, progress=False)
            r = json.loads(met.read_text())
            results.setdefault(name, []).append(r)
            print(f"{name} seed {seed}: mIoU {r['miou']:.2f} TC {r['tc']:.2f} flicker {r['flicker_pct']:.2f} "
                  f"({time.perf_counter() - tick:.0f} s)", flush=True)
    print("| run | mIoU | TC | flicker % |\n|---|---:|---:|---:|")
    for name, rs in results.items():
        cols = [np.array([r[k] for r in rs]) for k in ("miou", "tc", "flicker_pct")]
        print(f"| {name} | " + " | ".join(f"{c.mean():.2f} ± {c.std():.2f}" for c in cols) + " |")


if __name__ == "__main__":
    {"scales": scales, "effect": effect}[sys.argv[1]](*sys.argv[2:])
