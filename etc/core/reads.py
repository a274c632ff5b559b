"""What each subcommand reads of the config, declared once.

The workflow derives every rule's rerun parameter from this table (etc.plan.rerun.reads_digest): a job
reruns exactly when a value it reads changes, and a job that reads nothing of an edit keeps its
output. ``{student}`` and ``{ablation}`` name the run a job serves; values a rule passes on the
command line (the flow study's estimators, the seed study's seed) replace the config's.
tests/test_reads.py runs every subcommand of the smoke workflow with a config that records the
keys read (:func:`record_reads`, ``ETC_CONFIG_READS``) and fails on any key missing here.
Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

_DATA = ("dataset",)
# The teacher's and a student's training: data, augmentation, its own model and schedule, the
# loss settings (CE's class weights too); a student with TL the flow estimator its store is
# checked against (etc.plan.rerun.WHEN).
_TRAIN = (*_DATA, "augment", "losses")
# the execution options and timing of a streamed model (etc latency): never its batch, flip or fusion
_STREAM = tuple(f"infer.{k}" for k in ("channels_last", "bf16", "cudnn_benchmark", "compile", "fused_labels",
                                       "num_workers", "warmup"))

READS: dict[str, tuple[str, ...]] = {
    "make-synthetic": ("dataset.root", "dataset.synthetic"),
    # the tree's loader and folder, the splits, the neighbour offsets each labelled frame must reach
    "check-data": ("dataset.name", "dataset.root", "dataset.train_split", "dataset.val_split", "dataset.window"),
    # the store's settings (the rule passes the estimator and its checkpoint on the command line)
    "precompute-flow": (*_DATA, "flow"),
    "train-teacher": (*_TRAIN, "teacher", "train.teacher"),
    "train-student": (*_TRAIN, "flow.estimator", "students.{student}", "ablations.{ablation}", "train.student"),
    # infer.temporal_fusion > 0 estimates flow with the keyframe estimator (etc.plan.rerun.WHEN)
    "infer": (*_DATA, "infer", "keyframe.estimator", "keyframe.ckpt"),
    # `etc infer --keyframe-interval K`: the keyframe flow too
    "keyframe-infer": (*_DATA, "infer", "keyframe.estimator", "keyframe.ckpt"),
    "keyframe-score": _DATA,
    # every per-frame model and the keyframe settings, streamed in turns one frame at a time
    "latency": (*_DATA, *_STREAM, "keyframe", "students", "ablations"),
    # the measuring flow falls back to flow.estimator where the dataset has no exact flow; its
    # checkpoint (evaluate.flow_ckpt) reaches precompute-flow only, as --ckpt
    "evaluate": (*_DATA, "evaluate.vc_windows", "evaluate.num_workers", "evaluate.device", "evaluate.flow_estimator",
                 "flow.estimator"),
    # the table lists every student and ablation, with the mVC windows as columns
    "report": (*_DATA, "students", "ablations", "evaluate.vc_windows", "keyframe"),
    "demo-video": (*_DATA, "report.fps"),
    "flow-study-report": (*_DATA, "flow_study", "students", "ablations", "flow.estimator", "evaluate"),
    "seed-study-report": (*_DATA, "seed_study", "train.student.seed", "students", "ablations", "evaluate"),
    "bench": ("dataset", "teacher", "students", "train", "infer", "flow", "evaluate", "augment", "losses"),
}


def declared(command: str, **names: str) -> list[str]:
    """The dotted keys ``command`` can read, its run's names filled in (under a given config,
    some only where that config asks for them: etc.plan.rerun.declared)."""
    return [key.format(**names) for key in READS[command]]


def covers(keys: list[str], key: str) -> bool:
    """Whether a read of ``key`` falls under one of ``keys`` (the key itself or a section above it)."""
    return any(key == k or key.startswith(k + ".") for k in keys)


def value_at(config: dict, key: str):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# Recording (tests): a config whose reads are logged and appended, one JSON line per process,
# to $ETC_CONFIG_READS/reads.jsonl when the process exits.

_LOG: set[str] = set()
_RECORDING = False


class _Recorded(dict):
    """A config section that logs the dotted key of every leaf read (the key set of a section
    read by iterating it is logged as ``<section>.*``). Pickling hands on a plain dict."""

    def __init__(self, data: dict, prefix: str = ""):
        super().__init__({k: _wrap(v, f"{prefix}{k}") for k, v in data.items()})
        self._prefix = prefix

    def _log(self, key):
        if key in self and not isinstance(dict.__getitem__(self, key), _Recorded):
            _LOG.add(f"{self._prefix}{key}")

    def __getitem__(self, key):
        self._log(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._log(key)
        return super().get(key, default)

    def _log_keys(self):
        _LOG.add(f"{self._prefix}*")

    def __iter__(self):
        self._log_keys()
        return super().__iter__()

    def keys(self):
        self._log_keys()
        return super().keys()

    def items(self):
        for key in super().keys():
            self._log(key)
        self._log_keys()
        return super().items()

    def values(self):
        return [v for _, v in self.items()]

    def __deepcopy__(self, memo):
        import copy

        out = _Recorded({}, self._prefix)
        for key, value in self.items():
            dict.__setitem__(out, key, copy.deepcopy(value, memo))
        return out

    def __reduce__(self):
        return (_received, (_plain(self), self._prefix))


def _received(data: dict, prefix: str):
    """A recorded section unpickled in a spawned worker (decode or evaluation processes): it
    records there too, and the worker appends its own line, when ``ETC_CONFIG_READS`` asks;
    otherwise the plain dict."""
    folder = os.environ.get("ETC_CONFIG_READS")
    if not folder:
        return data
    _start_recording(Path(folder))
    return _Recorded(data, prefix)


def _plain(node):
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in dict.items(node)}
    return node


def plain(obj):
    """``obj`` with every recorded section a plain dict again (a no-op unless recording): what
    torch.save writes, so that a checkpoint loads with weights_only=True."""
    if not _RECORDING:
        return obj
    if isinstance(obj, dict):
        return type(obj)((k, plain(v)) for k, v in dict.items(obj)) if not isinstance(obj, _Recorded) else _plain(obj)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(plain(v) for v in obj)
    return obj


def _wrap(value, key: str):
    return _Recorded(value, f"{key}.") if isinstance(value, dict) else value


def record_reads(config: dict) -> dict:
    """``config`` itself, or, when ``ETC_CONFIG_READS`` names a folder, a recording copy."""
    folder = os.environ.get("ETC_CONFIG_READS")
    if not folder:
        return config
    _start_recording(Path(folder))
    return _Recorded(config)


_WRITTEN: set[int] = set()  # the processes that have appended their line


def _start_recording(folder: Path) -> None:
    """Log this process's reads when it ends: at interpreter exit, and at the end of a
    multiprocessing worker (which may leave without running atexit handlers)."""
    global _RECORDING
    if _RECORDING:
        return
    from multiprocessing import util

    atexit.register(_write_log, folder)
    util.Finalize(None, _write_log, args=(folder,), exitpriority=100)
    _RECORDING = True


def _write_log(folder: Path) -> None:
    if os.getpid() in _WRITTEN:
        return
    _WRITTEN.add(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"argv": sys.argv[1:], "keys": sorted(_LOG)}) + "\n"
    with open(folder / "reads.jsonl", "a") as f:  # one short append per process
        f.write(line)
