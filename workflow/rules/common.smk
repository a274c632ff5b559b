# Helpers that turn config into paths and parameters; rules never hold literals.
import shlex
import sys
from pathlib import Path

# Rules call `etc`: put the bin folder of the Python that runs Snakemake first on PATH, so
# `.venv/bin/snakemake` works without activating the virtual environment.
shell.prefix(
    f"set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH; "
)

from etc.core.errors import EtcError
from etc.losses import ablation_needs  # the loss registry says what each ablation needs
from etc.flow.roles import estimator_ckpt, evaluation_estimator, from_file_tag, training_estimator
from etc.plan.layout import (
    BASELINE,
    BENCH_FIGURE,
    FLOW_STUDY_FIGURES,
    PAIRS,
    REPORT_FIGURES,
    SEED_FIGURE,
)  # the layout
from etc.plan.layout import run_path, seed_dir, store_path, study_inputs, study_metrics
from etc.core.config import write_resolved
from etc.core.reads import covers
from etc.plan.rerun import declared, reads_digest
from etc.plan import resources as res  # threads, mem_mb and GPUs of each stage's jobs
from etc.plan.runs import run_names


def results(*parts):
    return str(Path(config["results"], *parts))


def run_file(kind, run, root=None):
    """A run's checkpoint, curve, predictions, timing or metrics (etc.plan.layout.run_path)."""
    return str(run_path(root or config["results"], kind, run))


def dataset_root():
    return config["dataset"]["root"]


def reads(command):
    """The rerun parameter of the jobs of `etc COMMAND`, a hash of the config values the
    command reads (etc.core.reads), with those the rule passes on the command line (a seed or an
    estimator named by the path) in place of the config's. A job reruns exactly when one changes."""

    def rerun_digest(wildcards):
        names = {k: wildcards[k] for k in ("student", "ablation") if k in wildcards.keys()}
        # the evaluated model's run (evaluate: {model}; a keyframe or fused row: its model)
        model = None
        if "model" in wildcards.keys():
            model = wildcards.model
        elif "slug" in wildcards.keys():
            model = KEYFRAME_ROWS[wildcards.slug]["model"]
        if model and "/" in model:
            names["student"], names["ablation"] = model.split("/", 1)
        given = {}
        if "seed" in wildcards.keys():
            given["train.student.seed"] = int(wildcards.seed)
        if "estimator" in wildcards.keys():
            given["flow.estimator"] = flow_spec(wildcards)
        if "measure" in wildcards.keys():
            given["evaluate.flow_estimator"] = from_file_tag(wildcards.measure)
        if command == "precompute-flow" and estimator_ckpt(config, given["flow.estimator"]):
            given["flow.ckpt"] = estimator_ckpt(config, given["flow.estimator"])  # --ckpt
        keys = declared(command, config, **names)  # what it reads is all it is passed
        return reads_digest(
            config, command, {k: v for k, v in given.items() if covers(keys, k)}, **names
        )

    return rerun_digest


def dataset_ready():
    """The file that marks the dataset as present: the generator's last write, or nothing."""
    if config["dataset"]["name"] == "synthetic":
        return [str(Path(dataset_root(), "synthetic.json"))]
    return []


def flow_store(role, spec):
    """The store of estimator ``spec`` for training (training pairs of the training split) or
    measuring (consecutive pairs of the validation split): one file each, never shared."""
    split = config["dataset"]["train_split" if role == "train" else "val_split"]
    return str(store_path(results("flow"), PAIRS[role], split, spec))


def train_flow():
    """The store TL reads: flow.estimator's."""
    return flow_store("train", training_estimator(config))


def eval_flow():
    """The store TC is measured with: evaluate.flow_estimator's (etc.flow.roles)."""
    return flow_store("measure", evaluation_estimator(config))


def flow_spec(wildcards):
    return from_file_tag(wildcards.estimator)


def flow_ckpt_flag(wildcards):
    ckpt = estimator_ckpt(config, flow_spec(wildcards))
    return f"--ckpt {shlex.quote(ckpt)}" if ckpt else ""


def flow_gpus(wildcards):
    return res.flow_gpus(config, flow_spec(wildcards))


# The software of every job under --sdm conda; this checkout's package, pinned by constraints.txt
ETC_ENV = "../envs/etc.yaml"


def train_launcher(which):
    """`etc`, or torchrun with one process per GPU (or gloo process on CPU) when
    train.<which>.gpus asks for several."""
    n = config["train"][which]["gpus"]
    return (
        "etc" if n == 1 else f"torchrun --standalone --nproc_per_node {n} -m etc --"
    )  # "--": torchrun would read --run as its own --run-path


def all_models():
    return run_names(config)


def student_inputs(wildcards):
    """A student needs the training flow for TL and the teacher for distillation terms."""
    terms = config["ablations"][wildcards.ablation]
    inputs = {
        "config": ancient(results("config.yaml")),
        "manifest": results("data", "manifest.json"),
    }
    if ablation_needs(terms, "needs_flow"):
        inputs["flow"] = train_flow()
    if ablation_needs(terms, "needs_teacher"):
        inputs["teacher"] = run_file("models", "teacher")
    return inputs


