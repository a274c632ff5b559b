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
        "etc config --json {params.config} --out {output} > {log} 2>&1"


rule make_synthetic:
    output:
        Path(dataset_root(), "synthetic.json"),
    params:
        root=lambda wildcards, output: Path(output[0]).parent,
        args=synthetic_args(),
    log:
        results("logs", "make_synthetic.log"),
    benchmark:
        results("benchmarks", "make_synthetic.tsv")
    shell:
        "etc make-synthetic --out {params.root} {params.args} > {log} 2>&1"


rule check_data:
    input:
        dataset_ready(),
    output:
        results("data", "manifest.json"),
    params:
        dataset=config["dataset"]["name"],
        root=lambda wildcards: dataset_root(),
        splits=data_splits(),
    log:
        results("logs", "check_data.log"),
    benchmark:
        results("benchmarks", "check_data.tsv")
    shell:
        "etc check-data --dataset {params.dataset} --root {params.root} "
        "--splits {params.splits} --manifest {output} > {log} 2>&1"
