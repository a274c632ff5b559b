"""Seaborn figures of the report; each is saved as PNG and SVG (atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from etc.core.filekind import read_curves_csv


def save_figure(fig, out_png: Path) -> None:
    """Save ``fig`` as ``out_png`` and its SVG twin, each atomically."""
    from etc.core.io import atomic_path

    out_png = Path(out_png)
    for path in (out_png, out_png.with_suffix(".svg")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=130, bbox_inches="tight", format=path.suffix[1:])


NO_STREAM = "no streamed latency (etc keyframe-score rows)"


def say_absent(ax, text: str) -> None:
    """What a panel would show is missing: ``text`` in its middle, so the figure still exists
    and says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)


def styled_pyplot():
    """(pyplot, seaborn) on the headless backend with the report's theme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def miou_vs_tc(table: pd.DataFrame, out_png: Path) -> None:
    """mIoU against TC, one colour per student, an arrow from its baseline to each ablation. TC
    over the classes every ablation predicts where the table has it (etc.report.table.COMMON_TC):
    the paper's averaging on one class set, so an arrow is not a class newly predicted."""
    plt, sns = styled_pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    tc = "tc_common" if "tc_common" in table and table["tc_common"].notna().any() else "tc"
    table = table.assign(tc=table[tc])
    students = table[table["ablation"] != "-"]
    sns.scatterplot(data=students, x="tc", y="miou", hue="model", style="ablation", s=90, ax=ax)
    for _model, rows in students.groupby("model"):
        base = rows[rows["ablation"] == "baseline"]
        if base.empty:
            continue
        bx, by = float(base["tc"].iloc[0]), float(base["miou"].iloc[0])
        for r in rows.itertuples():
            if r.ablation != "baseline":
                ax.annotate("", xy=(r.tc, r.miou), xytext=(bx, by), arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 1})
            ax.annotate(r.ablation, (r.tc, r.miou), textcoords="offset points", xytext=(5, 4), fontsize=8)
    teacher = table[table["ablation"] == "-"]
    if not teacher.empty:
        ax.scatter(teacher["tc"], teacher["miou"], marker="*", s=200, color="black", label="teacher")
    ax.set_xlabel("TC (%)" + (", classes every ablation predicts" if tc == "tc_common" else ""))
    ax.set_ylabel("mIoU (%)")
    ax.legend(fontsize=8, loc="best")
    save_figure(fig, out_png)
    plt.close(fig)


def class_iou_heatmap(metrics: list[dict], out_png: Path) -> None:
    plt, sns = styled_pyplot()
    rows = {f"{m['model']}/{m['ablation']}" if m["ablation"] != "-" else m["model"]: m["iou"] for m in metrics}
    df = pd.DataFrame(rows).T
    df = df.loc[:, df.notna().any(axis=0)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * df.shape[1], 1.2 + 0.45 * df.shape[0]))
    sns.heatmap(df.astype(float), annot=True, fmt=".0f", cmap="viridis", vmin=0, vmax=100, ax=ax, cbar_kws={"label": "IoU (%)"})
    ax.set_xlabel("class")
    ax.set_ylabel("model")
    save_figure(fig, out_png)
    plt.close(fig)


def tc_per_clip(metrics: list[dict], out_png: Path) -> None:
    plt, sns = styled_pyplot()
    recs = []
    for m in metrics:
        name = f"{m['model']}/{m['ablation']}" if m["ablation"] != "-" else m["model"]
        recs += [{"model": name, "clip": c, "tc": v} for c, v in m.get("tc_per_clip", {}).items()]
    df = pd.DataFrame(recs)
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * max(1, df["model"].nunique())))
    sns.boxplot(data=df, y="model", x="tc", color="0.85", ax=ax, fliersize=0)
    sns.stripplot(data=df, y="model", x="tc", size=3, alpha=0.6, ax=ax)
    ax.set_xlabel("TC per validation clip (%)")
    save_figure(fig, out_png)
    plt.close(fig)


