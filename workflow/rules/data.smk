rule resolve_config:
    output:
        results("config.yaml"),
    params:
        config=config_json(),
    log:
        results("logs", "resolve_config.log"),
    benchmark:
        results("benchmarks", "resolve_config.tsv")
    shell:
        "etc config --json {params.config} --out {output:q} > {log:q} 2>&1"


rule make_synthetic:
    input:
        config=ancient(results("config.yaml")),
    output:
        Path(dataset_root(), "synthetic.json"),
    params:
        root=lambda wildcards, output: Path(output[0]).parent,
        digest=digest_of(config["dataset"]["synthetic"]),
    log:
        results("logs", "make_synthetic.log"),
    benchmark:
        results("benchmarks", "make_synthetic.tsv")
    shell:
        "etc make-synthetic --config {input.config:q} --out {params.root:q} > {log:q} 2>&1"


rule check_data:
    input:
        dataset_ready(),
        config=ancient(results("config.yaml")),
    output:
        results("data", "manifest.json"),
    params:
        digest=digest("dataset"),
    log:
        results("logs", "check_data.log"),
    benchmark:
        results("benchmarks", "check_data.tsv")
    shell:
        "etc check-data --config {input.config:q} --manifest {output:q} > {log:q} 2>&1"
