"""The rerun promise over every key of the schema (docs/workflow.md, "Reruns after a config edit").

On the finished smoke run (the session's shared one, every subcommand's config reads recorded),
each leaf key of the schema is edited to another valid value, and `snakemake -n all` must schedule
exactly: the jobs whose recorded reads include the key, jobs whose outputs the edit renames or adds
(missing outputs), and the jobs downstream of those; a job reruns by its params (the reads digest)
only if it read the key. Keys no job reads are listed in UNREAD, each with the reason.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, _copy_of, _spaced_smoke

# Keys no job of the smoke run reads, and why each is in the schema all the same.
UNREAD = {
    "evaluate.flow_ckpt": "a ptlflow evaluation estimator's checkpoint: the rule passes it to precompute-flow as --ckpt",
    "flow_study.ablations": "read by the flow_study target only (etc flow-study-report, the study's plan)",
    "flow_study.ckpts": "read by the flow_study target only",
    "flow_study.measure_estimators": "read by the flow_study target only",
    "flow_study.student": "read by the flow_study target only",
    "flow_study.train_estimators": "read by the flow_study target only",
    "report.demo_clips": "read by the Snakefile only: how many demo_video jobs `all` asks for",
    "resources.device": "read by the Snakefile only: the GPUs a job asks the scheduler for",
    "resources.mem_scale": "read by the Snakefile only: each job's mem_mb",
    "resources.threads.evaluate": "read by the Snakefile only: a job's threads",
    "resources.threads.flow": "read by the Snakefile only: a job's threads",
    "resources.threads.infer": "read by the Snakefile only: a job's threads",
    "resources.threads.report": "read by the Snakefile only: a job's threads",
    "resources.threads.timed": "read by the Snakefile only: a job's threads",
    "resources.threads.train": "read by the Snakefile only: a job's threads",
    "results": "read by the Snakefile only: every output path (the commands get paths on the command line)",
    "seed_study.seeds": "read by the seed_study target only",
}

# Keys the workflow reads for a job, on its command line rather than in the config: the launcher
# (one process, or torchrun with train.<run>.gpus processes) is a rule parameter.
WORKFLOW_READS = {"train.teacher.gpus": {"train_teacher"}, "train.student.gpus": {"train_student"}}
# Options by which a rule gives a command a value in place of the config's (common.smk, reads): a
# read of the key under such an option reads the command line, not the config.
GIVEN = {"--estimator": "flow.estimator", "--seed": "train.student.seed", "--flow-estimator": "evaluate.flow_estimator",
         "--ckpt": "flow.ckpt"}

# Reruns by a digest that declares more than the job read here (none left: keep it so).
KNOWN_EXTRA: set[tuple[str, str]] = set()

# Values the schema cannot choose: strings, nullable keys, arrays (the smoke preset's value → another).
VALUES = {
    "dataset.root": "data dir/other",
    "dataset.window": [-1, 1, 2],
    "dataset.train_split": "val",
    "dataset.val_split": "train",
    "augment.crop": [32, 32],
    "augment.scale": [0.75, 1.25],
    "flow.estimator": "dis:fast",
    "flow.ckpt": "flow.ckpt",
    "losses.ce_weights": [2.0] + [1.0] * 18,
    "evaluate.vc_windows": [8],
    "evaluate.device": "cpu",
    "evaluate.flow_estimator": "dis",
    "evaluate.flow_ckpt": "flow.ckpt",
    "seed_study.seeds": [0, 1],
    "flow_study.train_estimators": ["gt", "dis"],
    "flow_study.measure_estimators": ["gt", "dis"],
    "flow_study.ablations": ["tl"],
    "flow_study.student": "student",
    "flow_study.ckpts": {"ptlflow:raft": "raft.ckpt"},
    "keyframe.model": "student/baseline",
    "keyframe.intervals": [2],
    "keyframe.propagate": ["scores"],
    "keyframe.estimator": "dis:fast",
    "keyframe.ckpt": "keyframe.ckpt",
    "keyframe.fusion_runs": ["student/tl"],
    "keyframe.fusion_strengths": [0.25],
    "results": "results dir/other",
}
# a network's pretrained weights: a local file
PRETRAINED = "weights.pt"
# keys the schema ties to another: an architecture takes its own backbones (definitions.model)
COUPLED = {"arch": {"arch": "segformer", "backbone": "mit_b0"}}


def _deref(schema: dict, root: dict) -> dict:
    if "$ref" in schema:
        return {**root["definitions"][schema["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def schema_leaves(schema: dict, config, root: dict, prefix: str = ""):
    """(dotted key, schema) of every leaf: objects' properties recursively, each entry of a
    free-named section (students, ablations) by its entry schema, arrays and scalars as leaves; a
    free-named section without entries (flow_study.ckpts) is one leaf."""
    schema = _deref(schema, root)
    props, extra = schema.get("properties"), schema.get("additionalProperties")
    if props:
        for name, sub in props.items():
            yield from schema_leaves(sub, (config or {}).get(name), root, f"{prefix}{name}.")
    elif isinstance(extra, dict) and _deref(extra, root).get("properties") and config:
        for name, value in config.items():
            yield from schema_leaves(extra, value, root, f"{prefix}{name}.")
    else:
        yield prefix[:-1], schema


def other_value(key: str, schema: dict, value):
    """Another value of ``key`` the schema accepts (VALUES where it cannot say)."""
    leaf = key.rsplit(".", 1)[-1]
    if key in VALUES:
        return VALUES[key]
    if leaf == "pretrained":
        return PRETRAINED
    if "enum" in schema:
        return next(v for v in schema["enum"] if v != value)
    types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    if value == "auto":  # num_workers
        return 0
    if isinstance(value, bool):
        return not value
    if value is None and "number" in types:  # a loss term an ablation leaves out
        return 1.0
    if isinstance(value, int) and "integer" in types:
        step = 2 if "not" in schema else 1  # blur_kernel: odd
        return value + step if schema.get("maximum") is None or value + step <= schema["maximum"] else value - step
    if isinstance(value, (int, float)) and "number" in types:
        top = schema.get("maximum")
        if value and (top is None or 2 * value <= top):
            return 2 * value
        return value / 2 if value else 0.5
    raise AssertionError(f"no other value for {key} ({schema.get('type')}): add it to VALUES")


def _set(config: dict, key: str, value) -> None:
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def edits_of(base: dict) -> dict[str, dict]:
    """Every leaf key of the schema → the dotted keys and values of its edit of ``base``."""
    from etc.core.config import load_schema, validate_config
    from etc.core.reads import value_at

    schema = load_schema()
    loaded = validate_config(copy.deepcopy(base))
    edits = {}
    for key, sub in schema_leaves(schema, loaded, schema):
        leaf = key.rsplit(".", 1)[-1]
        if leaf in COUPLED and key.count(".") <= 2 and key.split(".")[0] in ("teacher", "students"):
            prefix = key[: -len(leaf)]
            edits[key] = {prefix + k: v for k, v in COUPLED[leaf].items()}
        else:
            edits[key] = {key: other_value(key, sub, value_at(loaded, key))}
    return edits


def _job_of(argv: list[str], jobs: dict[tuple, dict]) -> tuple | None:
    """The job (its outputs) whose process logged ``argv``: by the file or folder it writes."""
    for flag in ("--table", "--manifest", "--out"):
        if flag in argv:
            out = argv[argv.index(flag) + 1]
            for outputs in jobs:
                if out in outputs or outputs and all(o.startswith(out.rstrip("/") + "/") for o in outputs):
                    return outputs
    return None


def _reads_key(keys: set[str], key: str, present: bool) -> bool:
    """Whether a process that logged ``keys`` read ``key``: the leaf itself, or (for a key the
    config leaves out, such as a loss term an ablation does not name) its section's key set."""
    return key in keys or (not present and f"{key.rsplit('.', 1)[0]}.*" in keys)


