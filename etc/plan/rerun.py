"""Each job's rerun parameter: the values its subcommand reads of the config (etc.core.reads),
narrowed to the keys it reads under that config, hashed.

Some keys a command reads only where the config asks for them (``WHEN``): `etc infer` reads the
keyframe estimator only for a temporal fusion, a student's training reads ``flow.estimator``
only when its ablation has a term that needs flow (the loss registry says which). The digest
leaves the others out, so that an edit of a key a job cannot read reruns nothing; the
condition's own keys are read, and declared, unconditionally. It lives in ``plan``, above the
loss registry it asks; ``core`` keeps the table. Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import copy
import hashlib
import json

from etc.core.reads import READS, covers, value_at
from etc.losses.registry import ablation_needs


def _fusion(config: dict, names: dict) -> bool:
    return float(value_at(config, "infer.temporal_fusion") or 0) > 0


def _needs_flow(config: dict, names: dict) -> bool:
    return ablation_needs(value_at(config, f"ablations.{names['ablation']}") or {}, "needs_flow")


def _evaluates_with_training_flow(config: dict, names: dict) -> bool:
    """etc evaluate reads the training estimator to record it for a model trained with flow
    (etc.evaluate.metrics.provenance) and to measure TC with it where the dataset has no exact
    flow and evaluate.flow_estimator is null (etc.flow.roles.evaluation_estimator). ``names``:
    the evaluated model's student and ablation (none for the teacher, trained without flow)."""
    from etc.flow.roles import measures_with_training_flow

    return measures_with_training_flow(config) or ("ablation" in names and _needs_flow(config, names))


# (command, key) -> whether ``config`` (with the run's names) has the command read the key
WHEN = {
    ("evaluate", "flow.estimator"): _evaluates_with_training_flow,
    ("infer", "keyframe.estimator"): _fusion,
    ("infer", "keyframe.ckpt"): _fusion,
    ("train-student", "flow.estimator"): _needs_flow,  # TL's store is checked against it
}


def declared(command: str, config: dict, **names: str) -> list[str]:
    """The dotted keys ``command`` reads under ``config``, its run's names filled in."""
    return [key.format(**names) for key in READS[command]
            if (command, key) not in WHEN or WHEN[command, key](config, names)]


def reads_digest(config: dict, command: str, given: dict | None = None, **names: str) -> str:
    """A short hash of the values ``command`` reads (``given``: dotted key → the value the rule
    passes on the command line instead of the config's): the rerun parameter of its rule."""
    keys = declared(command, config, **names)
    config = copy.deepcopy(config)
    for key, value in (given or {}).items():
        if not covers(keys, key):
            raise KeyError(f"etc {command} is not declared to read {key} (etc.core.reads.READS)")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    values = {k: value_at(config, k) for k in keys}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
