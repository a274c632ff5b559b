rule infer:
    input:
        config=ancient(results("config.yaml")),
        model=run_file("models", "{model}"),
    output:
        predictions=run_file("predictions", "{model}"),
        timing=run_file("timing", "{model}"),
    log:
        results("logs", "infer", "{model}.log"),
    benchmark:
        results("benchmarks", "infer", "{model}.tsv")
    wildcard_constraints:
        model="teacher|[^/]+/[^/]+",
    conda:
        ETC_ENV
    threads: res.threads(config, "infer")
    resources:
        mem_mb=lambda wildcards: res.infer_mem_mb(config, wildcards.model),
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    params:
        digest=reads("infer"),
        split=config["dataset"]["val_split"],
    shell:
        "etc infer --config {input.config:q} --model {input.model:q} --split {params.split} "
        "--out {output.predictions:q} --timing {output.timing:q} > {log:q} 2>&1"
