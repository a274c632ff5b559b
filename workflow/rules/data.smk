# The resolved config every `etc` command reads. No rerun parameter: a job that Snakemake must
# rerun hides the rerun parameters of every job downstream of it for the rest of that run (its
# DAG masks them, and an ancient() input then never triggers them), so one stage rerun here would
# leave every other result stale. Written when missing, and refreshed before any job runs
# (onstart, Snakefile) from the config of this run; each job reruns by what it reads (etc.core.reads).
rule resolve_config:
    output:
        results("config.yaml"),
    log:
        results("logs", "resolve_config.log"),
    benchmark:
        results("benchmarks", "resolve_config.tsv")
    localrule: True  # a file from the config in memory: nothing to queue on a node
    resources:
        mem_mb=res.data_mem_mb(config),
    run:
        write_resolved(config, output[0])
        Path(log[0]).write_text(f"wrote {output[0]}\n")


rule make_synthetic:
    input:
        config=ancient(results("config.yaml")),
    output:
        Path(dataset_root(), "synthetic.json"),
    log:
        results("logs", "make_synthetic.log"),
    benchmark:
        results("benchmarks", "make_synthetic.tsv")
    conda:
        ETC_ENV
    resources:
        mem_mb=res.data_mem_mb(config),
    params:
        root=lambda wildcards, output: Path(output[0]).parent,
        digest=reads("make-synthetic"),
    shell:
        "etc make-synthetic --config {input.config:q} --out {params.root:q} > {log:q} 2>&1"


rule check_data:
    input:
        dataset_ready(),
        config=ancient(results("config.yaml")),
    output:
        results("data", "manifest.json"),
    log:
        results("logs", "check_data.log"),
    benchmark:
        results("benchmarks", "check_data.tsv")
    conda:
        ETC_ENV
    resources:
        mem_mb=res.data_mem_mb(config),
    params:
        digest=reads("check-data"),
    shell:
        "etc check-data --config {input.config:q} --manifest {output:q} > {log:q} 2>&1"
