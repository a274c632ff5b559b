"""What each job asks a cluster for, with the DAG built as a remote executor builds it
(Snakemake's API without --cores, so nothing lowers a rule's threads): every job of every
preset asks for at most its stage's resources.threads and declares its memory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from etc.core.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ["config.yaml", *sorted(str(p.relative_to(REPO)) for p in (REPO / "workflow/configs").glob("*.yaml"))]
TIMED = {"keyframe_latency", "bench"}  # every row's ms per frame is the latency stream's
TORCH_FREE = {"resolve_config", "make_synthetic", "check_data"}  # etc/plan/resources.py's data_mem_mb
NO_NETWORK = {"keyframe_score"}  # torch imported, no network built: 585 MB at 128×256 (benchmarks/peak_rss.py)


def remote_jobs(configfile: str) -> list:
    """scripts/job_requests.py's DAG, the one docs/scheduler.md's table is drawn from."""
    spec = importlib.util.spec_from_file_location("job_requests", REPO / "scripts" / "job_requests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.remote_jobs(configfile)


@pytest.mark.parametrize("configfile", CONFIGS)
def test_every_job_asks_for_its_stages_threads_and_declares_memory(configfile, monkeypatch):
    monkeypatch.chdir(REPO)
    stage_threads = load_config(REPO / configfile)["resources"]["threads"]
    jobs = remote_jobs(configfile)
    assert jobs, configfile
    for rule, threads, resources in jobs:
        if rule == "all":
            continue
        allowed = stage_threads["timed"] if rule in TIMED else max(stage_threads.values())
        assert 1 <= threads <= allowed, f"{configfile}: {rule} asks for {threads} threads"
        # a process with a network built holds nearly 1 GB
        floor = 100 if rule in TORCH_FREE else 600 if rule in NO_NETWORK else 1000
        assert isinstance(resources.get("mem_mb"), int) and resources["mem_mb"] >= floor, \
            f"{configfile}: {rule} declares no memory ({resources.get('mem_mb')})"
        if rule in TIMED:
            assert resources.get("timing") == 1, f"{configfile}: timed rule {rule} holds no timing unit"
