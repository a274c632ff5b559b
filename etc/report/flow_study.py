"""The flow study (``snakemake --cores all flow_study``, ``etc flow-study-report``): how good
must the training flow be, and how much does the measuring flow bias TC?

The students of ``flow_study.ablations`` are trained with every estimator of
``flow_study.train_estimators``; every student and the default run's baseline are measured with
every estimator of ``flow_study.measure_estimators`` (the exact flow ``gt`` always among them).
The plan and the file layout live in etc.plan.layout, which the workflow (workflow/rules/flow_study.smk)
reads too: they agree by construction.
"""

from __future__ import annotations

from pathlib import Path

from etc.core.errors import EtcError
from etc.plan.layout import (
    BASELINE,
    EXACT,
    METRICS,
    PAIRS,
    StudyPlan,
    metrics_path,
    quality_path,
    store_path,
    study_inputs,
    study_plan,
)


def study_table(config: dict, metrics_dir: str | Path, flow_dir: str | Path):
    """One row per (model, measuring flow): the metrics, the EPE of the training and of the
    measuring flow against the exact flow, the change over the baseline measured with the same
    flow (``delta_*``) and the change of the same predictions' value against the exact flow's
    (``bias_*``)."""
    import json

    import pandas as pd

    plan = study_plan(config)
    ds = config["dataset"]
    missing = [str(p) for paths in study_inputs(config, metrics_dir, flow_dir).values() for p in paths if not p.is_file()]
    if missing:
        raise EtcError(f"missing {missing[0]} (and {len(missing) - 1} more); run `snakemake --cores all flow_study`")

    def read(path):
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EtcError(f"cannot read {path} ({exc}); delete it and rerun the flow study") from None
        if not isinstance(data, dict):
            raise EtcError(f"{path} holds a JSON {type(data).__name__}, not the object etc writes; "
                           f"delete it and rerun the flow study")
        return data

    def epe(pairs, split, spec):
        return read(quality_path(store_path(flow_dir, pairs, split, spec)))["epe"]

    rows = []
    for m in plan.measure:
        for a, e in plan.runs():
            r = read(metrics_path(metrics_dir, plan, m, a, e))
            if r.get("flow_eval") != m:
                raise EtcError(f"{metrics_path(metrics_dir, plan, m, a, e)} was measured with flow "
                               f"'{r.get('flow_eval')}', not '{m}'; delete it and rerun the flow study")
            rows.append({"ablation": a, "train_flow": e or "-", "measure_flow": m,
                         "train_epe": epe(PAIRS["train"], ds["train_split"], e) if e else None,
                         "measure_epe": epe(PAIRS["measure"], ds["val_split"], m),
                         **{k: r.get(k) for k in METRICS}})
    df = pd.DataFrame(rows)
    for k in METRICS:
        df[k] = pd.to_numeric(df[k])
        base = df[df["ablation"] == BASELINE].set_index("measure_flow")[k]
        exact = df[df["measure_flow"] == EXACT].set_index(["ablation", "train_flow"])[k]
        df[f"delta_{k}"] = df[k] - df["measure_flow"].map(base)
        df[f"bias_{k}"] = df[k] - [exact[(a, e)] for a, e in zip(df["ablation"], df["train_flow"], strict=True)]
    return df


def study_summary(df, plan: StudyPlan) -> dict:
    """The study's answers as numbers.

    ``bias``: TC of the same predictions measured with each flow minus TC measured with the
    exact flow, for the baseline and for each ablation trained with ``flow.estimator``.
    ``gain``: each ablation's ΔTC and ΔmIoU over the baseline for every training flow, measured
    with the exact flow and with the training flow itself (does the gain survive an
    independent measuring flow?).
    """
    def value(a, e, m, key):
        sel = df[(df["ablation"] == a) & (df["train_flow"] == (e or "-")) & (df["measure_flow"] == m)]
        v = sel[key].iloc[0] if len(sel) else None
        return None if v is None or v != v else float(v)

    bias = {BASELINE: {m: value(BASELINE, None, m, "bias_tc") for m in plan.measure}}
    if plan.default_train in plan.train:
        for a in plan.ablations:
            bias[f"{a}@{plan.default_train}"] = {m: value(a, plan.default_train, m, "bias_tc") for m in plan.measure}
    gain = {}
    for a in plan.ablations:
        for e in plan.train:
            gain[f"{a}@{e}"] = {
                "train_epe": value(a, e, EXACT, "train_epe"),
                "delta_tc_exact": value(a, e, EXACT, "delta_tc"),
                "delta_tc_all_exact": value(a, e, EXACT, "delta_tc_all"),
                "delta_miou": value(a, e, EXACT, "delta_miou"),
                "delta_tc_self": value(a, e, e, "delta_tc"),  # None when e is not among the measuring flows
            }
    return {"student": plan.student, "exact": EXACT, "bias_tc": bias, "gain": gain}


