rule precompute_flow:
    input:
        config=ancient(results("config.yaml")),
        manifest=results("data", "manifest.json"),
    output:
        results("flow", "{pairs}", "{split}.{estimator}.h5"),
    log:
        results("logs", "precompute_flow_{pairs}_{split}.{estimator}.log"),
    benchmark:
        results("benchmarks", "precompute_flow_{pairs}_{split}.{estimator}.tsv")
    wildcard_constraints:
        pairs="training|consecutive",
        split=r"[^./]+",
        estimator=r"[A-Za-z0-9_-]+(\.[0-9]+)?",
    conda:
        ETC_ENV
    threads: res.threads(config, "flow")
    resources:
        mem_mb=res.flow_mem_mb(config),
        gpu=flow_gpus,
        nvidia_gpu=flow_gpus,
    params:
        spec=flow_spec,
        ckpt=flow_ckpt_flag,
        digest=reads("precompute-flow"),
    shell:
        "etc precompute-flow --config {input.config:q} --split {wildcards.split} --pairs {wildcards.pairs} "
        "--estimator {params.spec} {params.ckpt} --out {output:q} > {log:q} 2>&1"


rule flow_quality:
    """End-point error and occlusion agreement of a store against the exact flow of the same
    pairs (synthetic set), written beside the store."""
    input:
        flow=results("flow", "{pairs}", "{split}.{estimator}.h5"),
        reference=results("flow", "{pairs}", "{split}.gt.h5"),
    output:
        results("flow", "{pairs}", "{split}.{estimator}.quality.json"),
    log:
        results("logs", "flow_quality_{pairs}_{split}.{estimator}.log"),
    wildcard_constraints:
        pairs="training|consecutive",
        split=r"[^./]+",
        estimator=r"[A-Za-z0-9_-]+(\.[0-9]+)?",
    conda:
        ETC_ENV
    threads: res.threads(config, "flow")
    resources:
        mem_mb=res.flow_mem_mb(config),
    shell:
        "etc flow-quality --flow {input.flow:q} --reference {input.reference:q} --out {output:q} > {log:q} 2>&1"
