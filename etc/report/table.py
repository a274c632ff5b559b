"""The paper's results table: one row per model (teacher; each student × ablation), deltas
against that student's baseline, and — for Cityscapes — the reference numbers beside ours."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from etc.errors import EtcError

# Cityscapes val, PSPNet-18, from the ETC reference repository (docs/design.md §3).
REFERENCE_CITYSCAPES = {
    "baseline": {"ref_miou": 69.79, "ref_tc": 68.50},
    "tl": {"ref_miou": 71.72, "ref_tc": 69.99},
    "tl_kd": {"ref_miou": 73.06, "ref_tc": 70.56},
}

COLUMNS = ["model", "ablation", "miou", "tc", "tc_occ", "delta_miou", "delta_tc", "flicker_pct", "mvc8", "mvc8_acc",
           "fps", "ms_per_frame", "params_m", "gflops", "device"]


def load_metrics(paths) -> list[dict]:
    rows = []
    for p in paths:
        p = Path(p)
        try:
            m = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EtcError(f"cannot read metrics {p}: {exc}") from None
        run = m.get("run") or p.stem
        model, _, ablation = run.partition("/")
        m["model"], m["ablation"] = model, ablation or "-"
        rows.append(m)
    return rows


def results_table(metrics: list[dict], dataset: str, baseline: str = "baseline") -> pd.DataFrame:
    df = pd.DataFrame(metrics)
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    base = df[df["ablation"] == baseline].set_index("model")
    df["delta_miou"] = [r.miou - base.loc[r.model, "miou"] if r.model in base.index and r.ablation != "-" else None for r in df.itertuples()]
    df["delta_tc"] = [r.tc - base.loc[r.model, "tc"] if r.model in base.index and r.ablation != "-" else None for r in df.itertuples()]
    cols = list(COLUMNS)
    if dataset == "cityscapes":
        df["ref_miou"] = [REFERENCE_CITYSCAPES.get(a, {}).get("ref_miou") for a in df["ablation"]]
        df["ref_tc"] = [REFERENCE_CITYSCAPES.get(a, {}).get("ref_tc") for a in df["ablation"]]
        cols += ["ref_miou", "ref_tc"]
    return df[cols].reset_index(drop=True)  # rows in run order: teacher, then the config's order


def to_markdown(df: pd.DataFrame) -> str:
    def fmt(v):
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        if isinstance(v, float):
            return f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row, strict=True):
            cells.append(f"{v:+.2f}" if col.startswith("delta_") and isinstance(v, float) and v == v else fmt(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
