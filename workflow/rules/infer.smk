rule infer:
    input:
        config=ancient(results("config.yaml")),
        model=results("models", "{model}.pt"),
    output:
        predictions=results("predictions", "{model}.h5"),
        timing=results("predictions", "{model}.timing.json"),
    params:
        digest=digest("dataset", "infer"),
        split=config["dataset"]["val_split"],
    log:
        results("logs", "infer", "{model}.log"),
    benchmark:
        results("benchmarks", "infer", "{model}.tsv")
    resources:
        gpu=1,
        nvidia_gpu=1,
    wildcard_constraints:
        model="teacher|[^/]+/[^/]+",
    shell:
        "etc infer --config {input.config:q} --model {input.model:q} --split {params.split} "
        "--out {output.predictions:q} --timing {output.timing:q} > {log:q} 2>&1"
