"""The keyframe protocol's rows: which model streams at which interval and propagation, and
their names in the results table. Torch-free: the Snakefile plans the keyframe jobs from it."""

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


def keyframe_rows(config: dict) -> list[dict]:
    """The rows the default run scores under the keyframe protocol: every per-frame model as it
    streams (interval 1, named by its run), then ``keyframe.model`` at every interval ×
    propagation. ``slug`` names their files; ``offsets`` the `--keyframe-offset` runs each needs
    (``[None]``: one run anchored at frame 0, where every frame is labelled or K = 1)."""
    from etc.data.sets import get_spec
    from etc.flow.roles import canonical, file_tag
    from etc.plan.runs import run_names

    kcfg = config["keyframe"]
    dense = get_spec(config["dataset"]["name"]).every_frame_labelled
    rows = [{"run": r, "slug": f"{r}.k1", "model": r, "interval": 1, "offsets": [None]} for r in run_names(config)]
    if kcfg["model"] not in run_names(config):
        raise EtcError(f"keyframe.model '{kcfg['model']}' is not a run of this config; use teacher or one of "
                       f"{run_names(config)[1:]}")
    estimator = canonical(kcfg["estimator"])
    for k in kcfg["intervals"]:
        for propagate in kcfg["propagate"]:
            rows.append({"run": row_name(kcfg["model"], k, propagate, estimator),
                         "slug": f"{kcfg['model']}.k{k}.{propagate}.{file_tag(estimator)}",
                         "model": kcfg["model"], "interval": int(k), "propagate": propagate,
                         "estimator": estimator, "offsets": [None] if dense else list(range(int(k)))})
    return rows
