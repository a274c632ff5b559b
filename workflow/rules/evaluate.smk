rule evaluate:
    input:
        config=ancient(results("config.yaml")),
        predictions=results("predictions", "{model}.h5"),
        timing=results("predictions", "{model}.timing.json"),
        flow=eval_flow(),
        model=results("models", "{model}.pt"),
    output:
        results("metrics", "{model}.json"),
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
