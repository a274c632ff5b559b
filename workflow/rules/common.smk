# Helpers that turn config into paths and parameters; rules never hold literals.
import hashlib
import json
import shlex
import sys
from pathlib import Path

# Rules call `etc`: put the bin folder of the Python that runs Snakemake first on PATH, so
# `.venv/bin/snakemake` works without activating the virtual environment.
shell.prefix(f"set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH; ")

from etc.errors import EtcError
from etc.losses import ablation_needs  # the loss registry says what each ablation needs
from etc.flow.roles import estimator_ckpt, evaluation_estimator, from_file_tag, training_estimator
from etc.report.flow_study import BASELINE, FIGURES, PAIRS, store_path, study_inputs
from etc.report.seed_study import FIGURE as SEED_FIGURE
from etc.report.seed_study import seed_dir, study_metrics
from etc.runs import run_names


def results(*parts):
    return str(Path(config["results"], *parts))


def dataset_root():
    return config["dataset"]["root"]


def digest(*sections):
    """A short hash of config sections: a rule reruns exactly when what it reads changes."""
    return digest_of([config[s] for s in sections])


def digest_of(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def config_json():
    return shlex.quote(json.dumps(config))  # key order kept: the table lists ablations as the config does


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


def flow_digest(spec):
    """What a store of ``spec`` depends on: the dataset, the flow settings other than which
    estimator the config trains with, the estimator and its checkpoint."""
    settings = {k: v for k, v in config["flow"].items() if k not in ("estimator", "ckpt")}
    return digest_of([config["dataset"], settings, spec, estimator_ckpt(config, spec)])


def flow_gpus(wildcards):
    """A ptlflow model wants a GPU; DIS and the exact flow run on CPU."""
    return 1 if flow_spec(wildcards).startswith("ptlflow:") else 0


def train_gpus(which):
    """GPUs (processes) of the teacher's or a student's training job: config train.<which>.gpus."""
    return config["train"][which]["gpus"]


def train_launcher(which):
    """`etc`, or torchrun with one process per GPU when the job is given several."""
    n = train_gpus(which)
    return "etc" if n == 1 else f"torchrun --standalone --nproc_per_node {n} -m etc --"  # "--": torchrun would read --run as its own --run-path


def all_models():
    return run_names(config)


def student_inputs(wildcards):
    """A student needs the training flow for TL and the teacher for distillation terms."""
    terms = config["ablations"][wildcards.ablation]
    inputs = {"config": ancient(results("config.yaml")), "manifest": results("data", "manifest.json")}
    if ablation_needs(terms, "needs_flow"):
        inputs["flow"] = train_flow()
    if ablation_needs(terms, "needs_teacher"):
        inputs["teacher"] = results("models", "teacher.pt")
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
    from etc.report.figures import REPORT_FIGURES  # the one list of figure names

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
    return {name: results("predictions", f"{run}.h5") for name, run in demo_models().items()}


def demo_models_arg(wildcards, input):
    return shlex.quote(",".join(f"{name}={input[name]}" for name in demo_models()))


def demo_outputs():
    n = config["report"]["demo_clips"]
    if "baseline" not in config["ablations"]:
        return []
    return [results("demo", f"clip{i}.mp4") for i in range(n)] + [results("demo", f"clip{i}.gif") for i in range(n)]


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


STUDY_WILDCARDS = dict(student=r"[^./]+", ablation=r"[^./]+", estimator=r"[A-Za-z0-9_-]+(\.[0-9]+)?",
                       measure=r"[A-Za-z0-9_-]+(\.[0-9]+)?")


def flow_study_inputs(wildcards):
    try:
        files = study_inputs(config, study("metrics"), results("flow"))  # checks the plan first
    except EtcError as exc:  # one line, not Snakemake's input-function traceback
        sys.exit(f"error: {exc}")
    return {"metrics": [str(p) for p in files["metrics"]], "quality": [str(p) for p in files["quality"]]}


# The seed study (seed_study.smk)


def seeded(seed, kind, *parts):
    return str(Path(seed_dir(config["results"], seed), kind, *parts))
