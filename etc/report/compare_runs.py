"""Whether two runs of the same config produced the same results: the results table's quality
columns and every checkpoint's tensors, bit for bit. A run through a scheduler (SLURM,
Kubernetes) executes the same commands as a local one, so anything but equality is a bug in how
the jobs were placed or staged (scripts/slurm_smoke.sh; docs/scheduler.md).

    python -m etc.report.compare_runs RESULTS_A RESULTS_B     (exit 1 and one line per difference)
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from etc.core.errors import EtcError

# Sections of the table (etc.evaluate.metrics.base.SECTIONS) that a scheduler must not change; "cost" and
# "context" hold wall-clock speed and how the job ran (threads), which may differ.
QUALITY_SECTIONS = ("main", "detail")


def quality_columns(config: dict) -> list[str]:
    from etc.report.table import IDENTITY, report_columns

    names = [c.key for c in IDENTITY]
    return names + [c.key for c in report_columns(config) if c.section in QUALITY_SECTIONS and c.key not in names]


def compare_runs(a: str | Path, b: str | Path) -> list[str]:
    """The differences between results folders ``a`` and ``b`` (``config["results"]`` of two
    runs), one line each; empty when the quality columns and the checkpoints are equal."""
    from etc.core.config import load_config

    a, b = Path(a), Path(b)
    config = load_config(_existing(a / "config.yaml"))
    return _compare_tables(a / "table.csv", b / "table.csv", quality_columns(config)) + _compare_checkpoints(a, b)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise EtcError(f"{path} not found: is {path.parent} the results folder of a finished run?")
    return path


def _compare_tables(a: Path, b: Path, columns: list[str]) -> list[str]:
    ta, tb = pd.read_csv(_existing(a)), pd.read_csv(_existing(b))
    missing = [c for c in columns if c not in ta or c not in tb]
    if missing:
        return [f"table: columns {missing} missing from {a} or {b}"]
    ta, tb = ta[columns], tb[columns]
    if len(ta) != len(tb):
        return [f"table: {len(ta)} rows in {a}, {len(tb)} in {b}"]
    out = []
    for col in columns:
        for i, (x, y) in enumerate(zip(ta[col], tb[col], strict=True)):
            if not (x == y or (pd.isna(x) and pd.isna(y))):
                out.append(f"table: {col} of row {i} ({ta['model'][i]}/{ta['ablation'][i]}): {x!r} vs {y!r}")
    return out


def _compare_checkpoints(a: Path, b: Path) -> list[str]:
    from etc.models.checkpoint import load_checkpoint

    names = {p.relative_to(a / "models").as_posix() for p in (a / "models").rglob("*.pt")}
    other = {p.relative_to(b / "models").as_posix() for p in (b / "models").rglob("*.pt")}
    if not names:
        return [f"checkpoints: none under {a / 'models'}"]
    out = [f"checkpoints: {n} in only one of the runs" for n in sorted(names ^ other)]
    for name in sorted(names & other):
        out += [f"checkpoint {name}: {d}" for d in
                _differences(load_checkpoint(a / "models" / name), load_checkpoint(b / "models" / name), "")]
    return out


def _differences(x, y, where: str) -> list[str]:
    """Where two checkpoint states (nested dicts/lists of tensors and plain values) differ."""
    import torch

    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            return [f"{where}: a tensor in one run only"]
        if x.shape != y.shape or x.dtype != y.dtype:
            return [f"{where}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}"]
        if torch.equal(x, y):
            return []
        gap = (x.double() - y.double()).abs().max().item() if x.is_floating_point() else "-"
        return [f"{where}: tensors differ (max |a - b| {gap})"]
    if isinstance(x, dict) and isinstance(y, dict):
        if set(x) != set(y):
            return [f"{where}: keys {sorted(map(str, set(x) ^ set(y)))} in one run only"]
        return [d for k in x for d in _differences(x[k], y[k], f"{where}.{k}" if where else str(k))]
    if isinstance(x, list | tuple) and isinstance(y, list | tuple) and len(x) == len(y):
        return [d for i, (u, v) in enumerate(zip(x, y, strict=True)) for d in _differences(u, v, f"{where}[{i}]")]
    return [] if x == y else [f"{where}: {x!r} vs {y!r}"]


@click.command()
@click.argument("a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, file_okay=False, path_type=Path))
def main(a: Path, b: Path) -> None:
    """Compare the results folders A and B of two runs of one config."""
    try:
        diffs = compare_runs(a, b)
    except EtcError as exc:
        raise click.ClickException(str(exc)) from None
    for line in diffs:
        click.echo(line, err=True)
    if diffs:
        raise SystemExit(1)
    click.echo(f"equal: the quality columns of {a / 'table.csv'} and every checkpoint under {a / 'models'}")


if __name__ == "__main__":
    main()
