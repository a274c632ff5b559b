"""What `snakemake -n` would run for each of several configs, in one process (the Snakemake API):
one Snakemake start-up for many dry runs (tests/test_rerun_keys.py).

Usage: python tests/rerun_plans.py SNAKEFILE WORKDIR < [[name, configfile], ...] (JSON); prints
one JSON line per config: every job of its DAG of `all` (rule, outputs, whether it runs and why).
The rerun triggers are Snakemake's defaults, as the README's `snakemake --cores all` uses them.
"""

import json
import sys
from pathlib import Path

OTHER = ("forced", "noio", "nooutput", "_incomplete_output", "_updated_input", "input_changed", "code_changed",
         "software_stack_changed", "pipe", "service")


def plan(snakefile: Path, workdir: Path, configfile: Path) -> list[dict]:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, ResourceSettings

    with SnakemakeApi() as api:
        api_wf = api.workflow(resource_settings=ResourceSettings(cores=2), snakefile=snakefile, workdir=workdir,
                              config_settings=ConfigSettings(configfiles=[configfile]))
        api_wf.dag(DAGSettings(targets={"all"}))
        workflow = api_wf._workflow  # what `snakemake -n` builds before it lists the jobs
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        dag = workflow.dag
        jobs = []
        for job in dag.jobs:
            reason = dag.reason(job)
            jobs.append({
                "rule": job.rule.name,
                "output": sorted(map(str, job.output)),
                "needrun": dag.needrun(job),
                "params": bool(reason.params_changed),
                "missing": bool(reason.missing_output),
                "input_from_runs": sorted(map(str, reason.updated_input_run or ())),
                # any other trigger: forced, incomplete, newer input, input set, code, software
                "other": [name.strip("_") for name in OTHER if getattr(reason, name)],
                "reason": str(reason) if dag.needrun(job) else "",
            })
        return jobs


if __name__ == "__main__":
    snakefile, workdir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    for name, configfile in json.load(sys.stdin):
        try:
            print(json.dumps({"name": name, "jobs": plan(snakefile, workdir, Path(configfile).resolve())}), flush=True)
        except (Exception, SystemExit) as exc:  # noqa: BLE001  (one bad config must not hide the others)
            print(json.dumps({"name": name, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
