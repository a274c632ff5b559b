"""The workflow's layout in one place: where every stage writes under the results folder, the
figure names, and the plans of the flow and seed studies. The rules (workflow/rules/*.smk), the
reports (etc.report) and the tests read them from here, so they agree by construction.
Torch- and pandas-free: the Snakefile imports it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from etc.core.errors import EtcError
from etc.flow.roles import canonical, file_tag, training_estimator
from etc.plan.runs import student_run_names

# Figure names, declared once: `etc report` draws these (etc.report.build) and the workflow
# declares them as outputs (workflow/rules/report.smk), each with the caption
# workflow/report/<name>.rst and the report category given here.
REPORT_FIGURES = {
    "miou_vs_tc": "Results",
    "class_iou": "Accuracy",
    "tc_per_clip": "Consistency",
    "training_curves": "Training",
    "miou_vs_latency": "Keyframe",
    "tc_vs_latency": "Keyframe",
    "keyframe_sweep": "Keyframe",
    "latency_distribution": "Keyframe",
    "latency_trace": "Keyframe",
}
BENCH_FIGURE = "bench_rules"  # `etc bench` draws the wall time of every rule beside its CSV

# kind → (folder, suffix) of a run's files
RUN_FILES = {"models": ("models", ".pt"), "train": ("train", ".csv"), "predictions": ("predictions", ".h5"),
             "timing": ("predictions", ".timing.json"), "metrics": ("metrics", ".json")}


def run_path(root: str | Path, kind: str, run: str) -> Path:
    """``<root>/<folder>/<run><suffix>``: a run's checkpoint (``models``), training curve
    (``train``), predictions, their timing or metrics; ``run`` is ``teacher`` or
    ``<student>/<ablation>`` (or a wildcard pattern of one)."""
    folder, suffix = RUN_FILES[kind]
    return Path(root, folder, f"{run}{suffix}")


# The flow study (``snakemake --cores all flow_study``; etc.report.flow_study reports it)

EXACT = "gt"
BASELINE = "baseline"
PAIRS = {"train": "training", "measure": "consecutive"}  # the pair set of each role's store
FLOW_STUDY_FIGURES = ("delta_vs_epe", "tc_bias")
# metrics the table carries for every (model, measuring flow); deltas and biases are of these
METRICS = ("miou", "tc", "tc_all", "tc_occ", "flicker_pct")


@dataclass(frozen=True)
class StudyPlan:
    student: str
    ablations: tuple[str, ...]
    train: tuple[str, ...]  # canonical training estimators
    measure: tuple[str, ...]  # canonical measuring estimators, the exact flow first
    default_train: str  # flow.estimator: its students are the default run's

    def runs(self) -> list[tuple[str, str | None]]:
        """(ablation, training estimator) of every model measured: the baseline (no training
        flow), then each ablation × training estimator."""
        return [(BASELINE, None)] + [(a, e) for a in self.ablations for e in self.train]


def study_plan(config: dict) -> StudyPlan:
    """The study of ``config``, checked: a dataset with exact flow, a known student, a baseline,
    and ablations that use the temporal loss."""
    from etc.data.sets import get_spec
    from etc.losses.registry import ablation_needs

    study, ds = config["flow_study"], config["dataset"]["name"]
    if not get_spec(ds).exact_flow:
        raise EtcError(f"the flow study measures flows against the exact flow, which dataset '{ds}' does not "
                       f"have; run it on the synthetic set (dataset.name: synthetic)")
    student = study["student"] or next(iter(config["students"]))
    if student not in config["students"]:
        raise EtcError(f"config key 'flow_study.student': '{student}' is not a student; students: "
                       f"{', '.join(config['students'])}")
    if BASELINE not in config["ablations"]:
        raise EtcError("the flow study compares with the default run's 'baseline' ablation; add "
                       "`baseline: {ce: 1.0}` to `ablations`")
    for a in study["ablations"]:
        if a not in config["ablations"]:
            raise EtcError(f"config key 'flow_study.ablations': '{a}' is not an ablation; ablations: "
                           f"{', '.join(config['ablations'])}")
        if not ablation_needs(config["ablations"][a], "needs_flow"):
            raise EtcError(f"config key 'flow_study.ablations': '{a}' does not use the temporal loss, so "
                           f"its training flow changes nothing; name ablations with a `tl` weight")
    measure = _unique([EXACT, *study["measure_estimators"]])
    return StudyPlan(student, tuple(dict.fromkeys(study["ablations"])), _unique(study["train_estimators"]),
                     measure, training_estimator(config))


def _unique(specs) -> tuple[str, ...]:
    return tuple(dict.fromkeys(canonical(s) for s in specs))


def metrics_path(metrics_dir: str | Path, plan: StudyPlan, measure: str, ablation: str, train: str | None) -> Path:
    """``<measure>/<student>/baseline.json`` or ``<measure>/<student>/<ablation>.<train>.json``."""
    name = ablation if train is None else f"{ablation}.{file_tag(train)}"
    return Path(metrics_dir, file_tag(measure), plan.student, f"{name}.json")


def store_path(flow_dir: str | Path, pairs: str, split: str, spec: str) -> Path:
    """``<pairs>/<split>.<estimator>.h5``: one file per pair set, split and estimator, so the
    training and the evaluation store never share a file, even on one split."""
    return Path(flow_dir, pairs, f"{split}.{file_tag(spec)}.h5")


def quality_path(store: str | Path) -> Path:
    """Where `etc flow-quality` writes its summary by default: beside the store."""
    store = Path(store)
    return store.with_name(store.stem + ".quality.json")


def study_inputs(config: dict, metrics_dir: str | Path, flow_dir: str | Path) -> dict[str, list[Path]]:
    """Every file the report reads: the metrics of each (measuring flow, model) and the
    flow-quality summary of each training and measuring store."""
    plan = study_plan(config)
    ds = config["dataset"]
    return {
        "metrics": [metrics_path(metrics_dir, plan, m, a, e) for m in plan.measure for a, e in plan.runs()],
        "quality": [quality_path(store_path(flow_dir, PAIRS["train"], ds["train_split"], e)) for e in plan.train]
        + [quality_path(store_path(flow_dir, PAIRS["measure"], ds["val_split"], m)) for m in plan.measure],
    }



# The seed study (``snakemake --cores all seed_study``; etc.report.seed_study reports it)

SEED_FIGURE = "seed_deltas"
SUMMARY_KEYS = ("mean", "std")


def seeds(config: dict) -> list[int]:
    """The study's seeds, the default run's first (it is reused, not retrained)."""
    default = int(config["train"]["student"]["seed"])
    listed = [int(s) for s in config["seed_study"]["seeds"]]
    return [default, *[s for s in listed if s != default]]


def seed_dir(results_dir: str | Path, seed) -> Path:
    """Where the study keeps the runs of ``seed`` (a number or a wildcard pattern): the same
    layout as the default run's below it (models/, predictions/, metrics/, …)."""
    return Path(results_dir, "seed_study", f"seed{seed}")


def run_files(results_dir: str | Path, config: dict, seed: int, run: str, kind: str) -> Path:
    """Model (``models``), predictions (``predictions``) or metrics (``metrics``) of ``run``
    trained with ``seed``: the default run's for its own seed, the study's otherwise."""
    root = results_dir if seed == int(config["train"]["student"]["seed"]) else seed_dir(results_dir, seed)
    return run_path(root, kind, run)


def study_metrics(config: dict, results_dir: str | Path) -> list[Path]:
    return [run_files(results_dir, config, s, r, "metrics") for s in seeds(config) for r in student_run_names(config)]
