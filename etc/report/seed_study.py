"""The seed study (`snakemake --cores all seed_study`): every student × ablation trained again
with each seed of ``seed_study.seeds``, and each column of the results table reported as mean ±
std over the seeds. A difference between ablations means something only where it is larger
than this spread; the deltas are taken against the baseline *of the same seed* (same
initialisation, same batches), which removes most of it.

The default run's students are the seed ``train.student.seed``'s and are reused; the file
names of the others come from etc.plan.layout (``run_files``), which the workflow reads too."""

from __future__ import annotations

from pathlib import Path

from etc.core.errors import EtcError
from etc.plan.layout import SEED_FIGURE as FIGURE
from etc.plan.layout import SUMMARY_KEYS, run_files, seeds, study_metrics
from etc.plan.runs import student_run_names


def seed_table(config: dict, results_dir: str | Path):
    """One row per seed × student × ablation, the results table's columns, deltas against the
    baseline of the same seed."""
    import pandas as pd

    from etc.report.table import REFERENCE_COLUMNS, load_metrics, report_columns, results_table

    columns = [c for c in report_columns(config) if c not in REFERENCE_COLUMNS]
    missing = [str(p) for p in study_metrics(config, results_dir) if not p.is_file()]
    if missing:
        raise EtcError(f"seed study: missing metrics {missing[0]} (and {len(missing) - 1} more); "
                       f"run `snakemake --cores all seed_study`")
    frames = []
    for seed in seeds(config):
        paths = [run_files(results_dir, config, seed, r, "metrics") for r in student_run_names(config)]
        df = results_table(load_metrics(paths, config["dataset"]["name"]), columns)
        df.insert(0, "seed", seed)
        frames.append(df)
    return pd.concat(frames, ignore_index=True), columns


def summarise(df, columns):
    """Mean and sample std (ddof 1) over the seeds of every numeric column, per model × ablation,
    in the config's row order."""
    keys = [c.key for c in columns if c.fmt is not None and c.key in df and _numeric(df[c.key])]
    grouped = df.groupby(["model", "ablation"], sort=False)[keys]
    out = grouped.agg(list(SUMMARY_KEYS))
    out.columns = [f"{key}_{stat}" for key, stat in out.columns]
    out.insert(0, "seeds", grouped.size())
    return out.reset_index()


def _numeric(series) -> bool:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").notna().any()


def to_markdown(summary, columns) -> str:
    """mean ± std of the quality columns (main, their deltas, detail)."""
    shown = [c for c in columns if c.section in ("main", "detail") and f"{c.key}_mean" in summary]
    lines = ["| student | ablation | seeds | " + " | ".join(c.header for c in shown) + " |",
             "|" + "---|" * (len(shown) + 3)]
    for _, row in summary.iterrows():
        cells = [f"{c.format(row[f'{c.key}_mean'])} ± {_std(c, row[f'{c.key}_std'])}" for c in shown]
        lines.append(f"| {row['model']} | {row['ablation']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _std(column, value) -> str:
    return column.format(value).lstrip("+")


def seed_deltas(df, out_png: Path) -> None:
    """ΔTC against ΔmIoU of each ablation, one dot per seed, a cross at the mean ± std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from etc.report.plots import save_figure

    y = "delta_tc_all" if "delta_tc_all" in df else "delta_tc"
    rows = df[df["ablation"] != "baseline"].copy()
    rows["run"] = rows["model"] + "/" + rows["ablation"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    palette = dict(zip(rows["run"].unique(), sns.color_palette("tab10", rows["run"].nunique()), strict=True))
    sns.scatterplot(data=rows, x="delta_miou", y=y, hue="run", palette=palette, ax=ax, alpha=0.6)
    for run, group in rows.groupby("run", sort=False):
        ax.errorbar(group["delta_miou"].mean(), group[y].mean(), xerr=group["delta_miou"].std(),
                    yerr=group[y].std(), color=palette[run], capsize=3, lw=1.5)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Δ mIoU vs. the same seed's baseline")
    ax.set_ylabel(f"Δ {'TC (all classes)' if y == 'delta_tc_all' else 'TC'} vs. the same seed's baseline")
    ax.set_title(f"{df['seed'].nunique()} seeds: dots per seed, bars mean ± std")
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def seed_study_report(config: dict, results_dir: str | Path, out_dir: str | Path) -> dict:
    """table.csv (every seed), summary.csv (mean and std), table.md and the figure."""
    from etc.core.io import atomic_path, output_dir, write_text

    df, columns = seed_table(config, results_dir)
    summary = summarise(df, columns)
    out = output_dir(out_dir)
    with atomic_path(out / "table.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(out / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False, float_format="%.4f")
    write_text(out / "table.md", to_markdown(summary, columns))
    seed_deltas(df, out / f"{FIGURE}.png")
    return {"rows": len(df), "seeds": seeds(config), "table": str(out / "table.md"), "summary": summary}
