rule evaluate:
    input:
        config=ancient(results("config.yaml")),
        predictions=run_file("predictions", "{model}"),
        timing=run_file("timing", "{model}"),
        flow=eval_flow(),
        model=run_file("models", "{model}"),
    output:
        run_file("metrics", "{model}"),
    params:
        digest=reads("evaluate"),
    log:
        results("logs", "evaluate", "{model}.log"),
    benchmark:
        results("benchmarks", "evaluate", "{model}.tsv")
    threads: res.threads(config, "evaluate")
    resources:
        mem_mb=res.evaluate_mem_mb(config),
    wildcard_constraints:
        model="teacher|[^/]+/[^/]+",
    shell:
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} "
        "--flow {input.flow:q} --model {input.model:q} --timing {input.timing:q} --out {output:q} > {log:q} 2>&1"
