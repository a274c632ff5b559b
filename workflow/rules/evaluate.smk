rule evaluate:
    input:
        config=ancient(results("config.yaml")),
        predictions=run_file("predictions", "{model}"),
        timing=run_file("timing", "{model}"),
        flow=eval_flow(),
        model=run_file("models", "{model}"),
    output:
        run_file("metrics", "{model}"),
    log:
        results("logs", "evaluate", "{model}.log"),
    benchmark:
        results("benchmarks", "evaluate", "{model}.tsv")
    wildcard_constraints:
        model="teacher|[^/]+/[^/]+",
    conda:
        ETC_ENV
    threads: res.threads(config, "evaluate")
    resources:
        mem_mb=res.evaluate_mem_mb(config),
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    params:
        digest=reads("evaluate"),
    shell:
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} "
        "--flow {input.flow:q} --model {input.model:q} --timing {input.timing:q} --out {output:q} > {log:q} 2>&1"
