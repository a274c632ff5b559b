"""What a subcommand reads of the config (etc.core.reads) and what its jobs ask for (etc.plan.resources):
the recorder logs exactly the leaves read, a digest moves exactly with the values declared, and
the estimates grow with what they are estimated from. The workflow-level checks (every
subcommand of the smoke run, single-key edits) are in tests/test_workflow.py."""

import json
import pickle
import subprocess
import sys

import pytest

from etc.core.config import load_config
from etc.core.reads import READS, covers, declared
from etc.plan.rerun import reads_digest


def test_the_recorder_logs_the_leaves_read_and_saves_plain_dicts(tmp_path):
    script = """
import copy, json, pickle, sys
sys.argv = ["demo", "--x"]
from etc.core.reads import plain, record_reads
cfg = record_reads({"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2], "f": {"g": 3}, "h": {"i": 4}})
cfg["a"]["b"]; cfg.get("e"); json.dumps(cfg["f"]); list(cfg["h"])
assert pickle.loads(pickle.dumps(cfg)) == plain(cfg) and type(plain({"k": cfg["a"]})["k"]) is dict
copy.deepcopy(cfg["a"])["c"]["d"]
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"ETC_CONFIG_READS": str(tmp_path), "PATH": "", **_pythonpath()})
    assert res.returncode == 0, res.stderr
    line = json.loads((tmp_path / "reads.jsonl").read_text())
    assert line["argv"] == ["--x"]
    assert line["keys"] == ["a.*", "a.b", "a.c.*", "a.c.d", "e", "f.*", "f.g", "h.*"]  # never "a.c" or "h.i"


def _pythonpath():
    import os

    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")}


def test_a_digest_moves_exactly_with_the_values_declared():
    cfg = load_config(None, {})
    base = {c: reads_digest(cfg, c, student="student", ablation="tl") for c in READS}
    edits = {"losses.ce_weights": [1.0] * 19, "report.fps": 7, "infer.batch_size": 3, "ablations.tl.tl": 2.0,
             "ablations.pi.pi": 2.0, "flow_study.ablations": ["tl"], "resources.threads.train": 4}
    for key, value in edits.items():
        parent, leaf = key.rsplit(".", 1)
        edited = load_config(None, {})
        node = edited
        for part in parent.split("."):
            node = node[part]
        node[leaf] = value
        moved = {c for c in READS if reads_digest(edited, c, student="student", ablation="tl") != base[c]}
        assert moved == {c for c in READS if covers(declared(c, student="student", ablation="tl"), key)}, key
    assert reads_digest(cfg, "train-teacher") != reads_digest(load_config(None, {"losses": {"ce_weights": [1.0] * 19}}),
                                                             "train-teacher")  # CE's weights train the teacher too
    # a value the rule passes on the command line replaces the config's: the study's seed, not train.student.seed
    seeded = reads_digest(cfg, "train-student", {"train.student.seed": 4}, student="student", ablation="tl")
    assert seeded == reads_digest(load_config(None, {"train": {"student": {"seed": 4}}}), "train-student",
                                  student="student", ablation="tl")
    with pytest.raises(KeyError, match="report.fps"):
        reads_digest(cfg, "infer", {"report.fps": 3})


def test_resources_follow_the_config():
    from etc.plan import resources as res

    cfg = load_config(None, {})
    assert res.threads(cfg, "train") == 1 and res.infer_gpus(cfg) == 0 and res.train_gpus(cfg, "teacher") == 0
    bigger = load_config(None, {"train": {"student": {"batch_size": 32}}, "infer": {"batch_size": 32}})
    assert res.train_mem_mb(bigger, "student") > res.train_mem_mb(cfg, "student")
    assert res.infer_mem_mb(bigger) > res.infer_mem_mb(cfg)
    cs = load_config(None, {"dataset": {"name": "cityscapes"}, "augment": {"crop": [769, 769]}})
    assert res.frame_size(cs) == (1024, 2048) and res.training_pixels(cs) == 769 * 769
    assert res.evaluate_mem_mb(cs) > res.evaluate_mem_mb(cfg)
    gpu = load_config(None, {"resources": {"device": "cuda", "threads": {"train": 8}},
                             "train": {"teacher": {"gpus": 2}}})
    assert res.train_gpus(gpu, "teacher") == 2 and res.infer_gpus(gpu) == 1
    assert res.workers("auto", gpu, "train", "train") == 7  # as etc.core.execution resolves it with 8 threads
    assert res.flow_gpus(gpu, "ptlflow:raft") == 1 and res.flow_gpus(gpu, "dis") == 0
    assert res.train_mem_mb(load_config(None, {"resources": {"mem_scale": 2.0}}), "teacher") >= 2 * res.train_mem_mb(
        cfg, "teacher") - 1
    # a student's job asks for the frames and the teacher its ablation runs; a ResNet-101 step for more
    from pathlib import Path

    cpu = load_config(Path(__file__).resolve().parents[1] / "workflow/configs/cityscapes.yaml", {"resources": {"device": "cpu"}})
    student = [res.train_mem_mb(cpu, "student", a, "pspnet18") for a in ("baseline", "tl", "tl_kd")]
    assert student[0] < student[1] < student[2] == res.train_mem_mb(cpu, "student")
    assert res.train_mem_mb(cpu, "teacher") > student[0]
    assert res.data_mem_mb(cpu) < 1000 < res.infer_mem_mb(cpu)  # check-data imports no torch


def test_recorded_sections_pickle_for_spawned_workers():
    from etc.core.reads import _Recorded

    rec = _Recorded({"a": {"b": 1}})
    assert pickle.loads(pickle.dumps(rec)) == {"a": {"b": 1}}


def test_a_spawned_worker_records_what_it_reads(tmp_path):
    """Reads in worker processes (etc evaluate's, the training loader's: spawned) count too."""
    script = """