def student_flags(wildcards, input):
    """--flow and --teacher where the run needs them; --seed and --estimator where the path names
    one (the seed and flow studies)."""
    flags = [f"--seed {wildcards.seed}"] if "seed" in wildcards.keys() else []
    if "estimator" in wildcards.keys():
        flags.append(f"--estimator {shlex.quote(flow_spec(wildcards))}")
    if "flow" in input.keys():
        flags.append(f"--flow {shlex.quote(input.flow)}")
    if "teacher" in input.keys():
        flags.append(f"--teacher {shlex.quote(input.teacher)}")
    return " ".join(flags)


def report_outputs():
    return [results("report", f"{n}.png") for n in REPORT_FIGURES]


def all_targets():
    return [
        results("data", "manifest.json"),
        results("table.csv"),
        results("table.md"),
        *report_outputs(),
        *demo_outputs(),
    ]


def demo_models():
    """Baseline against the richest ETC ablation of the first student."""
    student = next(iter(config["students"]))
    ablations = list(config["ablations"])
    etc_run = "tl_kd" if "tl_kd" in ablations else ablations[-1]
    return {"baseline": f"{student}/baseline", "etc": f"{student}/{etc_run}"}


def demo_inputs(wildcards):
    return {name: run_file("predictions", run) for name, run in demo_models().items()}


def demo_models_arg(wildcards, input):
    return shlex.quote(",".join(f"{name}={input[name]}" for name in demo_models()))


def demo_outputs():
    n = config["report"]["demo_clips"]
    if "baseline" not in config["ablations"]:
        return []
    return [results("demo", f"clip{i}.mp4") for i in range(n)] + [
        results("demo", f"clip{i}.gif") for i in range(n)
    ]


# The flow study (flow_study.smk)


def study(*parts):
    return results("flow_study", *parts)


def study_run_files(wildcards, kind):
    """Model or predictions of (student, ablation, training flow): the default run's for
    flow.estimator, the study's own otherwise."""
    spec = from_file_tag(wildcards.estimator)
    run = f"{wildcards.student}/{wildcards.ablation}"
    if spec == training_estimator(config):
        return results(kind, f"{run}.pt" if kind == "models" else f"{run}.h5")
    return study(kind, wildcards.estimator, f"{run}.pt" if kind == "models" else f"{run}.h5")


def study_student_inputs(wildcards):
    inputs = student_inputs(wildcards)
    inputs["flow"] = flow_store("train", from_file_tag(wildcards.estimator))
    return inputs


STUDY_WILDCARDS = dict(
    student=r"[^./]+",
    ablation=r"[^./]+",
    estimator=r"[A-Za-z0-9_-]+(\.[0-9]+)?",
    measure=r"[A-Za-z0-9_-]+(\.[0-9]+)?",
)


def flow_study_inputs(wildcards):
    try:
        files = study_inputs(config, study("metrics"), results("flow"))  # checks the plan first
    except EtcError as exc:  # one line, not Snakemake's input-function traceback
        sys.exit(f"error: {exc}")
    return {
        "metrics": [str(p) for p in files["metrics"]],
        "quality": [str(p) for p in files["quality"]],
    }


# The seed study (seed_study.smk)


def seed_root():
    """The seed study's results folder of seed {seed}: the default run's layout below it."""
    return str(seed_dir(config["results"], "{seed}"))


# Keyframe methods (keyframe.smk): the rows of the default run and their files
import re

from etc.plan.keyframe_rows import keyframe_rows

KEYFRAME_ROWS = {row["slug"]: row for row in keyframe_rows(config)}
KEYFRAME_WILDCARDS = dict(
    model=r"teacher|[^/.]+/[^/.]+",
    interval=r"[0-9]+",
    propagate=r"scores|features",
    estimator=r"[A-Za-z0-9_-]+(\.[0-9]+)?",
    offset=r"all|d[0-9]+",
    strength=r"0|1|0?\.[0-9]+",
)


def keyframe(*parts):
    return results("keyframe", *parts)


def keyframe_predictions(row):
    """The `etc infer` outputs of a row: the per-frame run's, the fused stream's, or one per
    offset of a keyframe setting."""
    if row["kind"] == "per-frame":
        return [run_file("predictions", row["model"])]  # the same labels as the stream
    if row["kind"] == "fusion":
        return [keyframe("predictions", f"{row['slug']}.h5")]
    return [
        keyframe("predictions", f"{row['slug']}.{'all' if d is None else f'd{d}'}.h5")
        for d in row["offsets"]
    ]


def keyframe_row_files():
    return [keyframe("rows", f"{slug}.json") for slug in KEYFRAME_ROWS]


def keyframe_score_inputs(wildcards):
    row = KEYFRAME_ROWS[wildcards.slug]
    preds = keyframe_predictions(row)
    metrics = (
        run_file("metrics", row["model"])
        if row["kind"] == "per-frame"
        else keyframe("evaluate", f"{row['slug']}.json")
    )
    return {
        "config": ancient(results("config.yaml")),
        "predictions": preds,
        "metrics": metrics,
    }
