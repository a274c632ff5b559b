# The flow study (issue 18; `snakemake --cores all flow_study`, not in the default target): the
# students of flow_study.ablations trained with every flow of flow_study.train_estimators, every
# student and the default run's baseline measured with every flow of measure_estimators. The
# default run's teacher, baseline and flow.estimator students are reused, not retrained. The
# plan and the file names come from etc.report.flow_study, which the report reads too.
from etc.report.flow_study import BASELINE, FIGURES, study_inputs


def study(*parts):
    return results("flow_study", *parts)


def study_run_files(wildcards, kind):
    """Model or predictions of (student, ablation, training flow): the default run's for
    flow.estimator, the study's own otherwise."""
    spec = from_file_tag(wildcards.estimator)
    run = f"{wildcards.student}/{wildcards.ablation}"
    if spec == training_estimator(config):
        return results(kind, f"{run}.pt" if kind == "models" else f"{run}.h5")
    return study(kind, wildcards.estimator, f"{run}.pt" if kind == "models" else f"{run}.h5")


def study_student_inputs(wildcards):
    inputs = student_inputs(wildcards)
    inputs["flow"] = flow_store("train", from_file_tag(wildcards.estimator))
    return inputs


STUDY_WILDCARDS = dict(student=r"[^./]+", ablation=r"[^./]+", estimator=r"[A-Za-z0-9_-]+(\.[0-9]+)?",
                       measure=r"[A-Za-z0-9_-]+(\.[0-9]+)?")


rule flow_study_train:
    input:
        unpack(study_student_inputs),
    output:
        model=study("models", "{estimator}", "{student}", "{ablation}.pt"),
        curve=study("train", "{estimator}", "{student}", "{ablation}.csv"),
    params:
        spec=flow_spec,
        flags=student_flags,
        digest=lambda wildcards: digest_of([config[s] for s in ("dataset", "augment", "students", "losses")]
                                           + [flow_digest(flow_spec(wildcards))]),
        recipe=lambda wildcards: json.dumps(config["ablations"][wildcards.ablation], sort_keys=True),
        schedule=lambda wildcards: json.dumps(config["train"]["student"], sort_keys=True),
        launcher=train_launcher("student"),
    log:
        study("logs", "train_{estimator}_{student}_{ablation}.log"),
    benchmark:
        study("benchmarks", "train_{estimator}_{student}_{ablation}.tsv")
    resources:
        gpu=train_gpus("student"),
        nvidia_gpu=train_gpus("student"),
    wildcard_constraints:
        **STUDY_WILDCARDS,
    shell:
        "{params.launcher} train --config {input.config:q} --run {wildcards.student}/{wildcards.ablation} "
        "--estimator {params.spec} --out {output.model:q} --log-csv {output.curve:q} {params.flags} > {log:q} 2>&1"


rule flow_study_infer:
    input:
        config=ancient(results("config.yaml")),
        model=study("models", "{estimator}", "{student}", "{ablation}.pt"),
    output:
        predictions=study("predictions", "{estimator}", "{student}", "{ablation}.h5"),
        timing=study("predictions", "{estimator}", "{student}", "{ablation}.timing.json"),
    params:
        digest=digest("dataset", "infer"),
        split=config["dataset"]["val_split"],
    log:
        study("logs", "infer_{estimator}_{student}_{ablation}.log"),
    benchmark:
        study("benchmarks", "infer_{estimator}_{student}_{ablation}.tsv")
    resources:
        gpu=1,
        nvidia_gpu=1,
    wildcard_constraints:
        **STUDY_WILDCARDS,
    shell:
        "etc infer --config {input.config:q} --model {input.model:q} --split {params.split} "
        "--out {output.predictions:q} --timing {output.timing:q} > {log:q} 2>&1"


rule flow_study_evaluate:
    """A student trained with flow {estimator}, measured with flow {measure}."""
    input:
        config=ancient(results("config.yaml")),
        predictions=lambda wildcards: study_run_files(wildcards, "predictions"),
        model=lambda wildcards: study_run_files(wildcards, "models"),
        flow=lambda wildcards: flow_store("measure", from_file_tag(wildcards.measure)),
    output:
        study("metrics", "{measure}", "{student}", "{ablation}.{estimator}.json"),
    params:
        measure=lambda wildcards: from_file_tag(wildcards.measure),
        spec=flow_spec,
        digest=digest("evaluate"),
    log:
        study("logs", "evaluate_{measure}_{student}_{ablation}.{estimator}.log"),
    benchmark:
        study("benchmarks", "evaluate_{measure}_{student}_{ablation}.{estimator}.tsv")
    wildcard_constraints:
        **STUDY_WILDCARDS,
    shell:
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} --model {input.model:q} "
        "--flow {input.flow:q} --flow-estimator {params.measure} --train-estimator {params.spec} "
        "--out {output:q} > {log:q} 2>&1"


rule flow_study_evaluate_baseline:
    """The default run's baseline, measured with flow {measure}."""
    input:
        config=ancient(results("config.yaml")),
        predictions=results("predictions", "{student}", f"{BASELINE}.h5"),
        model=results("models", "{student}", f"{BASELINE}.pt"),
        flow=lambda wildcards: flow_store("measure", from_file_tag(wildcards.measure)),
    output:
        study("metrics", "{measure}", "{student}", f"{BASELINE}.json"),
    params:
        measure=lambda wildcards: from_file_tag(wildcards.measure),
        digest=digest("evaluate"),
    log:
        study("logs", "evaluate_{measure}_{student}_baseline.log"),
    benchmark:
        study("benchmarks", "evaluate_{measure}_{student}_baseline.tsv")
    wildcard_constraints:
        **STUDY_WILDCARDS,
    shell:
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} --model {input.model:q} "
        "--flow {input.flow:q} --flow-estimator {params.measure} --out {output:q} > {log:q} 2>&1"


def flow_study_inputs(wildcards):
    files = study_inputs(config, study("metrics"), results("flow"))  # checks the plan first
    return {"metrics": [str(p) for p in files["metrics"]], "quality": [str(p) for p in files["quality"]]}


rule flow_study:
    input:
        unpack(flow_study_inputs),
        config=ancient(results("config.yaml")),
    output:
        table=study("table.csv"),
        markdown=study("table.md"),
        summary=study("summary.json"),
        figures=[study(f"{name}.png") for name in FIGURES],
    params:
        metrics=study("metrics"),
        flows=results("flow"),
        outdir=lambda wildcards, output: Path(output.table).parent,
    log:
        study("logs", "report.log"),
    shell:
        "etc flow-study-report --config {input.config:q} --metrics-dir {params.metrics:q} "
        "--flow-dir {params.flows:q} --out-dir {params.outdir:q} > {log:q} 2>&1"
