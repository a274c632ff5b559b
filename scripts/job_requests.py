"""What each rule's jobs ask a cluster node for, with the DAG built as an executor plugin builds it
(Snakemake's API without --cores, so nothing lowers a rule's threads), written into
docs/scheduler.md between its job-requests markers; tests/test_docs.py renders it again and fails
when the page is stale.

    PYTHONPATH=. python scripts/job_requests.py     # rewrite the table in docs/scheduler.md
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "scheduler.md"
PRESET = "workflow/configs/cityscapes.yaml"
START, END = "<!-- job-requests:start -->", "<!-- job-requests:end -->"


def remote_jobs(configfile: str) -> list[tuple[str, int, dict]]:
    """(rule, threads, resources) of every job of ``configfile``'s whole DAG."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        DeploymentSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
        WorkflowSettings,
    )

    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=None, nodes=50),
                          config_settings=ConfigSettings(configfiles=[REPO / configfile]),
                          storage_settings=StorageSettings(), workflow_settings=WorkflowSettings(),
                          deployment_settings=DeploymentSettings(), snakefile=REPO / "Snakefile",
                          workdir=REPO)
        workflow = wf.dag(DAGSettings()).workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True,
                              nolock=True)
        workflow._build_dag()
        local = set(workflow._localrules)
        return [(job.rule.name, job.threads,
                 {**dict(job.resources.items()), "local": job.rule.name in local or job.rule.norun})
                for job in workflow._dag.jobs]


def render(configfile: str = PRESET) -> str:
    """The Markdown table: one row per rule, its jobs' count and what each asks for."""
    rows: dict[str, list] = {}
    for rule, threads, res in remote_jobs(configfile):
        if rule == "all":
            continue
        row = rows.setdefault(rule, [0, threads, set(), res.get("gpu") or 0, res.get("timing") or 0, res["local"]])
        row[0] += 1
        row[2].add(res.get("mem_mb"))  # a rule's jobs may ask for different memory (train_student: per ablation)
    lines = [f"Every job of `{configfile}` as `snakemake --profile profiles/slurm` submits it "
             f"(`PYTHONPATH=. python scripts/job_requests.py` writes this table):", "",
             "| rule | jobs | threads (`--cpus-per-task`) | mem_mb (`--mem`) | GPUs | timing | where |",
             "|---|---|---|---|---|---|---|"]
    for rule, (n, threads, mems, gpu, timing, local) in sorted(rows.items()):
        mem = f"{min(mems)}–{max(mems)}" if len(mems) > 1 else f"{next(iter(mems))}"
        lines.append(f"| `{rule}` | {n} | {threads} | {mem} | {gpu} | {timing or '–'} | "
                     f"{'the submitting host' if local else 'a node'} |")
    return "\n".join(lines) + "\n"


def page(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest or END not in rest:
        raise SystemExit(f"{PAGE}: the markers {START} … {END} are missing")
    return f"{head}{START}\n{table}{END}{tail}"


if __name__ == "__main__":
    from etc.core.io import write_text

    write_text(PAGE, page(PAGE.read_text(encoding="utf-8"), render()))
    print(f"wrote {PAGE}")
