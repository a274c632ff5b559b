# The flow study (`snakemake --cores all flow_study`, not in the default target): the
# students of flow_study.ablations trained with every flow of flow_study.train_estimators, every
# student and the default run's baseline measured with every flow of measure_estimators. The
# default run's teacher, baseline and flow.estimator students are reused, not retrained. The
# plan and the file names come from etc.plan.layout, which the report reads too.


# The default run's rules on the study's paths (the estimator reaches `etc train` through
# student_flags, and the rerun parameter through the path: common.smk, reads).
use rule train_student as flow_study_train with:
    input:
        unpack(study_student_inputs),
    output:
        model=run_file("models", "{estimator}/{student}/{ablation}", root=study()),
        curve=run_file("train", "{estimator}/{student}/{ablation}", root=study()),
    log:
        study("logs", "train_{estimator}_{student}_{ablation}.log"),
    benchmark:
        study("benchmarks", "train_{estimator}_{student}_{ablation}.tsv")
    wildcard_constraints:
        **STUDY_WILDCARDS,


use rule infer as flow_study_infer with:
    input:
        config=ancient(results("config.yaml")),
        model=run_file("models", "{estimator}/{model}", root=study()),
    output:
        predictions=run_file("predictions", "{estimator}/{model}", root=study()),
        timing=run_file("timing", "{estimator}/{model}", root=study()),
    log:
        study("logs", "infer_{estimator}", "{model}.log"),
    benchmark:
        study("benchmarks", "infer_{estimator}", "{model}.tsv")
    wildcard_constraints:
        estimator=STUDY_WILDCARDS["estimator"],
        model=r"[^./]+/[^./]+",


rule flow_study_evaluate:
    """A student trained with flow {estimator}, measured with flow {measure}."""
    input:
        config=ancient(results("config.yaml")),
        predictions=lambda wildcards: study_run_files(wildcards, "predictions"),
        model=lambda wildcards: study_run_files(wildcards, "models"),
        flow=lambda wildcards: flow_store("measure", from_file_tag(wildcards.measure)),
    output:
        run_file("metrics", "{measure}/{student}/{ablation}.{estimator}", root=study()),
    log:
        study("logs", "evaluate_{measure}_{student}_{ablation}.{estimator}.log"),
    benchmark:
        study("benchmarks", "evaluate_{measure}_{student}_{ablation}.{estimator}.tsv")
    wildcard_constraints:
        **STUDY_WILDCARDS,
    conda:
        ETC_ENV
    threads: res.threads(config, "evaluate")
    resources:
        mem_mb=res.evaluate_mem_mb(config),
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    params:
        measure=lambda wildcards: from_file_tag(wildcards.measure),
        spec=flow_spec,
        digest=reads("evaluate"),
    shell:
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} --model {input.model:q} "
        "--flow {input.flow:q} --flow-estimator {params.measure} --train-estimator {params.spec} "
        "--out {output:q} > {log:q} 2>&1"


rule flow_study_evaluate_baseline:
    """The default run's baseline, measured with flow {measure}."""
    input:
        config=ancient(results("config.yaml")),
        predictions=run_file("predictions", f"{{student}}/{BASELINE}"),
        model=run_file("models", f"{{student}}/{BASELINE}"),
        flow=lambda wildcards: flow_store("measure", from_file_tag(wildcards.measure)),
    output:
        run_file("metrics", f"{{measure}}/{{student}}/{BASELINE}", root=study()),
    log:
        study("logs", "evaluate_{measure}_{student}_baseline.log"),
    benchmark:
        study("benchmarks", "evaluate_{measure}_{student}_baseline.tsv")
    wildcard_constraints:
        **STUDY_WILDCARDS,
    conda:
        ETC_ENV
    threads: res.threads(config, "evaluate")
    resources:
        mem_mb=res.evaluate_mem_mb(config),
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    params:
        measure=lambda wildcards: from_file_tag(wildcards.measure),
        digest=reads("evaluate"),
    shell:
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} --model {input.model:q} "
        "--flow {input.flow:q} --flow-estimator {params.measure} --out {output:q} > {log:q} 2>&1"


rule flow_study:
    input:
        unpack(flow_study_inputs),
        config=ancient(results("config.yaml")),
    output:
        table=study("table.csv"),
        markdown=study("table.md"),
        summary=study("summary.json"),
        figures=[study(f"{name}.png") for name in FLOW_STUDY_FIGURES],
    log:
        study("logs", "report.log"),
    conda:
        ETC_ENV
    threads: res.threads(config, "report")
    resources:
        mem_mb=res.report_mem_mb(config),
    params:
        digest=reads("flow-study-report"),
        # <metrics>/<measure>/<student>/<run>.json and <flow>/<pairs>/<split>.<estimator>.quality.json
        metrics=lambda wildcards, input: Path(input.metrics[0]).parents[2],
        flows=lambda wildcards, input: Path(input.quality[0]).parents[1],
        outdir=lambda wildcards, output: Path(output.table).parent,
    shell:
        "etc flow-study-report --config {input.config:q} --metrics-dir {params.metrics:q} "
        "--flow-dir {params.flows:q} --out-dir {params.outdir:q} > {log:q} 2>&1"