def _plans(work: Path, configs: list[tuple[str, Path]]) -> dict[str, dict]:
    res = subprocess.run([sys.executable, str(ROOT / "tests/rerun_plans.py"), str(ROOT / "Snakefile"), str(work)],
                         input=json.dumps([[n, str(p)] for n, p in configs]), capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get(
                             "PYTHONPATH")]))})
    assert res.returncode == 0, res.stderr[-3000:]
    plans = {}
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            plans[record["name"]] = record
    return plans


@pytest.mark.slow
@pytest.mark.workflow
def test_every_key_edit_reruns_exactly_the_jobs_that_read_it(smoke_run, tmp_path):
    import yaml

    from etc.core.config import validate_config
    from etc.core.reads import value_at

    started = time.time()
    work = _copy_of(smoke_run[0], tmp_path / "w")
    base = _spaced_smoke()
    loaded = validate_config(copy.deepcopy(base))
    edits = edits_of(base)
    configs = [("base", tmp_path / "base.yaml")]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    bad = []
    for i, (key, edit) in enumerate(edits.items()):
        edited = copy.deepcopy(base)
        for k, v in edit.items():
            assert v != value_at(loaded, k), (key, v)
            _set(edited, k, v)
        try:
            validate_config(copy.deepcopy(edited))
        except Exception as exc:  # noqa: BLE001
            bad.append(f"{key}: {edit} does not validate: {exc}")
            continue
        path = tmp_path / f"edit{i}.yaml"
        path.write_text(yaml.safe_dump(edited, sort_keys=False))
        configs.append((key, path))
    assert not bad, "\n".join(bad)
    plans = _plans(work, configs)

    assert "error" not in plans["base"], plans["base"]
    jobs = {tuple(j["output"]): j for j in plans["base"]["jobs"]}
    assert not [j for j in jobs.values() if j["needrun"]], "the copy of the smoke run is not up to date"
    reads: dict[tuple, set[str]] = {}  # job → the keys its processes (and their workers) logged
    for line in (smoke_run[1] / "reads.jsonl").read_text().splitlines():
        record = json.loads(line)
        job = _job_of(record["argv"], jobs)
        assert job is not None, f"no job writes what {record['argv']} writes"
        given = {key for flag, key in GIVEN.items() if flag in record["argv"]}
        reads.setdefault(job, set()).update(k for k in record["keys"] if k not in given)
    # every rule that runs `etc` is recorded (flow_quality and the studies' rules are not in `all`)
    recorded = {jobs[j]["rule"] for j in reads}
    assert recorded == {j["rule"] for j in jobs.values()} - {"all", "resolve_config"}, sorted(recorded)

    failures, unread = [], set()
    for key, edit in edits.items():
        plan = plans.get(key)
        if plan is None or "error" in plan:
            failures.append(f"{key}: no plan ({plan and plan['error']})")
            continue
        readers = {job for job, keys in reads.items()
                   if any(_reads_key(keys, k, value_at(loaded, k) is not None) for k in edit)
                   or jobs[job]["rule"] in WORKFLOW_READS.get(key, ())}
        if not readers:
            unread.add(key)
        now = {tuple(j["output"]): j for j in plan["jobs"]}
        runs = {job for job, j in now.items() if j["needrun"]}
        missed = sorted(jobs[job]["rule"] for job in readers if job in now and job not in runs)
        if missed:
            failures.append(f"{key}: read by {missed}, which do not rerun")
        extra = sorted(now[job]["rule"] for job in runs if now[job]["params"] and job not in readers
                       and (key, now[job]["rule"]) not in KNOWN_EXTRA)
        if extra:
            failures.append(f"{key}: {extra} rerun by their params without reading it")
        for job in runs - readers:
            j = now[job]
            if j["missing"] or (key, j["rule"]) in KNOWN_EXTRA:
                continue  # a file the edit names anew (a path, a row, a store)
            # fed by a job that reruns (a new input file: the input set changes too), nothing else
            if set(j["other"]) - {"input_changed"} or not j["input_from_runs"] or j["params"]:
                failures.append(f"{key}: {j['rule']} {job[0]} reruns: {j['reason']}")
    assert not failures, "\n".join(failures)
    assert unread == set(UNREAD), (sorted(unread - set(UNREAD)), sorted(set(UNREAD) - unread))
    print(f"{len(edits)} keys, {time.time() - started:.0f} s")
