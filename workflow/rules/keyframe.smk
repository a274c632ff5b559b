# Keyframe methods and training-free temporal fusion on the same axes as the per-frame models
# (docs/keyframe.md): keyframe.model at every interval × propagation and keyframe.fusion_runs at
# every strength, each row scored by etc keyframe-score into results/keyframe/rows/ (accuracy), every
# row's latency per frame timed in turns in one process (etc latency; the other jobs make labels
# only), the two joined by etc report.
rule keyframe_latency:
    """Every model of the comparison streamed through the same frames in turns, in one process:
    the rows' latency per frame (identical networks time alike)."""
    input:
        config=ancient(results("config.yaml")),
        models=[run_file("models", row["model"]) for row in KEYFRAME_ROWS.values()],
    output:
        keyframe("latency.json"),
    log:
        keyframe("logs", "latency.log"),
    benchmark:
        keyframe("benchmarks", "latency.tsv")
    conda:
        ETC_ENV
    threads: res.threads(config, "timed")
    resources:
        mem_mb=res.latency_mem_mb(config),  # every row's model loaded, one frame at a time
        timing=1,  # one timed job at a time (profiles/default provides timing=1)
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    params:
        digest=reads("latency"),
        models=lambda wildcards, input: Path(input.models[0]).parent,  # the teacher's, always first
        split=config["dataset"]["val_split"],
    shell:
        "etc latency --config {input.config:q} --models {params.models:q} --split {params.split} "
        "--out {output:q} > {log:q} 2>&1"


rule keyframe_infer:
    input:
        config=ancient(results("config.yaml")),
        model=results("models", "{model}.pt"),
    output:
        predictions=keyframe(
            "predictions", "{model}.k{interval}.{propagate}.{estimator}.{offset}.h5"
        ),
        timing=keyframe(
            "predictions", "{model}.k{interval}.{propagate}.{estimator}.{offset}.timing.json"
        ),
    log:
        keyframe("logs", "{model}.k{interval}.{propagate}.{estimator}.{offset}.log"),
    benchmark:
        keyframe("benchmarks", "{model}.k{interval}.{propagate}.{estimator}.{offset}.tsv")
    wildcard_constraints:
        **KEYFRAME_WILDCARDS,
    conda:
        ETC_ENV
    # labels only: the row's latency is etc latency's (keyframe_latency), so not timed alone
    threads: res.threads(config, "infer")
    resources:
        mem_mb=lambda wildcards: res.infer_mem_mb(config, wildcards.model, stream=True),
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    params:
        digest=reads("keyframe-infer"),
        split=config["dataset"]["val_split"],
        estimator=lambda wildcards: shlex.quote(from_file_tag(wildcards.estimator)),
        offset=lambda wildcards: (
            "" if wildcards.offset == "all" else f"--keyframe-offset {wildcards.offset[1:]}"
        ),
    shell:
        "etc infer --config {input.config:q} --model {input.model:q} --split {params.split} "
        "--keyframe-interval {wildcards.interval} --propagate {wildcards.propagate} --keyframe-flow {params.estimator} "
        "--no-flip {params.offset} --out {output.predictions:q} --timing {output.timing:q} > {log:q} 2>&1"


rule fusion_infer:
    """A per-frame model with training-free temporal fusion at inference (etc infer
    --temporal-fusion), streamed and timed like a keyframe run."""
    input:
        config=ancient(results("config.yaml")),
        model=results("models", "{model}.pt"),
    output:
        predictions=keyframe("predictions", "{model}.fusion{strength}.{estimator}.h5"),
        timing=keyframe("predictions", "{model}.fusion{strength}.{estimator}.timing.json"),
    log:
        keyframe("logs", "{model}.fusion{strength}.{estimator}.log"),
    benchmark:
        keyframe("benchmarks", "{model}.fusion{strength}.{estimator}.tsv")
    wildcard_constraints:
        **KEYFRAME_WILDCARDS,
    conda:
        ETC_ENV
    # labels only: the row's latency is etc latency's (keyframe_latency), so not timed alone
    threads: res.threads(config, "infer")
    resources:
        mem_mb=lambda wildcards: res.infer_mem_mb(config, wildcards.model, stream=True),
        gpu=res.infer_gpus(config),
        nvidia_gpu=res.infer_gpus(config),
    params:
        digest=reads("keyframe-infer"),
        split=config["dataset"]["val_split"],
        estimator=lambda wildcards: shlex.quote(from_file_tag(wildcards.estimator)),
    shell:
        "etc infer --config {input.config:q} --model {input.model:q} --split {params.split} "
        "--temporal-fusion {wildcards.strength} --keyframe-flow {params.estimator} --no-flip "
        "--out {output.predictions:q} --timing {output.timing:q} > {log:q} 2>&1"


rule keyframe_evaluate:
    """TC, TC-occ, flicker, mVC and cost of a keyframe or fused run, as for every model (a
    keyframe setting's first offset's run)."""
    input:
        config=ancient(results("config.yaml")),
        predictions=lambda wildcards: keyframe_predictions(KEYFRAME_ROWS[wildcards.slug])[0],
        flow=eval_flow(),
        model=lambda wildcards: results("models", f"{KEYFRAME_ROWS[wildcards.slug]['model']}.pt"),
        timing=lambda wildcards: str(
            Path(keyframe_predictions(KEYFRAME_ROWS[wildcards.slug])[0]).with_suffix(
                ".timing.json"
            )
        ),
    output:
        keyframe("evaluate", "{slug}.json"),
    log:
        keyframe("logs", "evaluate", "{slug}.log"),
    benchmark:
        keyframe("benchmarks", "evaluate", "{slug}.tsv")
    wildcard_constraints:
        slug="|".join(re.escape(s) for s, r in KEYFRAME_ROWS.items() if r["kind"] != "per-frame")
        or "^$",
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
        "etc evaluate --config {input.config:q} --predictions {input.predictions:q} --flow {input.flow:q} "
        "--model {input.model:q} --timing {input.timing:q} --out {output:q} > {log:q} 2>&1"


rule keyframe_score:
    input:
        unpack(keyframe_score_inputs),
    output:
        keyframe("rows", "{slug}.json"),
    log:
        keyframe("logs", "score", "{slug}.log"),
    benchmark:
        keyframe("benchmarks", "score", "{slug}.tsv")
    wildcard_constraints:
        slug="|".join(re.escape(s) for s in KEYFRAME_ROWS) or "^$",
    conda:
        ETC_ENV
    threads: 1  # label maps and JSON: no torch threads
    resources:
        mem_mb=res.score_mem_mb(config),
    params:
        interval=lambda wildcards: KEYFRAME_ROWS[wildcards.slug]["interval"],
        run=lambda wildcards: shlex.quote(KEYFRAME_ROWS[wildcards.slug]["run"]),
        predictions=lambda wildcards, input: " ".join(
            f"--predictions {shlex.quote(p)}" for p in input.predictions
        ),
        digest=reads("keyframe-score"),
    shell:
        "etc keyframe-score --config {input.config:q} {params.predictions} --interval {params.interval} "
        "--metrics {input.metrics:q} --run {params.run} --out {output:q} > {log:q} 2>&1"