def flow_study_report(config: dict, metrics_dir: str | Path, flow_dir: str | Path, out_dir: str | Path) -> dict:
    """Write ``table.csv`` (+ ``table.md``), ``summary.json`` and the two figures to ``out_dir``."""
    from etc.core.io import atomic_path, output_folder, write_json, write_text

    out_dir = output_folder(Path(out_dir) / "table.csv").parent
    plan = study_plan(config)
    df = study_table(config, metrics_dir, flow_dir)
    with atomic_path(out_dir / "table.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    write_text(out_dir / "table.md", _markdown(df))
    summary = study_summary(df, plan)
    write_json(out_dir / "summary.json", summary)
    delta_vs_epe(df, plan, out_dir / "delta_vs_epe.png")
    tc_bias(df, plan, out_dir / "tc_bias.png")
    return {"rows": len(df), "table": str(out_dir / "table.csv"), "summary": summary}


def _markdown(df) -> str:
    cols = ["ablation", "train_flow", "measure_flow", "train_epe", "measure_epe", "miou", "tc", "tc_all",
            "delta_miou", "delta_tc", "delta_tc_all", "bias_tc"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, row, strict=True):
            if isinstance(v, float):
                cells.append("–" if v != v else format(v, "+.2f" if c.startswith(("delta_", "bias_")) else ".2f"))
            else:
                cells.append("–" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def delta_vs_epe(df, plan: StudyPlan, out_png: Path) -> None:
    """ΔTC and ΔmIoU over the baseline (measured with the exact flow) against the training
    flow's end-point error, one marker per ablation, each point named by its estimator."""
    from etc.report.plots import save_figure, styled_pyplot

    plt, sns = styled_pyplot()
    sel = df[(df["measure_flow"] == EXACT) & (df["ablation"] != BASELINE)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "delta_tc", "Δ TC (present classes)"), (axes[1], "delta_miou", "Δ mIoU")):
        sns.scatterplot(data=sel, x="train_epe", y=key, hue="ablation", style="ablation", s=80, ax=ax)
        for _, r in sel.iterrows():
            ax.annotate(r["train_flow"], (r["train_epe"], r[key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xlabel("")
        ax.set_ylabel(f"{label} over the baseline")
    fig.supxlabel("training flow's EPE against the exact flow (px, on the training pairs)")
    fig.suptitle(f"student '{plan.student}': gain over the baseline vs training-flow error (measured with '{EXACT}')")
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def tc_bias(df, plan: StudyPlan, out_png: Path) -> None:
    """The same predictions' TC under each measuring flow minus their TC under the exact flow:
    one panel per ablation, one line per training flow, the baseline in black."""
    from etc.report.plots import save_figure, styled_pyplot

    plt, sns = styled_pyplot()
    order = df.drop_duplicates("measure_flow").sort_values("measure_epe")["measure_flow"].tolist()
    fig, axes = plt.subplots(1, len(plan.ablations), figsize=(5.5 * len(plan.ablations), 4.2), squeeze=False)
    base = df[df["ablation"] == BASELINE].set_index("measure_flow").loc[order]
    for ax, a in zip(axes[0], plan.ablations, strict=True):
        sel = df[df["ablation"] == a].copy()
        sel["x"] = sel["measure_flow"].map({m: i for i, m in enumerate(order)})
        sns.lineplot(data=sel, x="x", y="bias_tc", hue="train_flow", marker="o", ax=ax)
        ax.plot(range(len(order)), base["bias_tc"], color="black", marker="s", lw=2, label="baseline")
        ax.set_xticks(range(len(order)), order, rotation=30)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xlabel("measuring flow (by EPE on the validation pairs)")
        ax.set_ylabel(f"TC − TC measured with '{EXACT}'")
        ax.set_title(f"{a} (hue: training flow)")
        ax.legend(fontsize=7)
    save_figure(fig, out_png)
    plt.close(fig)
