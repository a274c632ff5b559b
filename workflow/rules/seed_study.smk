# The seed study (`snakemake --cores all seed_study`, not in the default target): every student ×
# ablation trained again with each seed of seed_study.seeds, inferred and evaluated as in the
# default run; the table gives mean ± std over the seeds. The default run's students are its
# train.student.seed's and are reused. File names come from etc.plan.layout.


# The default run's rules with the seed's paths: the same commands by construction (the seed
# reaches `etc train` through student_flags).
use rule train_student as seed_study_train with:
    output:
        model=run_file("models", "{student}/{ablation}", root=seed_root()),
        curve=run_file("train", "{student}/{ablation}", root=seed_root()),
    log:
        str(Path(seed_root(), "logs", "train_{student}_{ablation}.log")),
    benchmark:
        str(Path(seed_root(), "benchmarks", "train_{student}_{ablation}.tsv"))
    wildcard_constraints:
        seed=r"\d+",
        student=r"[^./]+",
        ablation=r"[^./]+",


use rule infer as seed_study_infer with:
    input:
        config=ancient(results("config.yaml")),
        model=run_file("models", "{model}", root=seed_root()),
    output:
        predictions=run_file("predictions", "{model}", root=seed_root()),
        timing=run_file("timing", "{model}", root=seed_root()),
    log:
        str(Path(seed_root(), "logs", "infer", "{model}.log")),
    benchmark:
        str(Path(seed_root(), "benchmarks", "infer", "{model}.tsv"))
    wildcard_constraints:
        seed=r"\d+",
        model=r"[^/]+/[^/]+",


use rule evaluate as seed_study_evaluate with:
    input:
        config=ancient(results("config.yaml")),
        predictions=run_file("predictions", "{model}", root=seed_root()),
        timing=run_file("timing", "{model}", root=seed_root()),
        flow=eval_flow(),
        model=run_file("models", "{model}", root=seed_root()),
    output:
        run_file("metrics", "{model}", root=seed_root()),
    log:
        str(Path(seed_root(), "logs", "evaluate", "{model}.log")),
    benchmark:
        str(Path(seed_root(), "benchmarks", "evaluate", "{model}.tsv"))
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
    log:
        results("seed_study", "logs", "report.log"),
    conda:
        ETC_ENV
    threads: res.threads(config, "report")
    resources:
        mem_mb=res.report_mem_mb(config),
    params:
        digest=reads("seed-study-report"),
        results=lambda wildcards, input: Path(input.config).parent,
        outdir=lambda wildcards, output: Path(output.table).parent,
    shell:
        "etc seed-study-report --config {input.config:q} --results {params.results:q} "
        "--out-dir {params.outdir:q} > {log:q} 2>&1"
