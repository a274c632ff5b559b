rule infer:
    input:
        config=ancient(results("config.yaml")),
        model=run_file("models", "{model}"),
    output:
        predictions=run_file("predictions", "{model}"),
        timing=run_file("timing", "{model}"),
    params:
        digest=reads("infer"),
        split=config["dataset"]["val_split"],
    log:
        results("logs", "infer", "{model}.log"),
    benchmark:
        results("benchmarks", "infer", "{model}.tsv")
    threads: res.threads(config, "infer")
    resources:
        mem_mb=res.infer_mem_mb(config),
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    wildcard_constraints:
        model="teacher|[^/]+/[^/]+",
    shell:
        "etc infer --config {input.config:q} --model {input.model:q} --split {params.split} "
        "--out {output.predictions:q} --timing {output.timing:q} > {log:q} 2>&1"
