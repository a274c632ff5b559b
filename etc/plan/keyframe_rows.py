"""The streamed comparison's rows: every per-frame model, ``keyframe.model`` at every interval ×
propagation, and the training-free temporal fusion of ``keyframe.fusion_runs`` at every
strength; their names in the results table and their files. Torch-free: the Snakefile plans
the keyframe and fusion jobs from it."""

from __future__ import annotations

from etc.core.errors import EtcError

# What each ``--propagate`` choice is, as the table and the figures name it: what is built, not
# the published method it resembles (docs/keyframe.md, docs/fidelity.md "Keyframe methods").
PROPAGATION_NAMES = {"scores": "score propagation",
                     "features": "feature propagation, DFF-style, no flow fine-tuning"}


def row_name(model: str, interval: int, propagate: str, estimator: str) -> str:
    """The results-table name of a keyframe setting, e.g. ``teacher · keyframe 5 · score
    propagation · dis``."""
    return f"{model} · keyframe {interval} · {PROPAGATION_NAMES.get(propagate, propagate)} · {estimator}"


def fusion_name(run: str, strength: float, estimator: str) -> str:
    """The results-table name of a temporal-fusion setting, e.g. ``student/baseline · temporal
    fusion 0.3 · dis``."""
    return f"{run} · temporal fusion {float(strength):g} · {estimator}"


def keyframe_rows(config: dict) -> list[dict]:
    """The rows the default run scores under the keyframe protocol: every per-frame model as it
    streams (interval 1, named by its run), then ``keyframe.model`` at every interval ×
    propagation, then every run of ``keyframe.fusion_runs`` at every ``keyframe.fusion_strengths``
    (etc.infer.fusion). ``kind`` says which (per-frame, keyframe, fusion); ``slug`` names their
    files; ``offsets`` the `--keyframe-offset` runs each needs (``[None]``: one run anchored at
    frame 0, where every frame is labelled or K = 1)."""
    from etc.data.sets import get_spec
    from etc.flow.roles import canonical, file_tag
    from etc.plan.runs import run_names

    kcfg = config["keyframe"]
    dense = get_spec(config["dataset"]["name"]).every_frame_labelled
    runs = run_names(config)
    rows = [{"run": r, "slug": f"{r}.k1", "model": r, "kind": "per-frame", "interval": 1, "offsets": [None]}
            for r in runs]
    for key, named in (("model", [kcfg["model"]]), ("fusion_runs", kcfg["fusion_runs"])):
        for run in named:
            if run not in runs:
                raise EtcError(f"keyframe.{key}: '{run}' is not a run of this config; use teacher or one of "
                               f"{runs[1:]}")
    estimator = canonical(kcfg["estimator"])
    for k in kcfg["intervals"]:
        for propagate in kcfg["propagate"]:
            rows.append({"run": row_name(kcfg["model"], k, propagate, estimator),
                         "slug": f"{kcfg['model']}.k{k}.{propagate}.{file_tag(estimator)}",
                         "model": kcfg["model"], "kind": "keyframe", "interval": int(k), "propagate": propagate,
                         "estimator": estimator, "offsets": [None] if dense else list(range(int(k)))})
    for run in kcfg["fusion_runs"]:
        for a in kcfg["fusion_strengths"]:
            rows.append({"run": fusion_name(run, a, estimator), "slug": f"{run}.fusion{float(a):g}.{file_tag(estimator)}",
                         "model": run, "kind": "fusion", "interval": 1, "fusion": float(a), "estimator": estimator,
                         "offsets": [None]})
    return rows
