"""Which flow trains and which flow measures, the names a store records for them, and the
provenance check every reader of a store makes. Torch-free: the workflow imports it.

Training (TL) reads the store of ``flow.estimator``; measuring (TC, TC-occ, flicker, the demo)
reads the store of ``evaluate.flow_estimator``. They are two keys because TC measured with the
flow that trained TL flatters TL (the reference repository's issue #4): by default the exact
flow measures where the dataset has it (the synthetic set), ``flow.estimator`` elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from etc.core.errors import EtcError


def canonical(spec: str) -> str:
    """The name a store computed with ``spec`` records (etc.flow.estimators names them so):
    DIS's default preset is plain ``dis``, a noise strength is written with ``:g``."""
    family, _, variant = spec.partition(":")
    if family == "dis" and variant in ("", "medium"):
        return "dis"
    if family == "gt" and variant.startswith("noise"):
        try:
            sigma = float(variant[len("noise"):])
        except ValueError:
            return spec
        return f"gt:noise{sigma:g}" if sigma else "gt"
    return spec


def training_estimator(config: dict) -> str:
    return canonical(config["flow"]["estimator"])


def measures_with_training_flow(config: dict) -> bool:
    """Whether TC is measured with the training estimator: ``evaluate.flow_estimator`` null on a
    dataset without exact flow."""
    from etc.data.sets import get_spec

    return config["evaluate"].get("flow_estimator") is None and not get_spec(config["dataset"]["name"]).exact_flow


def evaluation_estimator(config: dict) -> str:
    """``evaluate.flow_estimator``; null means the exact flow where the dataset has one, else
    the training estimator."""
    if measures_with_training_flow(config):
        return canonical(config["flow"]["estimator"])
    spec = config["evaluate"].get("flow_estimator")
    return canonical("gt" if spec is None else spec)


def estimator_ckpt(config: dict, spec: str) -> str | None:
    """The checkpoint a ptlflow estimator loads: ``evaluate.flow_ckpt`` for the evaluation
    estimator, ``flow.ckpt`` for the training one, ``flow_study.ckpts`` for the study's others."""
    name = canonical(spec)
    if not name.startswith("ptlflow:"):
        return None
    if name == evaluation_estimator(config) and config["evaluate"].get("flow_ckpt"):
        return config["evaluate"]["flow_ckpt"]
    if name == training_estimator(config) and config["flow"].get("ckpt"):
        return config["flow"]["ckpt"]
    ckpts = {canonical(k): v for k, v in (config.get("flow_study") or {}).get("ckpts", {}).items()}
    return ckpts.get(name)


def file_tag(spec: str) -> str:
    """The estimator as a file-name part (``dis:fast`` → ``dis-fast``): no ':' in paths, and
    reversible, since no estimator name holds a '-'."""
    return canonical(spec).replace(":", "-")


def from_file_tag(tag: str) -> str:
    return tag.replace("-", ":", 1)


def check_store(path: str | Path, *, estimator: str, dataset: str, split: str, role: str, option: str):
    """Open the flow store ``path``, checked to hold flow of ``estimator`` (canonical name),
    ``dataset`` and ``split``: flow of another estimator than the config names is another
    experiment. ``role`` says what the flow is for and ``option`` the command-line option that
    names another estimator, both for the message."""
    from etc.flow.store import FlowStore

    store = FlowStore(path)
    wanted = {"estimator": estimator, "dataset": dataset, "split": split}
    for key, value in wanted.items():
        stored = store.attrs.get(key)
        if stored != value:
            if key == "estimator":
                fix = (f"pass the store computed with '{value}' (`etc precompute-flow --estimator {value}`), "
                       f"or name '{stored}' with {option}")
            else:
                fix = f"pass the flow store of {key} '{value}'"
            raise EtcError(f"flow store {path} was computed with {key} '{stored}', but the config's {role} "
                           f"flow is {key} '{value}'; {fix}")
    return store


def check_training_store(path: str | Path, config: dict):
    """The training split's store, checked to hold the flow of ``flow.estimator``."""
    return check_store(path, estimator=training_estimator(config), dataset=config["dataset"]["name"],
                       split=config["dataset"]["train_split"], role="training", option="--estimator")