def training_curves(logs: dict[str, Path], out_png: Path, absent: str = "no training curves") -> None:
    """The loss terms of each run over iterations (``logs``: run → `etc train --log-csv` CSV).
    Without any log the figure says ``absent`` instead: the rest of a report is still useful."""
    plt, sns = styled_pyplot()
    if not logs:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        say_absent(ax, absent)
        ax.set_axis_off()
        save_figure(fig, out_png)
        plt.close(fig)
        return
    frames = []
    for run, path in logs.items():
        d = read_curves_csv(path)
        terms = [c for c in d.columns if c not in ("iteration", "lr", "samples_per_s")]
        long = d.melt(id_vars="iteration", value_vars=terms, var_name="term", value_name="loss")
        long["run"] = run
        frames.append(long)
    df = pd.concat(frames)
    df["loss"] = df.groupby(["run", "term"])["loss"].transform(lambda s: s.rolling(20, min_periods=1).mean())
    g = sns.relplot(data=df, x="iteration", y="loss", hue="term", col="run", col_wrap=min(4, len(logs)),
                    kind="line", height=2.6, aspect=1.2, facet_kws={"sharey": False})
    g.set(yscale="log")
    save_figure(g.figure, out_png)
    plt.close(g.figure)


def _row_kind(ablation: str) -> str:
    if "keyframe" in ablation:
        return "keyframe"
    if "temporal fusion" in ablation:
        return "temporal fusion"
    return "teacher" if ablation == "-" else "per-frame student"


def accuracy_vs_latency(table: pd.DataFrame, metric: str, out_png: Path) -> None:
    """mIoU (keyframe protocol where the table has it) or TC against the streamed mean ms per
    frame (log axis): the teacher, every student ablation and every keyframe setting on one pair
    of axes. Each point sits at the mean and a line spans the frames' median to their 99th
    percentile — a keyframe method's mean hides the frames that pay for the keyframe. Without a
    streamed latency (no keyframe-score rows) the axes say so."""
    plt, _ = styled_pyplot()
    x = "ms_per_frame_mean"
    y = "miou_protocol" if metric == "miou" and "miou_protocol" in table and table["miou_protocol"].notna().any() else metric
    streamed = x in table and table[x].notna().any()
    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    if not streamed:
        say_absent(ax, NO_STREAM)
        save_figure(fig, out_png)
        plt.close(fig)
        return
    df = table.assign(kind=[_row_kind(a) for a in table["ablation"]]).dropna(subset=[x, y])
    styles = {"teacher": ("*", "black", 220), "per-frame student": ("o", "tab:blue", 70), "keyframe": ("D", "tab:red", 70),
              "temporal fusion": ("s", "tab:green", 70)}
    for kind, (marker, colour, size) in styles.items():
        rows = df[df["kind"] == kind]
        if rows.empty:
            continue
        if {"ms_per_frame_p50", "ms_per_frame_p99"} <= set(rows):
            for r in rows.itertuples():
                if pd.notna(r.ms_per_frame_p50) and pd.notna(r.ms_per_frame_p99):
                    ax.plot([r.ms_per_frame_p50, r.ms_per_frame_p99], [getattr(r, y)] * 2, color=colour, lw=1,
                            alpha=0.5)
        ax.scatter(rows[x], rows[y], marker=marker, s=size, color=colour, label=kind, zorder=3)
    _log_ms_axis(ax)
    _annotate_apart(ax, [(getattr(r, x), getattr(r, y), r.model if r.ablation == "-" else r.ablation)
                         for r in df.itertuples()])
    ax.set_xlabel("ms per frame, streamed one frame at a time (point: mean, line: median to p99)")
    ax.set_ylabel({"miou_protocol": "mIoU (%), every frame / every keyframe offset", "miou": "mIoU (%)",
                   "tc": "TC (%)"}.get(y, y))
    ax.legend(fontsize=8, loc="best")
    save_figure(fig, out_png)
    plt.close(fig)


