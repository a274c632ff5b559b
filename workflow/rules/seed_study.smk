# The seed study (`snakemake --cores all seed_study`, not in the default target): every student ×
# ablation trained again with each seed of seed_study.seeds, inferred and evaluated as in the
# default run; the table gives mean ± std over the seeds. The default run's students are its
# train.student.seed's and are reused. File names come from etc.report.seed_study.
from etc.report.seed_study import FIGURE as SEED_FIGURE
from etc.report.seed_study import run_files, study_metrics


def seeded(seed, kind, *parts):
    return results("seed_study", f"seed{seed}", kind, *parts)


SEED_WILDCARDS = dict(seed=r"\d+", student=r"[^./]+", ablation=r"[^./]+")


rule seed_study_train:
    input:
        unpack(student_inputs),
    output:
        model=seeded("{seed}", "models", "{student}", "{ablation}.pt"),
        curve=seeded("{seed}", "train", "{student}", "{ablation}.csv"),
    params:
        flags=student_flags,
        digest=digest("dataset", "augment", "students", "losses", "flow"),
        recipe=lambda wildcards: json.dumps(config["ablations"][wildcards.ablation], sort_keys=True),
        schedule=lambda wildcards: json.dumps(config["train"]["student"], sort_keys=True),
        launcher=train_launcher("student"),
    log:
        seeded("{seed}", "logs", "train_{student}_{ablation}.log"),
    benchmark:
        seeded("{seed}", "benchmarks", "train_{student}_{ablation}.tsv")
    resources:
        gpu=train_gpus("student"),
        nvidia_gpu=train_gpus("student"),
    wildcard_constraints:
        **SEED_WILDCARDS,
    shell:
        "{params.launcher} train --config {input.config:q} --run {wildcards.student}/{wildcards.ablation} "
        "--seed {wildcards.seed} --out {output.model:q} --log-csv {output.curve:q} {params.flags} > {log:q} 2>&1"


rule seed_study_infer:
    input:
        config=ancient(results("config.yaml")),
        model=seeded("{seed}", "models", "{student}", "{ablation}.pt"),
    output:
        predictions=seeded("{seed}", "predictions", "{student}", "{ablation}.h5"),
        timing=seeded("{seed}", "predictions", "{student}", "{ablation}.timing.json"),
    params:
        digest=digest("dataset", "infer"),
        split=config["dataset"]["val_split"],
    log:
        seeded("{seed}", "logs", "infer_{student}_{ablation}.log"),
    resources:
        gpu=1,
        nvidia_gpu=1,
    wildcard_constraints:
        **SEED_WILDCARDS,
    shell:
        "etc infer --config {input.config:q} --model {input.model:q} --split {params.split} "
        "--out {output.predictions:q} --timing {output.timing:q} > {log:q} 2>&1"


rule seed_study_evaluate:
    input:
        config=ancient(results("config.yaml")),
        predictions=seeded("{seed}", "predictions", "{student}", "{ablation}.h5"),
        timing=seeded("{seed}", "predictions", "{student}", "{ablation}.timing.json"),
        flow=eval_flow(),
        model=seeded("{seed}", "models", "{student}", "{ablation}.pt"),
    output:
        seeded("{seed}", "metrics", "{student}", "{ablation}.json"),
    params:
        digest=digest("evaluate"),
    log:
        seeded("{seed}", "logs", "evaluate_{student}_{ablation}.log"),
    wildcard_constraints:
        **SEED_WILDCARDS,
    shell:
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} "
        "--flow {input.flow:q} --model {input.model:q} --timing {input.timing:q} --out {output:q} > {log:q} 2>&1"


rule seed_study:
    input:
        metrics=lambda wildcards: [str(p) for p in study_metrics(config, results())],
        config=ancient(results("config.yaml")),
    output:
        table=results("seed_study", "table.csv"),
        summary=results("seed_study", "summary.csv"),
        markdown=results("seed_study", "table.md"),
        figure=results("seed_study", f"{SEED_FIGURE}.png"),
    params:
        results=results(),
        outdir=lambda wildcards, output: Path(output.table).parent,
    log:
        results("seed_study", "logs", "report.log"),
    shell:
        "etc seed-study-report --config {input.config:q} --results {params.results:q} "
        "--out-dir {params.outdir:q} > {log:q} 2>&1"
