rule precompute_flow:
    input:
        config=ancient(results("config.yaml")),
        manifest=results("data", "manifest.json"),
    output:
        results("flow", "{split}.h5"),
    params:
        digest=digest("dataset", "flow"),
    log:
        results("logs", "precompute_flow_{split}.log"),
    benchmark:
        results("benchmarks", "precompute_flow_{split}.tsv")
    resources:
        gpu=flow_gpus(),
        nvidia_gpu=flow_gpus(),
    shell:
        "etc precompute-flow --config {input.config:q} --split {wildcards.split} "
        "--out {output:q} > {log:q} 2>&1"
