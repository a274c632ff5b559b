# The seed study (`snakemake --cores all seed_study`, not in the default target): every student ×
# ablation trained again with each seed of seed_study.seeds, inferred and evaluated as in the
# default run; the table gives mean ± std over the seeds. The default run's students are its
# train.student.seed's and are reused. File names come from etc.plan.


# The default run's rules with the seed's paths: the same commands by construction (the seed
# reaches `etc train` through student_flags).
use rule train_student as seed_study_train with:
    output:
        model=seeded("{seed}", "models", "{student}", "{ablation}.pt"),
        curve=seeded("{seed}", "train", "{student}", "{ablation}.csv"),
    log:
        seeded("{seed}", "logs", "train_{student}_{ablation}.log"),
    benchmark:
        seeded("{seed}", "benchmarks", "train_{student}_{ablation}.tsv")
    wildcard_constraints:
        seed=r"\d+",
        student=r"[^./]+",
        ablation=r"[^./]+",


use rule infer as seed_study_infer with:
    input:
        config=ancient(results("config.yaml")),
        model=seeded("{seed}", "models", "{model}.pt"),
    output:
        predictions=seeded("{seed}", "predictions", "{model}.h5"),
        timing=seeded("{seed}", "predictions", "{model}.timing.json"),
    log:
        seeded("{seed}", "logs", "infer", "{model}.log"),
    benchmark:
        seeded("{seed}", "benchmarks", "infer", "{model}.tsv")
    wildcard_constraints:
        seed=r"\d+",
        model=r"[^/]+/[^/]+",


use rule evaluate as seed_study_evaluate with:
    input:
        config=ancient(results("config.yaml")),
        predictions=seeded("{seed}", "predictions", "{model}.h5"),
        timing=seeded("{seed}", "predictions", "{model}.timing.json"),
        flow=eval_flow(),
        model=seeded("{seed}", "models", "{model}.pt"),
    output:
        seeded("{seed}", "metrics", "{model}.json"),
    log:
        seeded("{seed}", "logs", "evaluate", "{model}.log"),
    benchmark:
        seeded("{seed}", "benchmarks", "evaluate", "{model}.tsv")
    wildcard_constraints:
        seed=r"\d+",
        model=r"[^/]+/[^/]+",


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
        digest=reads("seed-study-report"),
        results=lambda wildcards, input: Path(input.config).parent,
        outdir=lambda wildcards, output: Path(output.table).parent,
    log:
        results("seed_study", "logs", "report.log"),
    threads: res.threads(config, "report")
    resources:
        mem_mb=res.report_mem_mb(config),
    shell:
        "etc seed-study-report --config {input.config:q} --results {params.results:q} "
        "--out-dir {params.outdir:q} > {log:q} 2>&1"