def keyframe_sweep(points: list[dict], out_png: Path) -> None:
    """mIoU (keyframe protocol: every frame / every offset, and the worst offset dashed) and TC
    against the keyframe interval K, one line per propagation; K = 1 is the keyframe network run
    on every frame. Accuracy falls and TC rises with K: propagated frames are their keyframe
    warped."""
    plt, _ = styled_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8))
    df = pd.DataFrame(points)
    if df.empty or df["K"].nunique() < 2:
        for ax in axes:
            say_absent(ax, "no keyframe interval (keyframe.intervals)")
    else:
        colours = dict(zip(sorted(df["propagation"].unique()), ("tab:red", "tab:purple", "tab:green", "tab:orange"),
                           strict=False))
        for name, rows in df.groupby("propagation"):
            c = colours.get(name, "0.3")
            axes[0].plot(rows["K"], rows["miou"], marker="o", color=c, label=name)
            if rows["miou_worst_offset"].notna().any():
                axes[0].plot(rows["K"], rows["miou_worst_offset"], marker=".", ls="--", color=c,
                             label=f"{name}, worst offset")
            axes[1].plot(rows["K"], rows["tc"], marker="o", color=c, label=name)
        for ax in axes:
            ax.set_xticks(sorted(df["K"].unique()))
            ax.set_xlabel("keyframe interval K (1: every frame)")
        axes[0].set_ylabel("mIoU (%), keyframe protocol")
        axes[1].set_ylabel("TC (%)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.12, 1, 1))  # room for the legend below both panels
    save_figure(fig, out_png)
    plt.close(fig)


def latency_distribution(frame_ms: dict[str, list[float]], out_png: Path) -> None:
    """Each row's streamed ms per frame as a distribution over its frames (box: quartiles,
    whiskers to the 1st and 99th percentile, log axis): a per-frame network is a narrow box, a
    keyframe method a wide one whose upper whisker is its keyframes."""
    plt, sns = styled_pyplot()
    recs = [{"row": name, "ms": v} for name, ms in frame_ms.items() for v in ms]
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.45 * max(1, len(frame_ms))))
    if not recs:
        say_absent(ax, NO_STREAM)
    else:
        df = pd.DataFrame(recs)
        sns.boxplot(data=df, y="row", x="ms", color="0.85", whis=(1, 99), fliersize=2, ax=ax)
        _log_ms_axis(ax)
        ax.set_ylabel("")
    ax.set_xlabel("ms per frame, streamed one frame at a time (box: quartiles, whiskers: p1–p99)")
    save_figure(fig, out_png)
    plt.close(fig)


def _annotate_apart(ax, points: list[tuple[float, float, str]], gap_pt: float = 8.0) -> None:
    """Label each point to its right, nudging labels up so that no two closer than ``gap_pt``
    points in height overlap (students of one network stream at one latency)."""
    fig = ax.figure
    fig.canvas.draw()  # settle the limits, so data → display is final
    to_pt = 72.0 / fig.dpi
    placed: list[tuple[float, float]] = []  # display (x, y) of labels already placed
    for x, y, name in sorted(points, key=lambda p: p[1]):
        px, py = ax.transData.transform((x, y))
        ty = py + 4 / to_pt
        for qx, qy in placed:
            if abs(qx - px) < 60 / to_pt and abs(qy - ty) < gap_pt / to_pt:
                ty = qy + gap_pt / to_pt
        placed.append((px, ty))
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, (ty - py) * to_pt), fontsize=7,
                    arrowprops=None)


def _log_ms_axis(ax) -> None:
    """A log axis labelled at 1, 2, 5 × 10ⁿ only, as plain numbers: matplotlib labels every
    minor tick of a span under a decade, and at 3–4 ms they overlap."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def latency_trace(traces: dict[str, list[float]], out_png: Path, frames: int = 40) -> None:
    """ms per frame over the first ``frames`` streamed frames (after warm-up) of each run: a
    per-frame network is flat, a keyframe method spikes on its keyframes."""
    plt, _ = styled_pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    drawn = False
    for name, ms in traces.items():
        if ms:
            ax.plot(range(len(ms[:frames])), ms[:frames], marker=".", lw=1, label=name)
            drawn = True
    if not drawn:
        say_absent(ax, "no streaming latency record (etc keyframe-score rows)")
    else:
        ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("streamed frame (after warm-up)")
    ax.set_ylabel("ms")
    save_figure(fig, out_png)
    plt.close(fig)


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """H×W train ids → H×W×3 uint8 colours (ignore/unknown = black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = palette
    return lut[labels]
