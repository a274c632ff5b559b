# etc — temporally consistent per-frame semantic video segmentation (ETC, ECCV 2020).
# A table of contents: the stages live in workflow/rules/, the logic in the `etc` package.
import sys

from snakemake.utils import min_version

min_version("9.0")


# The embedded default; a preset given with --configfile replaces it (presets are complete).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# etc's own check of the schema (the one every subcommand applies): one line naming the file,
# key, value and what is allowed, not Snakemake's print of the whole schema.
from etc.core.config import check_workflow_config

try:
    check_workflow_config(config, workflow.overwrite_configfiles or ["config.yaml"])
except Exception as exc:
    sys.exit(f"error: {exc}")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# results/config.yaml, refreshed (when it differs) before any job of a run starts: every job
# reads this run's config, and reruns by what it reads (workflow/rules/data.smk, resolve_config)
onstart:
    write_resolved(config, results("config.yaml"))


include: "workflow/rules/data.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/keyframe.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/flow_study.smk"
include: "workflow/rules/seed_study.smk"


rule all:
    default_target: True
    input:
        all_targets(),
