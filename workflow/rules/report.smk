rule report:
    input:
        config=ancient(results("config.yaml")),
        metrics=expand(results("metrics", "{model}.json"), model=all_models()),
        curves=expand(results("train", "{model}.csv"), model=all_models()),
    output:
        table=report(results("table.csv"), caption="../report/table.rst", category="Results"),
        markdown=results("table.md"),
        miou_vs_tc=report(results("report", "miou_vs_tc.png"), caption="../report/miou_vs_tc.rst", category="Results"),
        class_iou=report(results("report", "class_iou.png"), caption="../report/class_iou.rst", category="Accuracy"),
        tc_per_clip=report(results("report", "tc_per_clip.png"), caption="../report/tc_per_clip.rst", category="Consistency"),
        curves=report(results("report", "training_curves.png"), caption="../report/training_curves.rst", category="Training"),
    params:
        outdir=lambda wildcards, output: Path(output.miou_vs_tc).parent,
        metrics=lambda wildcards, input: Path(input.metrics[0]).parent,
        curves=lambda wildcards, input: Path(input.curves[0]).parent,
    log:
        results("logs", "report.log"),
    benchmark:
        results("benchmarks", "report.tsv")
    shell:
        "etc report --config {input.config:q} --metrics-dir {params.metrics:q} --curves-dir {params.curves:q} "
        "--table {output.table:q} --out-dir {params.outdir:q} > {log:q} 2>&1"


rule demo_video:
    input:
        unpack(demo_inputs),
        config=ancient(results("config.yaml")),
        flow=results("flow", f"{config['dataset']['val_split']}.h5"),
    output:
        video=results("demo", "clip{index}.mp4"),
        gif=report(results("demo", "clip{index}.gif"), caption="../report/demo.rst", category="Demo"),
    params:
        models=demo_models_arg,
    log:
        results("logs", "demo_video_{index}.log"),
    benchmark:
        results("benchmarks", "demo_video_{index}.tsv")
    wildcard_constraints:
        index=r"\d+",
    shell:
        "etc demo-video --config {input.config:q} --clip-index {wildcards.index} --models {params.models} "
        "--flow {input.flow:q} --out {output.video:q} --gif {output.gif:q} > {log:q} 2>&1"


rule bench:
    input:
        config=ancient(results("config.yaml")),
    output:
        table=report(results("bench.csv"), caption="../report/bench.rst", category="Benchmarks"),
        markdown=results("bench.md"),
    params:
        results=lambda wildcards, output: Path(output.table).parent,
    log:
        results("logs", "bench.log"),
    threads: workflow.cores
    benchmark:
        results("benchmarks", "bench.tsv")
    shell:
        "etc bench --config {input.config:q} --out {output.table:q} --results {params.results:q} > {log:q} 2>&1"