import sys
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from etc.core.reads import record_reads


def read(section):
    return section["deep"]["x"]


if __name__ == "__main__":
    sys.argv = ["evaluate", "--y"]
    cfg = record_reads({"top": {"deep": {"x": 1, "unread": 2}}, "other": 3})
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(read, cfg["top"]).result() == 1
"""
    (tmp_path / "worker.py").write_text(script)
    res = subprocess.run([sys.executable, str(tmp_path / "worker.py")], capture_output=True, text=True,
                         cwd=tmp_path, env={"ETC_CONFIG_READS": str(tmp_path / "reads"), "PATH": "",
                                            **_pythonpath()})
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in (tmp_path / "reads" / "reads.jsonl").read_text().splitlines()]
    assert len(lines) == 2, lines  # the parent's and the worker's
    assert {k for line in lines for k in line["keys"]} == {"top.deep.x"}  # read in the worker only
    assert all(line["argv"] == ["--y"] for line in lines)


def test_training_jobs_start_longest_first():
    """The teacher before every student, then the students by the loss terms their steps run, so
    that the slowest job after the teacher (the critical path of the default run) starts first;
    a zero weight switches a term off and lowers the job's place."""
    from etc.plan import resources as res

    cfg = load_config(None, {})
    order = {a: res.train_priority(cfg, "student", a) for a in cfg["ablations"]}
    assert res.train_priority(cfg, "teacher") > max(order.values())
    assert order["tl_kd"] > max(v for a, v in order.items() if a != "tl_kd")
    assert order["baseline"] < min(v for a, v in order.items() if a != "baseline")
    off = load_config(None, {"ablations": {"tl_kd": {"ce": 1.0, "tl": 1.0, "pi": 1.0, "pf": 0.0, "mf": 0.0}}})
    assert res.train_priority(off, "student", "tl_kd") == order["tl_kd"] - 2
