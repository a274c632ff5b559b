"""The smoke preset runs the whole Snakemake chain in a temporary folder — from a path with a
space, and again after a hard kill mid-run, with the same numbers."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import RESULTS, _copy_of, _snakemake, _spaced_smoke

from etc.plan.keyframe_rows import PROPAGATION_NAMES

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ["miou", "tc", "tc_occ", "params_m", "gflops"]


@pytest.mark.slow
@pytest.mark.workflow
def test_smoke_workflow_end_to_end_survives_a_hard_kill(smoke_run, tmp_path):
    spaced, _ = smoke_run
    table = pd.read_csv(spaced / RESULTS / "table.csv")
    expected = {("teacher", "-")} | {("student", a) for a in ("baseline", "tl", "tl_kd")}
    expected |= {("teacher", f"keyframe 3 · {PROPAGATION_NAMES[p]} · dis") for p in ("scores", "features")}  # smoke's keyframe section
    expected |= {("student", "baseline · temporal fusion 0.5 · dis")}  # and its fused row
    assert set(zip(table["model"], table["ablation"], strict=True)) == expected
    assert table["ms_per_frame_p99"].notna().all() and table["miou_protocol"].notna().all()
    assert "fps" not in table  # the streamed latency is the table's one per-frame speed
    for col in (*QUALITY, "ms_per_frame_mean", "ms_per_frame_p50", "ms_per_frame_p95"):
        assert all(math.isfinite(v) for v in table[col]), col
    assert all(v.startswith("nhwc fp32 fused-labels ") for v in table["inference"])  # CPU's auto options
    assert (spaced / RESULTS / "demo/clip0.mp4").stat().st_size > 0
    assert sorted(p.name for p in spaced.iterdir()) == [".snakemake", "data dir", "results dir"]  # no stray files
    again = subprocess.run(_snakemake(spaced, "-n", "all"), capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # kill -9 the whole process group while students train, then the documented recovery
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_snakemake(killed, "all"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while not list((killed / "results dir/smoke/models").glob("student/*")) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results dir/smoke/table.csv").exists()
    unlock = subprocess.run(_snakemake(killed, "--unlock"), capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = subprocess.run(_snakemake(killed, "all"), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (killed / "results dir/smoke/table.csv").exists(), rerun.stdout[-3000:] + rerun.stderr[-3000:]
    resumed = pd.read_csv(killed / "results dir/smoke/table.csv")
    pd.testing.assert_frame_equal(resumed[["model", "ablation", *QUALITY]], table[["model", "ablation", *QUALITY]])


def _dry_run(tmp_path, target: str, **overrides) -> str:
    """`snakemake -n TARGET` on the smoke preset (with ``overrides`` merged in): its plan."""
    import yaml

    from etc.core.config import deep_merge

    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(deep_merge(yaml.safe_load((ROOT / "workflow/configs/smoke.yaml").read_text()), overrides)))
    res = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(config), "--cores", "2", "-n", target],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def _job_counts(plan: str) -> dict[str, int]:
    import re

    stats = plan.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_flow_study_dag_on_the_smoke_preset(tmp_path):
    """Every student of the study trained once per training flow (flow.estimator's are the
    default run's), every model measured with every measuring flow, every store judged
    against the exact flow; nothing of it in the default target."""
    from etc.core.config import load_config
    from etc.plan.layout import study_plan

    plan = study_plan(load_config(ROOT / "workflow/configs/smoke.yaml"))
    n_train, n_measure, n_abl = len(plan.train), len(plan.measure), len(plan.ablations)
    jobs = _job_counts(_dry_run(tmp_path, "flow_study"))
    assert jobs["flow_study_train"] == jobs["flow_study_infer"] == (n_train - 1) * n_abl  # dis: the default run's
    assert jobs["train_student"] == 1 + n_abl and jobs["train_teacher"] == 1  # reused, not retrained
    assert jobs["flow_study_evaluate"] == n_measure * n_train * n_abl
    assert jobs["flow_study_evaluate_baseline"] == n_measure
    assert jobs["precompute_flow"] == jobs["flow_quality"] == n_train + n_measure
    assert jobs["flow_study"] == 1 and "evaluate" not in jobs and "report" not in jobs
    default = _job_counts(_dry_run(tmp_path / "default", "all"))
    assert not any(j.startswith("flow_") for j in default)


def test_seed_study_dag_on_the_smoke_preset(tmp_path):
    """Every student × ablation trained again for each seed but the default run's, with that
    seed on the command line; the default run's students reused; nothing in the default target."""
    from etc.core.config import load_config

    cfg = load_config(ROOT / "workflow/configs/smoke.yaml")
    runs = len(cfg["students"]) * len(cfg["ablations"])
    plan = _dry_run(tmp_path, "seed_study", seed_study={"seeds": [0, 4, 7]})
    jobs = _job_counts(plan)
    assert jobs["seed_study_train"] == jobs["seed_study_infer"] == jobs["seed_study_evaluate"] == 2 * runs
    assert jobs["train_student"] == jobs["evaluate"] == runs and jobs["train_teacher"] == 1
    assert "seed_study/seed4/models/" in plan and "seed_study/seed7/models/" in plan and "seed0" not in plan
    assert jobs["seed_study"] == 1 and "report" not in jobs


def test_training_and_evaluation_stores_are_separate_files(tmp_path):
    """The val store is computed with the evaluation estimator (the exact flow on the synthetic
    set by default), the train store with flow.estimator; on one split with one estimator they
    are still two files (training pairs, consecutive pairs)."""
    import re

    plan = _dry_run(tmp_path, "all")
    stores = sorted(set(re.findall(r"output: (\S+/flow/\S+\.h5)", plan)))
    assert stores == ["results/smoke/flow/consecutive/val.gt.h5", "results/smoke/flow/training/train.dis.h5"]
    same = _dry_run(tmp_path / "same", "all", dataset={"val_split": "train"}, evaluate={"flow_estimator": "dis"})
    assert {"results/smoke/flow/consecutive/train.dis.h5", "results/smoke/flow/training/train.dis.h5"} <= set(
        re.findall(r"output: (\S+/flow/\S+\.h5)", same))


def _smoke_at(workdir: Path, config: dict, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`snakemake EXTRA` on ``config`` (the smoke preset, edited) in ``workdir``; the config
    file beside it (``<workdir>.yaml``)."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir.parent / f"{workdir.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(path), "--cores", "2", *extra],
                          capture_output=True, text=True, env=env)


def _command_of(argv: list[str]) -> tuple[str, dict]:
    """The etc.core.reads entry of a recorded command line, and the run names it fills in."""
    if argv[0] == "infer" and ("--keyframe-interval" in argv or "--temporal-fusion" in argv):
        return "keyframe-infer", {}
    if argv[0] != "train":
        return argv[0], {}
    run = argv[argv.index("--run") + 1]
    if run == "teacher":
        return "train-teacher", {}
    student, ablation = run.split("/")
    return "train-student", {"student": student, "ablation": ablation}


# single-key edits of the smoke preset → the jobs that must rerun, exactly
# (the smoke preset's keyframe rows: every model timed in one latency job, the teacher at K = 3 ×
# two propagations, the baseline fused at one strength; a row's score reads its own predictions
# only, the report joins the latency record, so a retrained model rescores its own row alone)
KEYFRAME_ALL = {"keyframe_latency": 1, "keyframe_infer": 2, "fusion_infer": 1, "keyframe_evaluate": 3,
                "keyframe_score": 7}
EDITS = {
    "losses.ce_weights": ({"losses": {"ce_weights": [2.0] + [1.0] * 18}},
                          {"train_teacher": 1, "train_student": 3, "infer": 4, "evaluate": 4, "report": 1, "demo_video": 1,
                           **KEYFRAME_ALL}),
    "report.fps": ({"report": {"fps": 4}}, {"demo_video": 1}),
    # etc latency streams one frame at a time: the batch size is not its to read
    "infer.batch_size": ({"infer": {"batch_size": 3}}, {"infer": 4, "evaluate": 4, "report": 1, "demo_video": 1,
                                                        **KEYFRAME_ALL, "keyframe_latency": 0}),
    "ablations.tl.tl": ({"ablations": {"tl": {"tl": 2.0}}}, {"train_student": 1, "infer": 1, "evaluate": 1, "report": 1,
                                                             "keyframe_latency": 1, "keyframe_score": 1}),
}


@pytest.mark.slow
@pytest.mark.workflow
def test_one_run_after_a_config_edit_brings_every_result_up_to_date(smoke_run, tmp_path):
    """(a) Every subcommand of the smoke run reads only config keys etc.core.reads declares for it,
    and peaks below the memory its rule asks for; (b) a single-key edit schedules exactly the
    jobs that read it (or read their outputs) — the first run after an edit used to run only
    resolve_config, and the teacher missed CE's class weights — and one run leaves nothing to do."""
    import json

    import yaml

    from etc.core.config import deep_merge, load_config
    from etc.core.reads import covers, declared
    from etc.plan import resources

    base = _spaced_smoke()
    work = _copy_of(smoke_run[0], tmp_path / "w")
    fresh = _smoke_at(work, base, "-n", "all")
    assert "Nothing to be done" in fresh.stdout + fresh.stderr, fresh.stdout[-3000:]  # the copy is up to date

    seen = set()
    for line in (smoke_run[1] / "reads.jsonl").read_text().splitlines():
        record = json.loads(line)
        command, names = _command_of(record["argv"])
        seen.add(command)
        keys = declared(command, **names)
        assert not [k for k in record["keys"] if not covers(keys, k)], (command, names, keys)
    assert seen == {"make-synthetic", "check-data", "precompute-flow", "train-teacher", "train-student", "infer",
                    "keyframe-infer", "keyframe-score", "latency", "evaluate", "report", "demo-video"}

    cfg = load_config(tmp_path / "w.yaml")
    budget = {"train_teacher": resources.train_mem_mb(cfg, "teacher"), "train_student": resources.train_mem_mb(cfg, "student"),
              "infer": resources.infer_mem_mb(cfg), "evaluate": resources.evaluate_mem_mb(cfg),
              "precompute_flow": resources.flow_mem_mb(cfg), "report": resources.report_mem_mb(cfg),
              "demo_video": resources.demo_mem_mb(cfg)}
    for tsv in (work / RESULTS / "benchmarks").rglob("*.tsv"):
        rule = next((r for r in budget if str(tsv.relative_to(work / RESULTS / "benchmarks")).startswith(r)), None)
        if rule:
            header, values = tsv.read_text().splitlines()[:2]
            peak = float(dict(zip(header.split("\t"), values.split("\t"), strict=True))["max_rss"])
            assert peak < budget[rule], (tsv.name, peak, budget[rule])

    report = _smoke_at(work, base, "--report", str(work / "report.html"))  # as documented: no --cores needed
    assert report.returncode == 0 and (work / "report.html").stat().st_size > 0, report.stderr[-3000:]

    for key, (edit, expected) in EDITS.items():
        plan = _smoke_at(work, deep_merge(base, edit), "-n", "all")
        assert plan.returncode == 0, plan.stderr[-3000:]
        assert _job_counts(plan.stdout + plan.stderr) == {**{r: n for r, n in expected.items() if n}, "all": 1}, key
    edited = base
    for edit, _ in EDITS.values():
        edited = deep_merge(edited, edit)
    res = _smoke_at(work, edited, "--quiet", "all")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert yaml.safe_load((work / RESULTS / "config.yaml").read_text())["report"]["fps"] == 4
    again = _smoke_at(work, edited, "-n", "all")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


def test_every_training_inference_and_evaluation_job_declares_threads_and_memory(tmp_path):
    """`snakemake -n -p` shows each job's threads (Snakemake prints them above one) and mem_mb;
    no GPU is asked for on a CPU config, and a GPU node's resources ask for them."""
    import re

    plan = _dry_run(tmp_path, "all", resources={"threads": {"train": 2, "infer": 2, "evaluate": 2}})
    jobs = re.split(r"\n(?=rule \w+:)", plan)
    heavy = [j for j in jobs if re.match(r"rule (train_teacher|train_student|infer|evaluate):", j)]
    assert len(heavy) == 1 + 3 + 4 + 4
    for job in heavy:
        assert "threads: 2" in job and re.search(r"mem_mb=\d+", job), job
        assert "gpu=0" in job or job.startswith("rule evaluate"), job
    gpu = _dry_run(tmp_path / "gpu", "all", resources={"device": "cuda"})
    assert len(re.findall(r"rule infer:[^\n]*\n(?:(?!rule )[^\n]*\n)*?\s+resources:[^\n]*\bgpu=1", gpu)) == 4
