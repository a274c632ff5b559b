"""The README's results tables from a finished default run (and its seed study), as Markdown.

    PYTHONPATH=. python scripts/readme_tables.py [--results results]

Prints three tables: the headline rows (teacher, baseline, tl, tl_kd, with the published
Cityscapes figures beside; then the seed study's mean ± std and Δ against the same seed's
baseline, bold beyond two standard deviations, where results/seed_study/summary.csv exists),
the keyframe comparison and the temporal-fusion rows. Every figure is read from
results/table.csv and results/seed_study/summary.csv, never typed.
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

PUBLISHED = {"baseline": "69.79 · 68.50", "tl": "71.72 · 69.99", "tl_kd": "73.06 · 70.56"}
NAMES = {"baseline": "baseline (CE)", "tl": "tl (CE + temporal loss)", "tl_kd": "tl_kd (+ distillation: ETC)"}
SHORT = {"score propagation": "score propagation", "feature propagation, DFF-style, no flow fine-tuning":
         "feature propagation"}


def _f(v, digits=2) -> str:
    return "–" if pd.isna(v) else f"{v:.{digits}f}"


def headline(table: pd.DataFrame, summary: pd.DataFrame | None) -> list[str]:
    lines = ["| model | mIoU | TC, all classes | TC, common classes | flicker % | mVC8 | Cityscapes, published: "
             "mIoU · TC (all classes) |", "|---|---|---|---|---|---|---|"]
    rows = table[(table.ablation.isin(["-", *NAMES]))]
    for r in rows.itertuples():
        name = "teacher" if r.ablation == "-" else NAMES[r.ablation]
        lines.append(f"| {name} | {_f(r.miou)} | {_f(r.tc_all)} | {_f(r.tc_common)} | {_f(r.flicker_pct)} | "
                     f"{_f(r.mvc8)} | {PUBLISHED.get(r.ablation, '')} |")
    if summary is not None:
        for r in summary[summary.ablation.isin(list(NAMES))].itertuples():
            cells = []
            for key in ("miou", "tc_all", "tc_common"):
                mean, std = getattr(r, f"{key}_mean"), getattr(r, f"{key}_std")
                if r.ablation == "baseline":
                    cells.append(f"{mean:.2f} ± {std:.2f}")
                else:
                    dm, ds = getattr(r, f"delta_{key}_mean"), getattr(r, f"delta_{key}_std")
                    text = f"Δ {dm:+.2f} ± {ds:.2f}".replace("-", "−")
                    cells.append(f"Δ **{text[2:]}**" if abs(dm) > 2 * ds else text)
            for key in ("flicker_pct", "mvc8"):
                cells.append(f"{getattr(r, f'{key}_mean'):.2f} ± {getattr(r, f'{key}_std'):.2f}")
            lines.append(f"| *{summary.seed.nunique() if 'seed' in summary else 3} seeds:* {r.ablation} | "
                         + " | ".join(cells) + " | |")
    return lines


def keyframe(table: pd.DataFrame) -> list[str]:
    lines = ["| row | mIoU, every frame | mIoU, worst offset | TC, common classes | ms/frame mean · p99 | "
             "GFLOPs/frame |", "|---|---|---|---|---|---|"]
    for r in table.itertuples():
        if r.ablation == "-":
            name = "teacher, every frame"
        elif r.model == "teacher" and "keyframe" in r.ablation:
            k, prop, _ = r.ablation.split(" · ")
            name = f"teacher · {k} · {SHORT.get(prop, prop)}"
        elif r.ablation in ("tl_kd", "baseline"):
            name = f"{r.ablation} student, every frame"
        elif "temporal fusion" in r.ablation:
            name = f"{r.ablation.rsplit(' · ', 1)[0].replace(' · ', ' student + ')}"
        else:
            continue
        lines.append(f"| {name} | {_f(r.miou_protocol)} | {_f(r.miou_worst_offset)} | {_f(r.tc_common)} | "
                     f"{_f(r.ms_per_frame_mean)} · {_f(r.ms_per_frame_p99)} | {_f(r.gflops)} |")
    return lines


@click.command()
@click.option("--results", default="results", show_default=True, type=click.Path(exists=True, file_okay=False))
def main(results):
    table = pd.read_csv(Path(results, "table.csv"))
    summary_path = Path(results, "seed_study", "summary.csv")
    summary = pd.read_csv(summary_path) if summary_path.is_file() else None
    for block in (headline(table, summary), keyframe(table)):
        print("\n".join(block), end="\n\n")


if __name__ == "__main__":
    main()
